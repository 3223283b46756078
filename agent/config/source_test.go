package config

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestValidateTemplateSources(t *testing.T) {
	tests := map[string]struct {
		sources []string
		wantErr string
	}{
		"none":       {nil, ""},
		"two":        {[]string{"secrets/secrethub/agent-templates/web/a", "secrets/x"}, ""},
		"absolute":   {[]string{"/secrets/x"}, `template_sources[0]: "/secrets/x": not a relative API path`},
		"dot-dot":    {[]string{"secrets/../sys/x"}, `template_sources[0]: "secrets/../sys/x": not a relative API path`},
		"query":      {[]string{"secrets/x?version=1"}, `template_sources[0]: "secrets/x?version=1": not a relative API path`},
		"empty":      {[]string{""}, `template_sources[0]: "": not a relative API path`},
		"duplicate":  {[]string{"secrets/x", "secrets/x"}, `template_sources[1]: "secrets/x": duplicate of template_sources[0]`},
		"too many":   {manySources(17), "template_sources: 17 sources: at most 16"},
		"empty list": {[]string{}, ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			c := valid()
			c.TemplateSources = tt.sources
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func manySources(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("secrets/t/%d", i)
	}
	return out
}

// stored is a template source's data as the core returns it.
func stored(t *testing.T, doc string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDecodeTemplateSource(t *testing.T) {
	tests := map[string]struct {
		doc     string
		want    int // templates decoded
		wantErr string
	}{
		"one with defaults": {`{"templates":[{"name":"a","contents":"x","destination":"/secrethub/a"}]}`, 1, ""},
		"every field": {`{"templates":[{"name":"a","contents":"x","destination":"/secrethub/a","perms":"0600","missing_key":"zero",
			"reload":{"http":{"url":"http://127.0.0.1:8080/reload"},"timeout":"3s"}}]}`, 1, ""},
		"empty list":  {`{"templates":[]}`, 0, ""},
		"no list":     {`{}`, 0, "template_sources[0].templates: missing"},
		"wrong shape": {`{"templates":{"a":1}}`, 0, "template_sources[0]: want {\"templates\": [...]}"},
		"unknown field": {`{"templates":[{"name":"a","contents":"x","destination":"/a","owner":"root"}]}`, 0,
			`unknown field "owner"`},
		"source refused": {`{"templates":[{"name":"a","source":"/etc/shadow","destination":"/a"}]}`, 0,
			"template_sources[0].templates[0].source: not allowed here: the template text must be in contents"},
		"relative destination": {`{"templates":[{"name":"a","contents":"x","destination":"a"}]}`, 0,
			`template_sources[0].templates[0].destination: "a": must be absolute`},
		"duplicate name": {`{"templates":[{"name":"a","contents":"x","destination":"/a"},{"name":"a","contents":"y","destination":"/b"}]}`, 0,
			`template_sources[0].templates[1].name: "a": duplicate of template_sources[0].templates[0].name`},
		"group write": {`{"templates":[{"name":"a","contents":"x","destination":"/a","perms":"0666"}]}`, 0,
			`template_sources[0].templates[0].perms: "0666": group or other write is not allowed`},
		"remote reload": {`{"templates":[{"name":"a","contents":"x","destination":"/a","reload":{"http":{"url":"http://10.0.0.1/reload"}}}]}`, 0,
			`template_sources[0].templates[0].reload.http.url`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := DecodeTemplateSource(SourceField(0), stored(t, tt.doc))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("DecodeTemplateSource: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("DecodeTemplateSource = %v, want it to contain %q", err, tt.wantErr)
			case tt.wantErr == "" && len(got) != tt.want:
				t.Fatalf("decoded %d templates, want %d", len(got), tt.want)
			}
			for _, tmpl := range got {
				if tmpl.Perms == "" || tmpl.MissingKey == "" {
					t.Errorf("defaults not filled: %+v", tmpl)
				}
			}
		})
	}
}

func TestCheckSourced(t *testing.T) {
	c := valid()
	c.InitMarker = "/out/.rendered"
	one := []Template{{Name: "s", Contents: "x", Destination: "/out/s", Perms: DefaultPerms, MissingKey: DefaultMissingKey}}
	tests := map[string]struct {
		sourced [][]Template
		wantErr string
	}{
		"distinct": {[][]Template{one, nil}, ""},
		"name of a local template": {[][]Template{{{Name: "a", Contents: "x", Destination: "/out/s2", Perms: DefaultPerms, MissingKey: DefaultMissingKey}}},
			`template_sources[0].templates[0].name: "a": duplicate of templates[0].name`},
		"destination of another source": {[][]Template{one, {{Name: "t", Contents: "x", Destination: "/out/s", Perms: DefaultPerms, MissingKey: DefaultMissingKey}}},
			`template_sources[1].templates[0].destination: "/out/s": duplicate of template_sources[0].templates[0].destination`},
		"the init marker": {[][]Template{{{Name: "t", Contents: "x", Destination: "/out/.rendered", Perms: DefaultPerms, MissingKey: DefaultMissingKey}}},
			`template_sources[0].templates[0].destination: "/out/.rendered": same file as init_marker`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			err := c.CheckSourced(tt.sourced)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("CheckSourced: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("CheckSourced = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// FuzzDecodeTemplateSource feeds arbitrary stored documents: the decoder
// never panics, and what it accepts passes the full check.
func FuzzDecodeTemplateSource(f *testing.F) {
	f.Add(`{"templates":[{"name":"a","contents":"x","destination":"/secrethub/a"}]}`)
	f.Add(`{"templates":[{"name":"a","contents":"x","destination":"/a","reload":{"signal":{"name":"HUP","pid_file":"/run/p"}}}]}`)
	f.Add(`{"templates":null}`)
	f.Fuzz(func(t *testing.T, doc string) {
		var m map[string]any
		if json.Unmarshal([]byte(doc), &m) != nil {
			return
		}
		list, err := DecodeTemplateSource(SourceField(0), m)
		if err != nil {
			return
		}
		if err := (&Config{}).CheckSourced([][]Template{list}); err != nil {
			t.Fatalf("accepted templates fail the check: %v", err)
		}
	})
}
