package database

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// Statement templates are SQL with placeholders: {{name}} (or its alias
// {{username}}), {{password}} and {{expiration}}. They are untrusted input
// (whoever may write a role writes them), so they are parsed at write time
// into statements and placeholders, and each value is quoted for where its
// placeholder stands:
//
//   - inside a double-quoted identifier ("{{name}}"): double quotes doubled;
//   - inside a single-quoted literal ('{{password}}'): single quotes doubled
//     (and, in an E'' literal, backslashes doubled too);
//   - bare ({{name}} with no quotes around it): a quoted identifier for the
//     name, a quoted literal for the others;
//   - inside a dollar-quoted body ($$ ... $$, as in a DO block): the value is
//     inserted as it is, and must consist of characters that are safe in
//     any SQL context (letters, digits, '_', '-', '.', ':', '+' and space).
//
// Placeholders inside comments are refused. Statements are split on the
// semicolons outside quotes and comments, so a failure can name the
// statement.

// Placeholder names.
const (
	phName       = "name"
	phPassword   = "password"
	phExpiration = "expiration"
)

// maxStatementsLen bounds one template, in bytes.
const maxStatementsLen = 64 << 10

// phContext is where in the SQL a placeholder stands.
type phContext int

const (
	ctxBare phContext = iota
	ctxIdent
	ctxLiteral
	ctxEscapeLiteral
	ctxDollar
)

// part is a piece of a statement: literal SQL, or a placeholder.
type part struct {
	sql string    // when ph is ""
	ph  string    // placeholder name
	ctx phContext // where ph stands
}

// statement is one parsed SQL statement.
type statement []part

// parseTemplates parses a list of templates (each may hold several
// statements) into statements. allowed lists the placeholders the
// statements may use. Empty statements are dropped.
func parseTemplates(templates []string, allowed ...string) ([]statement, error) {
	var out []statement
	for i, t := range templates {
		stmts, err := parseTemplate(t, allowed)
		if err != nil {
			if len(templates) > 1 {
				return nil, fmt.Errorf("template %d: %w", i+1, err)
			}
			return nil, err
		}
		out = append(out, stmts...)
	}
	return out, nil
}

// parseTemplate splits one template into statements.
func parseTemplate(s string, allowed []string) ([]statement, error) {
	if len(s) > maxStatementsLen {
		return nil, fmt.Errorf("longer than %d bytes", maxStatementsLen)
	}
	if !utf8.ValidString(s) {
		return nil, fmt.Errorf("not valid UTF-8")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return nil, fmt.Errorf("contains a NUL byte")
	}
	var (
		out   []statement
		cur   statement
		sb    strings.Builder
		state = ctxBare
		dtag  string // the closing tag of a dollar-quoted body
		// hasSQL reports whether cur holds anything but spaces.
		hasSQL bool
	)
	flush := func() {
		if sb.Len() > 0 {
			cur = append(cur, part{sql: sb.String()})
			sb.Reset()
		}
	}
	endStatement := func() {
		flush()
		if hasSQL {
			out = append(out, cur)
		}
		cur, hasSQL = nil, false
	}
	for i := 0; i < len(s); {
		c := s[i]
		if strings.HasPrefix(s[i:], "{{") {
			end := strings.Index(s[i+2:], "}}")
			if end < 0 {
				return nil, fmt.Errorf("unclosed placeholder at byte %d", i)
			}
			name := strings.TrimSpace(s[i+2 : i+2+end])
			if name == "username" {
				name = phName
			}
			ok := false
			for _, a := range allowed {
				ok = ok || a == name
			}
			if !ok {
				return nil, fmt.Errorf("unknown placeholder %q at byte %d; allowed: {{%s}}", truncate(name, 32), i, strings.Join(allowed, "}}, {{"))
			}
			flush()
			cur = append(cur, part{ph: name, ctx: state})
			hasSQL = true
			i += 2 + end + 2
			continue
		}
		switch state {
		case ctxBare:
			switch {
			case c == ';':
				i++
				endStatement()
				continue
			case c == '\'':
				state = ctxLiteral
				if i > 0 && (s[i-1] == 'E' || s[i-1] == 'e') && (i == 1 || !isIdentChar(s[i-2])) {
					state = ctxEscapeLiteral
				}
			case c == '"':
				state = ctxIdent
			case c == '$':
				if tag, ok := dollarTag(s[i:]); ok && (i == 0 || !isIdentChar(s[i-1])) {
					state, dtag = ctxDollar, tag
					sb.WriteString(tag)
					hasSQL = true
					i += len(tag)
					continue
				}
			case strings.HasPrefix(s[i:], "--"):
				end := strings.IndexByte(s[i:], '\n')
				if end < 0 {
					end = len(s) - i
				}
				if strings.Contains(s[i:i+end], "{{") {
					return nil, fmt.Errorf("placeholder inside a comment at byte %d", i)
				}
				sb.WriteString(s[i : i+end])
				i += end
				continue
			case strings.HasPrefix(s[i:], "/*"):
				end, err := blockCommentEnd(s[i:])
				if err != nil {
					return nil, fmt.Errorf("%w at byte %d", err, i)
				}
				if strings.Contains(s[i:i+end], "{{") {
					return nil, fmt.Errorf("placeholder inside a comment at byte %d", i)
				}
				sb.WriteString(s[i : i+end])
				i += end
				continue
			}
			if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
				hasSQL = true
			}
			sb.WriteByte(c)
			i++
		case ctxLiteral, ctxEscapeLiteral:
			switch {
			case c == '\\' && state == ctxEscapeLiteral && i+1 < len(s):
				sb.WriteString(s[i : i+2])
				i += 2
				continue
			case c == '\'' && i+1 < len(s) && s[i+1] == '\'':
				sb.WriteString("''")
				i += 2
				continue
			case c == '\'':
				state = ctxBare
			}
			sb.WriteByte(c)
			i++
		case ctxIdent:
			switch {
			case c == '"' && i+1 < len(s) && s[i+1] == '"':
				sb.WriteString(`""`)
				i += 2
				continue
			case c == '"':
				state = ctxBare
			}
			sb.WriteByte(c)
			i++
		case ctxDollar:
			if strings.HasPrefix(s[i:], dtag) {
				sb.WriteString(dtag)
				i += len(dtag)
				state = ctxBare
				continue
			}
			sb.WriteByte(c)
			i++
		}
	}
	switch state {
	case ctxLiteral, ctxEscapeLiteral:
		return nil, fmt.Errorf("unterminated quoted string")
	case ctxIdent:
		return nil, fmt.Errorf("unterminated quoted identifier")
	case ctxDollar:
		return nil, fmt.Errorf("unterminated dollar-quoted string (missing %s)", dtag)
	}
	endStatement()
	return out, nil
}

// dollarTag returns the dollar-quote opener at the start of s ("$$",
// "$body$"), if there is one.
func dollarTag(s string) (string, bool) {
	for j := 1; j < len(s); j++ {
		c := s[j]
		if c == '$' {
			return s[:j+1], true
		}
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || j > 1 && c >= '0' && c <= '9' || c >= 0x80) {
			return "", false
		}
	}
	return "", false
}

// blockCommentEnd returns the length of the (nested) block comment at the
// start of s.
func blockCommentEnd(s string) (int, error) {
	depth := 0
	for i := 0; i+1 < len(s); {
		switch {
		case s[i] == '/' && s[i+1] == '*':
			depth++
			i += 2
		case s[i] == '*' && s[i+1] == '/':
			depth--
			i += 2
			if depth == 0 {
				return i, nil
			}
		default:
			i++
		}
	}
	return 0, fmt.Errorf("unterminated comment")
}

func isIdentChar(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// safeRaw reports whether v may stand in a dollar-quoted body unquoted.
func safeRaw(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_-.:+ ", c) >= 0) {
			return false
		}
	}
	return true
}

// render substitutes vals into st, quoting each value for its context.
func (st statement) render(vals map[string]string) (string, error) {
	var sb strings.Builder
	for _, p := range st {
		if p.ph == "" {
			sb.WriteString(p.sql)
			continue
		}
		v, ok := vals[p.ph]
		if !ok {
			return "", fmt.Errorf("no value for {{%s}}", p.ph)
		}
		if strings.IndexByte(v, 0) >= 0 || !utf8.ValidString(v) {
			return "", fmt.Errorf("value of {{%s}} contains a NUL byte or is not valid UTF-8", p.ph)
		}
		switch p.ctx {
		case ctxBare:
			if p.ph == phName {
				sb.WriteString(pgx.Identifier{v}.Sanitize())
			} else {
				sb.WriteString(quoteLiteral(v))
			}
		case ctxIdent:
			sb.WriteString(strings.ReplaceAll(v, `"`, `""`))
		case ctxLiteral:
			sb.WriteString(strings.ReplaceAll(v, `'`, `''`))
		case ctxEscapeLiteral:
			sb.WriteString(strings.ReplaceAll(strings.ReplaceAll(v, `\`, `\\`), `'`, `''`))
		case ctxDollar:
			if !safeRaw(v) {
				return "", fmt.Errorf("value of {{%s}} has characters that cannot stand in a dollar-quoted body; quote the placeholder outside it", p.ph)
			}
			sb.WriteString(v)
		}
	}
	return sb.String(), nil
}

// quoteLiteral quotes v as a standard SQL string literal.
func quoteLiteral(v string) string {
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}

// truncate returns at most the first n bytes of s.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
