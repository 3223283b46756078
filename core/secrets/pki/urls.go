package pki

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/logical/field"
)

// urlsEntry is config/urls: URLs written into every certificate the mount
// issues (Authority Information Access and CRL distribution points).
type urlsEntry struct {
	IssuingCertificates   []string `json:"issuing_certificates"`
	CRLDistributionPoints []string `json:"crl_distribution_points"`
	OCSPServers           []string `json:"ocsp_servers"`
}

// urlFields are the fields of config/urls, with where each goes.
var urlFields = []struct {
	name string
	dst  func(*urlsEntry) *[]string
}{
	{"issuing_certificates", func(u *urlsEntry) *[]string { return &u.IssuingCertificates }},
	{"crl_distribution_points", func(u *urlsEntry) *[]string { return &u.CRLDistributionPoints }},
	{"ocsp_servers", func(u *urlsEntry) *[]string { return &u.OCSPServers }},
}

// loadURLs returns config/urls, read from storage only the first time.
func (e *Engine) loadURLs(ctx context.Context) (*urlsEntry, error) {
	if u := e.urls.Load(); u != nil {
		return u, nil
	}
	e.urlsMu.Lock()
	defer e.urlsMu.Unlock()
	return e.loadURLsLocked(ctx)
}

func (e *Engine) loadURLsLocked(ctx context.Context) (*urlsEntry, error) {
	if u := e.urls.Load(); u != nil {
		return u, nil
	}
	raw, err := logical.GetOptional(ctx, e.storage, urlsKey)
	if err != nil {
		return nil, fmt.Errorf("pki: read config/urls: %w", err)
	}
	u := &urlsEntry{}
	if raw != nil {
		if err := json.Unmarshal(raw, u); err != nil {
			return nil, fmt.Errorf("pki: decode config/urls: %w", err)
		}
	}
	e.urls.Store(u)
	return u, nil
}

func (e *Engine) readURLs(ctx context.Context) (*logical.Response, error) {
	u, err := e.loadURLs(ctx)
	if err != nil {
		return nil, err
	}
	data := map[string]any{}
	for _, f := range urlFields {
		data[f.name] = nonNil(*f.dst(u))
	}
	return &logical.Response{Data: data}, nil
}

// writeURLs sets the fields given and keeps the others, as Vault does.
func (e *Engine) writeURLs(ctx context.Context, data map[string]any) (*logical.Response, error) {
	names := make([]string, len(urlFields))
	for i, f := range urlFields {
		names[i] = f.name
	}
	if err := field.CheckFields(data, names...); err != nil {
		return nil, err
	}
	e.urlsMu.Lock()
	defer e.urlsMu.Unlock()
	cur, err := e.loadURLsLocked(ctx)
	if err != nil {
		return nil, err
	}
	next := *cur
	for _, f := range urlFields {
		v, ok, err := field.GetNonNull(data, f.name, parseURLs)
		if err != nil {
			return nil, err
		}
		if ok {
			*f.dst(&next) = v
		}
	}
	raw, err := json.Marshal(&next)
	if err != nil {
		return nil, fmt.Errorf("pki: encode config/urls: %w", err)
	}
	if err := e.storage.Put(ctx, urlsKey, raw); err != nil {
		return nil, fmt.Errorf("pki: write config/urls: %w", err)
	}
	e.urls.Store(&next)
	return nil, nil
}
