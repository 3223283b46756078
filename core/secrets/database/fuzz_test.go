package database

import (
	"testing"
)

// FuzzTemplate: the template parser takes untrusted input. It must not
// panic, and a parsed template rendered with hostile values must lex into
// the same statements with no value escaping its quotes: re-parsing the
// rendered SQL gives as many statements, with no placeholder and no
// unterminated quote.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{
		DefaultCreationStatement, DefaultRenewStatement, defaultRotationStatement,
		`CREATE ROLE {{name}} PASSWORD {{password}}; GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{{name}}";`,
		`DO $$ BEGIN CREATE ROLE "{{name}}"; END $$;`,
		`SELECT E'\'{{name}}' /* c /* nested */ */ -- x`,
		`SELECT $a$ {{name}} $a$, "{{username}}"`,
		`{{`, `'`, `"`, `$$`, `/*`, `{{ name }}`, `E'\`,
	} {
		f.Add(s, `a"b'c;\d$$`)
	}
	f.Fuzz(func(t *testing.T, tmpl, hostile string) {
		all := []string{phName, phPassword, phExpiration}
		stmts, err := parseTemplate(tmpl, all)
		if err != nil {
			return
		}
		for _, st := range stmts {
			for _, p := range st {
				if p.ph != "" && p.ph != phName && p.ph != phPassword && p.ph != phExpiration {
					t.Fatalf("unknown placeholder %q accepted", p.ph)
				}
			}
			sql, err := st.render(map[string]string{phName: hostile, phPassword: hostile, phExpiration: hostile})
			if err != nil {
				continue // refused (a hostile value in a dollar-quoted body, a NUL)
			}
			// The rendered SQL must still be one statement. (A value
			// holding "{{" would read as a placeholder: none allowed.)
			again, err := parseTemplate(sql, nil)
			if err != nil {
				if containsBraces(hostile) {
					continue
				}
				t.Fatalf("rendered %q does not lex: %v (template %q)", sql, err, tmpl)
			}
			if len(again) != 1 {
				t.Fatalf("rendered %q lexes into %d statements (template %q)", sql, len(again), tmpl)
			}
		}
	})
}

func containsBraces(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '{' && s[i+1] == '{' {
			return true
		}
	}
	return false
}
