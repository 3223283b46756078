package mount

import (
	"strings"
	"testing"
)

func TestWithNesting(t *testing.T) {
	base := NewTable([]Entry{{Path: "secrets/"}, {Path: "auth/approle/"}})
	tests := []struct {
		path    string
		wantErr string // substring; "" for success
	}{
		{"secrets/dynamic/postgresql/", ""},
		{"other/", ""},
		{"secrets/", "already mounted"},
		{"auth/approle/x/", "conflicts"},
		{"auth/approle2/", ""},
		{"sys/x/", "reserved"},
	}
	for _, tc := range tests {
		_, err := base.With(Entry{Path: tc.path})
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("With(%q): %v", tc.path, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("With(%q) = %v, want an error with %q", tc.path, err, tc.wantErr)
		}
	}
	nested, err := base.With(Entry{Path: "secrets/dynamic/postgresql/"})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"secrets/app/db":                       "secrets/",
		"secrets/dynamic/postgresql/creds/app": "secrets/dynamic/postgresql/",
		"secrets/dynamic/postgresql":           "secrets/dynamic/postgresql/",
		"secrets/dynamic/other":                "secrets/",
	} {
		if e, ok := nested.Match(path); !ok || e.Path != want {
			t.Errorf("Match(%q) = %q, %v; want %q", path, e.Path, ok, want)
		}
	}
}
