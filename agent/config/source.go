package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// maxTemplateSources bounds template_sources, and maxSourcedTemplates the
// templates one source may hold (an AgentTemplate holds at most 32).
const (
	maxTemplateSources  = 16
	maxSourcedTemplates = 64
)

// SourceField names template_sources[i] and its path in errors.
func SourceField(i int) string { return fmt.Sprintf("template_sources[%d]", i) }

// DecodeTemplateSource reads the templates a template source holds: the
// data of its core path, {"templates": [...]} in the format of the
// configuration's templates. Unknown fields are refused, defaults are
// filled, and each template is checked as Validate checks the file's
// (source is refused: a core path may not name files on the agent's
// host). Errors name fields below field, like
// "template_sources[0].templates[1].destination".
func DecodeTemplateSource(field string, data map[string]any) ([]Template, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, &FieldError{Field: field, Detail: fmt.Sprintf("cannot encode the stored templates: %v", err)}
	}
	var doc struct {
		Templates []Template `json:"templates"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, &FieldError{Field: field, Detail: fmt.Sprintf("want {\"templates\": [...]}: %s", explainDecode(err))}
	}
	if doc.Templates == nil {
		return nil, &FieldError{Field: field + ".templates", Detail: "missing"}
	}
	if len(doc.Templates) > maxSourcedTemplates {
		return nil, &FieldError{Field: field + ".templates", Detail: fmt.Sprintf("%d templates: at most %d", len(doc.Templates), maxSourcedTemplates)}
	}
	fillTemplateDefaults(doc.Templates)
	if errs := validateTemplates(field+".templates", doc.Templates, newTemplateSeen(), "", false); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return doc.Templates, nil
}

// CheckSourced checks templates read from the template sources together
// with the configuration's own: names and destinations unique across all
// of them, none the init marker. sourced[i] comes from
// template_sources[i] (nil: not read yet).
func (c *Config) CheckSourced(sourced [][]Template) error {
	seen := newTemplateSeen()
	errs := validateTemplates("templates", c.Templates, seen, c.InitMarker, true)
	for i, list := range sourced {
		errs = append(errs, validateTemplates(SourceField(i)+".templates", list, seen, c.InitMarker, false)...)
	}
	return errors.Join(errs...)
}
