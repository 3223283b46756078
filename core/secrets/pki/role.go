package pki

import (
	"context"
	"time"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/logical/field"
)

// roleEntry is a role as stored. A write replaces the whole role, fields
// not given taking their defaults, as Vault does.
type roleEntry struct {
	AllowedDomains            []string      `json:"allowed_domains"`
	AllowSubdomains           bool          `json:"allow_subdomains"`
	AllowBareDomains          bool          `json:"allow_bare_domains"`
	AllowGlobDomains          bool          `json:"allow_glob_domains"`
	AllowWildcardCertificates bool          `json:"allow_wildcard_certificates"`
	AllowLocalhost            bool          `json:"allow_localhost"`
	AllowAnyName              bool          `json:"allow_any_name"`
	AllowIPSANs               bool          `json:"allow_ip_sans"`
	AllowedURISANs            []string      `json:"allowed_uri_sans"`
	EnforceHostnames          bool          `json:"enforce_hostnames"`
	KeyType                   string        `json:"key_type"`
	KeyBits                   int           `json:"key_bits"`
	TTL                       time.Duration `json:"ttl"`
	MaxTTL                    time.Duration `json:"max_ttl"`
	ServerFlag                bool          `json:"server_flag"`
	ClientFlag                bool          `json:"client_flag"`
	CodeSigningFlag           bool          `json:"code_signing_flag"`
	EmailProtectionFlag       bool          `json:"email_protection_flag"`
	Organization              []string      `json:"organization"`
	OU                        []string      `json:"ou"`
	Country                   []string      `json:"country"`
	Locality                  []string      `json:"locality"`
	Province                  []string      `json:"province"`
	StreetAddress             []string      `json:"street_address"`
	PostalCode                []string      `json:"postal_code"`
	NoStore                   bool          `json:"no_store"`
	RequireCN                 bool          `json:"require_cn"`
	UseCSRCommonName          bool          `json:"use_csr_common_name"`
	UseCSRSANs                bool          `json:"use_csr_sans"`
}

// roleBools are the boolean fields of a role with their defaults (Vault's).
var roleBools = []struct {
	name string
	def  bool
	dst  func(*roleEntry) *bool
}{
	{"allow_subdomains", false, func(r *roleEntry) *bool { return &r.AllowSubdomains }},
	{"allow_bare_domains", false, func(r *roleEntry) *bool { return &r.AllowBareDomains }},
	{"allow_glob_domains", false, func(r *roleEntry) *bool { return &r.AllowGlobDomains }},
	{"allow_wildcard_certificates", true, func(r *roleEntry) *bool { return &r.AllowWildcardCertificates }},
	{"allow_localhost", true, func(r *roleEntry) *bool { return &r.AllowLocalhost }},
	{"allow_any_name", false, func(r *roleEntry) *bool { return &r.AllowAnyName }},
	{"allow_ip_sans", true, func(r *roleEntry) *bool { return &r.AllowIPSANs }},
	{"enforce_hostnames", true, func(r *roleEntry) *bool { return &r.EnforceHostnames }},
	{"server_flag", true, func(r *roleEntry) *bool { return &r.ServerFlag }},
	{"client_flag", true, func(r *roleEntry) *bool { return &r.ClientFlag }},
	{"code_signing_flag", false, func(r *roleEntry) *bool { return &r.CodeSigningFlag }},
	{"email_protection_flag", false, func(r *roleEntry) *bool { return &r.EmailProtectionFlag }},
	{"no_store", false, func(r *roleEntry) *bool { return &r.NoStore }},
	{"require_cn", true, func(r *roleEntry) *bool { return &r.RequireCN }},
	{"use_csr_common_name", true, func(r *roleEntry) *bool { return &r.UseCSRCommonName }},
	{"use_csr_sans", true, func(r *roleEntry) *bool { return &r.UseCSRSANs }},
}

// roleLists are the list fields of a role.
var roleLists = []struct {
	name string
	dst  func(*roleEntry) *[]string
}{
	{"allowed_domains", func(r *roleEntry) *[]string { return &r.AllowedDomains }},
	{"allowed_uri_sans", func(r *roleEntry) *[]string { return &r.AllowedURISANs }},
	{"organization", func(r *roleEntry) *[]string { return &r.Organization }},
	{"ou", func(r *roleEntry) *[]string { return &r.OU }},
	{"country", func(r *roleEntry) *[]string { return &r.Country }},
	{"locality", func(r *roleEntry) *[]string { return &r.Locality }},
	{"province", func(r *roleEntry) *[]string { return &r.Province }},
	{"street_address", func(r *roleEntry) *[]string { return &r.StreetAddress }},
	{"postal_code", func(r *roleEntry) *[]string { return &r.PostalCode }},
}

// roleFields are the fields a write to roles/<name> accepts.
var roleFields = func() []string {
	out := []string{"key_type", "key_bits", "ttl", "max_ttl"}
	for _, b := range roleBools {
		out = append(out, b.name)
	}
	for _, l := range roleLists {
		out = append(out, l.name)
	}
	return out
}()

// parseRole checks and parses a role write, before any storage is touched.
// maxTTL is the mount's maximum, which a role without max_ttl inherits.
func parseRole(data map[string]any, mountMaxTTL time.Duration) (*roleEntry, error) {
	if err := field.CheckFields(data, roleFields...); err != nil {
		return nil, err
	}
	r := &roleEntry{}
	var err error
	for _, b := range roleBools {
		if *b.dst(r), err = field.GetOr(data, b.name, field.Bool, b.def); err != nil {
			return nil, err
		}
	}
	for _, l := range roleLists {
		if *l.dst(r), err = field.GetOr(data, l.name, parseStrings, []string{}); err != nil {
			return nil, err
		}
	}
	for _, d := range r.AllowedDomains {
		if !printableASCII(d) {
			return nil, logical.Invalid("allowed_domains", "%q must be printable ASCII without spaces", field.Truncate(d, 64))
		}
	}
	for _, u := range r.AllowedURISANs {
		if !printableASCII(u) {
			return nil, logical.Invalid("allowed_uri_sans", "%q must be printable ASCII without spaces", field.Truncate(u, 64))
		}
	}
	if r.KeyType, err = field.GetOr(data, "key_type", parseString, ""); err != nil {
		return nil, err
	}
	if r.KeyType == "" {
		r.KeyType = KeyTypeEC
	}
	bits, err := field.GetOr(data, "key_bits", parseInt(0, maxRSABits), 0)
	if err != nil {
		return nil, err
	}
	switch r.KeyType {
	case KeyTypeAny:
		r.KeyBits = 0
	case KeyTypeEC, KeyTypeRSA:
		if r.KeyBits, err = checkGenKey(r.KeyType, int(bits), 256, 2048); err != nil {
			return nil, logical.Invalid("key_bits", "%v", err)
		}
	default:
		return nil, logical.Invalid("key_type", "must be rsa, ec or any, not %q", field.Truncate(r.KeyType, 32))
	}
	if r.TTL, err = field.GetOr(data, "ttl", parseTTL, 0); err != nil {
		return nil, err
	}
	if r.MaxTTL, err = field.GetOr(data, "max_ttl", parseTTL, 0); err != nil {
		return nil, err
	}
	limit, limitName := r.MaxTTL, "max_ttl"
	if limit == 0 {
		limit, limitName = mountMaxTTL, "the mount's maximum"
	}
	if r.TTL > limit {
		return nil, logical.Invalid("ttl", "%d seconds exceeds %s (%d seconds)", seconds(r.TTL), limitName, seconds(limit))
	}
	return r, nil
}

// mustRole reads the role a request names. An unknown role is bad input
// (400), as in Vault: the request names something that does not exist.
func (e *Engine) mustRole(ctx context.Context, name string) (*roleEntry, error) {
	r, err := e.roleStore.Get(ctx, name)
	if err == nil && r == nil {
		err = logical.Invalid("role", "unknown role %q", name)
	}
	return r, err
}

func (e *Engine) writeRole(ctx context.Context, name string, data map[string]any) (*logical.Response, error) {
	r, err := parseRole(data, e.maxTTL)
	if err != nil {
		return nil, err
	}
	return nil, e.roleStore.Put(ctx, name, r)
}

func (e *Engine) readRole(ctx context.Context, name string) (*logical.Response, error) {
	r, err := e.roleStore.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, e.roleStore.NotFound(name)
	}
	data := map[string]any{
		"key_type": r.KeyType,
		"key_bits": r.KeyBits,
		"ttl":      seconds(r.TTL),
		"max_ttl":  seconds(r.MaxTTL),
	}
	for _, b := range roleBools {
		data[b.name] = *b.dst(r)
	}
	for _, l := range roleLists {
		data[l.name] = nonNil(*l.dst(r))
	}
	return &logical.Response{Data: data}, nil
}

// effectiveMaxTTL is the longest TTL a certificate of r may have.
func (e *Engine) effectiveMaxTTL(r *roleEntry) time.Duration {
	if r.MaxTTL > 0 {
		return r.MaxTTL
	}
	return e.maxTTL
}
