package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/logical/field"
)

const (
	maxRules   = 256
	maxRuleLen = 512
	// maxTTL bounds default_ttl and max_ttl: ten years.
	maxTTL = 10 * 8766 * time.Hour
)

// roleEntry is a role as stored: ACL rules in Redis's syntax, with their
// prefixes ("~app:*", "&events:*", "+@read"). A write replaces the whole
// role.
type roleEntry struct {
	KeyPatterns     []string      `json:"key_patterns"`
	ChannelPatterns []string      `json:"channel_patterns"`
	Commands        []string      `json:"commands"`
	DefaultTTL      time.Duration `json:"default_ttl"`
	MaxTTL          time.Duration `json:"max_ttl"`
}

// rules are the ACL SETUSER rules the role grants, after reset and the
// password.
func (r *roleEntry) rules() []string {
	out := make([]string, 0, len(r.KeyPatterns)+len(r.ChannelPatterns)+len(r.Commands))
	out = append(out, r.KeyPatterns...)
	out = append(out, r.ChannelPatterns...)
	return append(out, r.Commands...)
}

var roleFields = []string{"key_patterns", "channel_patterns", "commands", "creation_statements", "default_ttl", "max_ttl"}

// categories are Redis 7's ACL command categories (ACL CAT).
var categories = []string{
	"admin", "all", "bitmap", "blocking", "connection", "dangerous", "fast", "geo", "hash",
	"hyperloglog", "keyspace", "list", "pubsub", "read", "scripting", "set", "slow",
	"sortedset", "stream", "string", "transaction", "write",
}

// commandRE is a command name, or a command and a subcommand
// ("config|get"), as ACL rules name them.
var commandRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_.-]*(\|[a-zA-Z0-9_.-]+)?$`)

// checkGlob checks a Redis glob pattern: printable, without spaces, each
// '[' closed and no trailing escape.
func checkGlob(p string) error {
	if p == "" {
		return fmt.Errorf("empty pattern")
	}
	if len(p) > maxRuleLen {
		return fmt.Errorf("longer than %d bytes", maxRuleLen)
	}
	if strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("%q holds a space or a control character", field.Truncate(p, 64))
	}
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			if i == len(p)-1 {
				return fmt.Errorf("%q ends in an escape '\\'", field.Truncate(p, 64))
			}
			i++
		case '[':
			j := i + 1
			if j < len(p) && p[j] == '^' {
				j++
			}
			closed := false
			for ; j < len(p); j++ {
				if p[j] == '\\' {
					j++
					continue
				}
				if p[j] == ']' {
					closed = true
					break
				}
			}
			if !closed {
				return fmt.Errorf("%q has a '[' without its ']'", field.Truncate(p, 64))
			}
			i = j
		}
	}
	return nil
}

// keyRule turns a key pattern into its rule: "app:*" and "~app:*" are
// "~app:*"; "%R~app:*", "%W~…" and "%RW~…" (Redis 7 read/write key
// permissions) stay; "allkeys" stays.
func keyRule(p string) (string, error) {
	if p == "allkeys" || p == "~*" {
		return "~*", nil
	}
	prefix := "~"
	switch {
	case strings.HasPrefix(p, "%"):
		perm, rest, ok := strings.Cut(p[1:], "~")
		if !ok || (perm != "R" && perm != "W" && perm != "RW" && perm != "WR") {
			return "", fmt.Errorf("%q: a key permission is %%R~, %%W~ or %%RW~ before the pattern", field.Truncate(p, 64))
		}
		prefix, p = "%"+perm+"~", rest
	case strings.HasPrefix(p, "~"):
		p = p[1:]
	}
	if err := checkGlob(p); err != nil {
		return "", err
	}
	return prefix + p, nil
}

// channelRule turns a channel pattern into its rule ("events:*" and
// "&events:*" are "&events:*"; "allchannels" is "&*").
func channelRule(p string) (string, error) {
	if p == "allchannels" {
		return "&*", nil
	}
	p = strings.TrimPrefix(p, "&")
	if err := checkGlob(p); err != nil {
		return "", err
	}
	return "&" + p, nil
}

// commandRule checks a command rule: +@category, -@category, +command,
// -command, +command|subcommand, allcommands or nocommands.
func commandRule(c string) (string, error) {
	switch c {
	case "allcommands", "nocommands":
		return c, nil
	}
	if c != "" && strings.ContainsRune("><#!", rune(c[0])) || c == "nopass" || c == "resetpass" {
		// Never echo it: it may be a password or its hash.
		return "", fmt.Errorf("a role may not set passwords (>, <, #, !, nopass, resetpass): the engine makes them")
	}
	if len(c) < 2 || (c[0] != '+' && c[0] != '-') {
		return "", fmt.Errorf("%q: a command rule is +@category, -@category, +command or -command", field.Truncate(c, 64))
	}
	name := c[1:]
	if cat, ok := strings.CutPrefix(name, "@"); ok {
		if !slices.Contains(categories, strings.ToLower(cat)) {
			return "", fmt.Errorf("%q: unknown command category %q; Redis has %s", field.Truncate(c, 64), field.Truncate(cat, 32), strings.Join(categories, ", "))
		}
		return c[:1] + "@" + strings.ToLower(cat), nil
	}
	if !commandRE.MatchString(name) || len(name) > 64 {
		return "", fmt.Errorf("%q is not a command name", field.Truncate(c, 64))
	}
	return c[:1] + strings.ToLower(name), nil
}

// parseRules reads a list field and turns each element into a rule.
func parseRules(data map[string]any, name string, rule func(string) (string, error)) ([]string, error) {
	list, err := field.GetOr(data, name, parseList, nil)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(list))
	for _, s := range list {
		r, err := rule(s)
		if err != nil {
			return nil, logical.Invalid(name, "%v", err)
		}
		out = append(out, r)
	}
	return out, nil
}

func parseList(v any) ([]string, error) { return field.Strings(v, maxRules, maxRuleLen) }

// parseStatements reads Vault's creation_statements for Redis: ACL rules,
// as a list or as one JSON list in a string (`["~*", "+@read"]`), sorted
// into r by their prefix.
func parseStatements(v any, r *roleEntry) error {
	var list []string
	if s, ok := field.Single(v).(string); ok && strings.HasPrefix(strings.TrimSpace(s), "[") {
		if err := json.Unmarshal([]byte(s), &list); err != nil {
			return logical.Invalid("creation_statements", "want a JSON list of ACL rules: %v", err)
		}
	} else {
		var err error
		if list, err = field.Strings(v, maxRules, maxRuleLen); err != nil {
			return logical.Invalid("creation_statements", "%v", err)
		}
	}
	if len(list) == 1 && strings.HasPrefix(strings.TrimSpace(list[0]), "[") {
		return parseStatements(list[0], r)
	}
	for _, s := range list {
		s = strings.TrimSpace(s)
		var (
			rule string
			err  error
			dst  *[]string
		)
		switch {
		case s == "allkeys" || strings.HasPrefix(s, "~") || strings.HasPrefix(s, "%"):
			rule, err = keyRule(s)
			dst = &r.KeyPatterns
		case s == "allchannels" || strings.HasPrefix(s, "&"):
			rule, err = channelRule(s)
			dst = &r.ChannelPatterns
		default:
			rule, err = commandRule(s)
			dst = &r.Commands
		}
		if err != nil {
			return logical.Invalid("creation_statements", "%v", err)
		}
		*dst = append(*dst, rule)
	}
	return nil
}

func parseTTL(v any) (time.Duration, error) {
	return field.Duration(v, maxTTL, func(v any) (int64, error) {
		f, err := field.Whole(v)
		if err != nil {
			return 0, err
		}
		if f < 0 || f > float64(maxTTL/time.Second) {
			return 0, fmt.Errorf("must be from 0 to %d", int64(maxTTL/time.Second))
		}
		return int64(f), nil
	})
}

// parseRole checks a role write, before anything is stored.
func parseRole(data map[string]any) (*roleEntry, error) {
	if err := field.CheckFields(data, roleFields...); err != nil {
		return nil, err
	}
	r := &roleEntry{}
	var err error
	if r.KeyPatterns, err = parseRules(data, "key_patterns", keyRule); err != nil {
		return nil, err
	}
	if r.ChannelPatterns, err = parseRules(data, "channel_patterns", channelRule); err != nil {
		return nil, err
	}
	if r.Commands, err = parseRules(data, "commands", commandRule); err != nil {
		return nil, err
	}
	if v := data["creation_statements"]; v != nil {
		if err := parseStatements(v, r); err != nil {
			return nil, err
		}
	}
	if len(r.Commands) == 0 {
		return nil, logical.Invalid("commands", "a role must allow some commands, like +@read or +get")
	}
	if r.DefaultTTL, err = field.GetOr(data, "default_ttl", parseTTL, 0); err != nil {
		return nil, err
	}
	if r.MaxTTL, err = field.GetOr(data, "max_ttl", parseTTL, 0); err != nil {
		return nil, err
	}
	if r.MaxTTL > 0 && r.DefaultTTL > r.MaxTTL {
		return nil, logical.Invalid("default_ttl", "%d seconds exceeds max_ttl (%d seconds)", seconds(r.DefaultTTL), seconds(r.MaxTTL))
	}
	return r, nil
}

func (e *Engine) getRole(ctx context.Context, name string) (*roleEntry, error) {
	raw, err := logical.GetOptional(ctx, e.storage, rolePrefix+name)
	if err != nil || raw == nil {
		return nil, err
	}
	var r roleEntry
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("redis: decode role %q: %w", name, err)
	}
	return &r, nil
}

func (e *Engine) writeRole(ctx context.Context, name string, data map[string]any) (*logical.Response, error) {
	r, err := parseRole(data)
	if err != nil {
		return nil, err
	}
	return nil, e.roleStore.Put(ctx, name, r)
}

func nonNil(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}

func (e *Engine) readRole(ctx context.Context, name string) (*logical.Response, error) {
	r, err := e.getRole(ctx, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, e.roleStore.NotFound(name)
	}
	return &logical.Response{Data: map[string]any{
		"key_patterns":        nonNil(r.KeyPatterns),
		"channel_patterns":    nonNil(r.ChannelPatterns),
		"commands":            nonNil(r.Commands),
		"creation_statements": r.rules(),
		"default_ttl":         seconds(r.DefaultTTL),
		"max_ttl":             seconds(r.MaxTTL),
	}}, nil
}
