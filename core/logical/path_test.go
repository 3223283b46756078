package logical_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/secrethub/secrethub/core/logical"
)

func TestCleanPath(t *testing.T) {
	cases := map[string]struct {
		in         string
		want       string
		wantFolder bool
		wantErr    string
	}{
		"plain":              {in: "secrets/app/db", want: "secrets/app/db"},
		"leading slash":      {in: "/secrets/app", want: "secrets/app"},
		"folder":             {in: "secrets/app/", want: "secrets/app", wantFolder: true},
		"dots inside names":  {in: "secrets/a.b/..c/d..", want: "secrets/a.b/..c/d.."},
		"unicode":            {in: "secrets/café", want: "secrets/café"},
		"dot dot":            {in: "secrets/../sys/seal", wantErr: `segment ".."`},
		"dot":                {in: "secrets/./a", wantErr: `segment "."`},
		"trailing dot dot":   {in: "secrets/..", wantErr: `segment ".."`},
		"empty segment":      {in: "secrets//a", wantErr: "empty segment"},
		"two trailing":       {in: "secrets/a//", wantErr: "empty segment"},
		"empty":              {in: "", wantErr: "empty"},
		"only slash":         {in: "/", wantErr: "empty"},
		"newline":            {in: "secrets/a\nb", wantErr: "control character"},
		"nul":                {in: "secrets/a\x00", wantErr: "control character"},
		"del":                {in: "secrets/a\x7f", wantErr: "control character"},
		"invalid utf8":       {in: "secrets/\xff", wantErr: "UTF-8"},
		"too long":           {in: "s/" + strings.Repeat("a", 600), wantErr: "longer than"},
		"double leading":     {in: "//secrets", wantErr: "empty segment"},
		"spaces are allowed": {in: "secrets/my app", want: "secrets/my app"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, folder, err := logical.CleanPath(tc.in)
			if tc.wantErr != "" {
				var ire *logical.InvalidRequestError
				if !errors.As(err, &ire) || ire.Field != "path" || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("CleanPath(%q) = %q, %v; want error containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want || folder != tc.wantFolder {
				t.Fatalf("CleanPath(%q) = %q, %v, %v; want %q, %v", tc.in, got, folder, err, tc.want, tc.wantFolder)
			}
		})
	}
}

// FuzzCleanPath checks that an accepted path never holds a traversal, an
// empty segment or a control character, and that cleaning is idempotent.
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"secrets/a", "/a/b/", "a/../b", "a//b", "a/./b", "\x00", "é/…", "..", "./"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, folder, err := logical.CleanPath(in)
		if err != nil {
			return
		}
		if got == "" || !utf8.ValidString(got) || strings.HasPrefix(got, "/") || strings.HasSuffix(got, "/") {
			t.Fatalf("CleanPath(%q) = %q", in, got)
		}
		for _, seg := range strings.Split(got, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("CleanPath(%q) = %q holds segment %q", in, got, seg)
			}
		}
		if strings.ContainsFunc(got, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("CleanPath(%q) = %q holds a control character", in, got)
		}
		again, folder2, err := logical.CleanPath(got)
		if err != nil || again != got || folder2 {
			t.Fatalf("not idempotent: %q -> %q (%v) -> %q, %v, %v", in, got, folder, again, folder2, err)
		}
	})
}
