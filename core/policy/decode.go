package policy

import (
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// The wire form of a policy document, as users write it (YAML or JSON) and
// as Canonical writes it.
type document struct {
	Name  string    `json:"name,omitempty"`
	Rules []ruleDoc `json:"rules"`
}

type ruleDoc struct {
	Path         string         `json:"path"`
	Capabilities []string       `json:"capabilities"`
	Effect       string         `json:"effect,omitempty"`
	Conditions   *conditionsDoc `json:"conditions,omitempty"`
}

type conditionsDoc struct {
	TimeOfDay  *timeOfDayDoc `json:"time_of_day,omitempty"`
	DaysOfWeek []string      `json:"days_of_week,omitempty"`
	TimeZone   string        `json:"time_zone,omitempty"`
	SourceIP   []string      `json:"source_ip,omitempty"`
	TTLMax     string        `json:"ttl_max,omitempty"`
}

type timeOfDayDoc struct {
	Start    string `json:"start"`
	End      string `json:"end"`
	TimeZone string `json:"time_zone,omitempty"`
}

// decodeDocument decodes a YAML or JSON document strictly: duplicate keys,
// unknown fields (matched case-sensitively) and values of the wrong shape
// are problems naming their field.
func decodeDocument(doc []byte) (*document, error) {
	// First the shape, on the generic tree, so that problems name their
	// field exactly; then the typed decode, which also turns YAML scalars
	// written for string fields (start: 8) into strings.
	raw, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, invalid("", "not a valid YAML or JSON document: %s", cleanDecodeError(err))
	}
	var tree any
	if err := json.Unmarshal(raw, &tree); err != nil {
		return nil, invalid("", "not a valid YAML or JSON document: %s", cleanDecodeError(err))
	}
	var ps problems
	checkShape(&ps, "", tree, reflect.TypeFor[document]())
	if err := ps.err(); err != nil {
		return nil, err
	}
	var d document
	if err := yaml.UnmarshalStrict(doc, &d); err != nil {
		return nil, invalid("", "not a valid policy document: %s", cleanDecodeError(err))
	}
	return &d, nil
}

// cleanDecodeError drops the decoding libraries' layers of prefixes.
func cleanDecodeError(err error) string {
	s := err.Error()
	for _, p := range []string{"error converting YAML to JSON: ", "error unmarshaling JSON: ", "while decoding JSON: ", "json: ", "yaml: "} {
		s = strings.ReplaceAll(s, p, "")
	}
	return s
}

// checkShape checks that v, decoded generically from JSON, fits t: objects
// for structs with only known keys, lists for slices, scalars for strings.
// null is accepted anywhere (it decodes to the zero value).
func checkShape(ps *problems, field string, v any, t reflect.Type) {
	if v == nil {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			ps.add(field, "expected an object, got %s", describe(v))
			return
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		// Document order is lost in the generic tree; sorted is stable.
		slices.Sort(keys)
		for _, k := range keys {
			f, ok := fieldByTag(t, k)
			if !ok {
				ps.add(join(field, k), "unknown field")
				continue
			}
			checkShape(ps, join(field, k), m[k], f.Type)
		}
	case reflect.Slice:
		l, ok := v.([]any)
		if !ok {
			ps.add(field, "expected a list, got %s", describe(v))
			return
		}
		for i, e := range l {
			checkShape(ps, field+"["+strconv.Itoa(i)+"]", e, t.Elem())
		}
	case reflect.String:
		switch v.(type) {
		case string, float64, bool:
		default:
			ps.add(field, "expected a string, got %s", describe(v))
		}
	}
}

func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func describe(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	default:
		return "null"
	}
}
