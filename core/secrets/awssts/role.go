package awssts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/logical/field"
)

const (
	maxPolicyLen = 64 << 10
	maxARNs      = 20
)

var (
	policyARNRE = regexp.MustCompile(`^arn:aws[a-z-]*:iam::(\d{12}|aws):policy/[\w+=,.@/-]{1,512}$`)
	roleARNRE   = regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$`)
	userPathRE  = regexp.MustCompile(`^/([\x21-\x7e]{0,510}/)?$`)
)

// roleEntry is a role as stored. A write replaces the whole role.
type roleEntry struct {
	CredentialType string        `json:"credential_type"`
	PolicyDocument string        `json:"policy_document,omitempty"`
	PolicyARNs     []string      `json:"policy_arns,omitempty"`
	RoleARNs       []string      `json:"role_arns,omitempty"`
	DefaultSTSTTL  time.Duration `json:"default_sts_ttl,omitempty"`
	MaxSTSTTL      time.Duration `json:"max_sts_ttl,omitempty"`
	UserPath       string        `json:"user_path,omitempty"`
}

var roleFields = []string{"credential_type", "policy_document", "policy_arns", "role_arns", "default_sts_ttl", "max_sts_ttl", "user_path"}

// parsePolicy checks an IAM policy document: a JSON object with a
// Statement. It returns it compacted.
func parsePolicy(v any) (string, error) {
	var raw []byte
	switch x := field.Single(v).(type) {
	case string:
		raw = []byte(x)
	case map[string]any:
		var err error
		if raw, err = json.Marshal(x); err != nil {
			return "", fmt.Errorf("not JSON: %v", err)
		}
	default:
		return "", fmt.Errorf("want a JSON policy document, got %s", field.TypeName(v))
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return "", nil
	}
	if len(raw) > maxPolicyLen {
		return "", fmt.Errorf("longer than %d bytes", maxPolicyLen)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return "", fmt.Errorf("not a JSON object: %v", err)
	}
	switch st := doc["Statement"].(type) {
	case map[string]any:
	case []any:
		if len(st) == 0 {
			return "", fmt.Errorf("its Statement is empty")
		}
		for i, s := range st {
			if _, ok := s.(map[string]any); !ok {
				return "", fmt.Errorf("its Statement[%d] is not an object", i)
			}
		}
	default:
		return "", fmt.Errorf("has no Statement (an object or a list of objects)")
	}
	if v, ok := doc["Version"]; ok && v != "2012-10-17" && v != "2008-10-17" {
		return "", fmt.Errorf("its Version must be 2012-10-17")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return "", fmt.Errorf("not JSON: %v", err)
	}
	return buf.String(), nil
}

func parseARNs(re *regexp.Regexp, what string) func(any) ([]string, error) {
	return func(v any) ([]string, error) {
		list, err := field.Strings(v, maxARNs, 2048)
		if err != nil {
			return nil, err
		}
		for _, a := range list {
			if !re.MatchString(a) {
				return nil, fmt.Errorf("%q is not %s ARN", field.Truncate(a, 128), what)
			}
		}
		return list, nil
	}
}

func parseSTSTTL(v any) (time.Duration, error) {
	d, err := parseTTL(v)
	if err == nil && d != 0 && (d < MinSTSTTL || d > MaxSTSTTL) {
		return 0, fmt.Errorf("must be from %d to %d seconds (AWS's bounds)", seconds(MinSTSTTL), seconds(MaxSTSTTL))
	}
	return d, err
}

func parseRole(data map[string]any) (*roleEntry, error) {
	if err := field.CheckFields(data, roleFields...); err != nil {
		return nil, err
	}
	r := &roleEntry{}
	var err error
	if r.CredentialType, err = field.GetOr(data, "credential_type", parseString, ""); err != nil {
		return nil, err
	}
	if r.PolicyDocument, err = field.GetOr(data, "policy_document", parsePolicy, ""); err != nil {
		return nil, err
	}
	if r.PolicyARNs, err = field.GetOr(data, "policy_arns", parseARNs(policyARNRE, "a managed policy"), nil); err != nil {
		return nil, err
	}
	if r.RoleARNs, err = field.GetOr(data, "role_arns", parseARNs(roleARNRE, "an IAM role"), nil); err != nil {
		return nil, err
	}
	if r.DefaultSTSTTL, err = field.GetOr(data, "default_sts_ttl", parseSTSTTL, 0); err != nil {
		return nil, err
	}
	if r.MaxSTSTTL, err = field.GetOr(data, "max_sts_ttl", parseSTSTTL, 0); err != nil {
		return nil, err
	}
	if r.UserPath, err = field.GetOr(data, "user_path", parseString, ""); err != nil {
		return nil, err
	}
	switch r.CredentialType {
	case "":
		return nil, logical.Invalid("credential_type", "required: iam_user or assumed_role")
	case TypeIAMUser:
		switch {
		case r.PolicyDocument == "" && len(r.PolicyARNs) == 0:
			return nil, logical.Invalid("policy_document", "an iam_user role needs policy_document or policy_arns")
		case len(r.RoleARNs) > 0:
			return nil, logical.Invalid("role_arns", "only for credential_type assumed_role")
		case r.DefaultSTSTTL != 0 || r.MaxSTSTTL != 0:
			return nil, logical.Invalid("default_sts_ttl", "only for credential_type assumed_role; iam_user leases come from config/lease")
		}
		if r.UserPath == "" {
			r.UserPath = "/"
		}
		if !userPathRE.MatchString(r.UserPath) {
			return nil, logical.Invalid("user_path", "%q must start and end with '/' and hold printable ASCII", field.Truncate(r.UserPath, 64))
		}
	case TypeAssumedRole:
		switch {
		case len(r.RoleARNs) == 0:
			return nil, logical.Invalid("role_arns", "an assumed_role role needs at least one role ARN")
		case r.UserPath != "":
			return nil, logical.Invalid("user_path", "only for credential_type iam_user")
		case r.MaxSTSTTL > 0 && r.DefaultSTSTTL > r.MaxSTSTTL:
			return nil, logical.Invalid("default_sts_ttl", "%d seconds exceeds max_sts_ttl (%d seconds)", seconds(r.DefaultSTSTTL), seconds(r.MaxSTSTTL))
		}
	case "federation_token", "session_tags":
		return nil, logical.Invalid("credential_type", "%q is not supported; use iam_user or assumed_role", r.CredentialType)
	default:
		return nil, logical.Invalid("credential_type", "%q: want iam_user or assumed_role", field.Truncate(r.CredentialType, 32))
	}
	return r, nil
}

func (e *Engine) getRole(ctx context.Context, name string) (*roleEntry, error) {
	var r roleEntry
	ok, err := logical.GetJSON(ctx, e.storage, rolePrefix+name, &r)
	if err != nil || !ok {
		return nil, err
	}
	return &r, nil
}

func (e *Engine) writeRole(ctx context.Context, name string, data map[string]any) (*logical.Response, error) {
	r, err := parseRole(data)
	if err != nil {
		return nil, err
	}
	return nil, logical.PutJSON(ctx, e.storage, rolePrefix+name, r)
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
		"credential_type": r.CredentialType,
		"policy_document": r.PolicyDocument,
		"policy_arns":     nonNil(r.PolicyARNs),
		"role_arns":       nonNil(r.RoleARNs),
		"default_sts_ttl": seconds(r.DefaultSTSTTL),
		"max_sts_ttl":     seconds(r.MaxSTSTTL),
		"user_path":       r.UserPath,
	}}, nil
}
