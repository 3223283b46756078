package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/secrethub/secrethub/core"
	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/wire"
)

// operationOf maps an HTTP request to a logical operation: GET reads (or
// lists with ?list=true), LIST lists, PUT/POST write, DELETE deletes.
// PATCH is refused (405): no engine merges partial writes yet, and
// treating one as a full write would drop the fields it leaves out. Vault's
// clients fall back to read, merge and check-and-set write.
func operationOf(r *http.Request) (logical.Operation, bool) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if ok, _ := parseBool(r.URL.Query().Get("list")); ok {
			return logical.OpList, true
		}
		return logical.OpRead, true
	case "LIST":
		return logical.OpList, true
	case http.MethodPut, http.MethodPost:
		return logical.OpUpdate, true
	case http.MethodDelete:
		return logical.OpDelete, true
	}
	return "", false
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "true", "1":
		return true, nil
	case "", "false", "0":
		return false, nil
	}
	return false, fmt.Errorf("not a boolean: %q", s)
}

// clientAddr is the peer's address. Forwarded headers are not trusted.
func clientAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// requestData is the JSON object body of a write, or the query parameters
// of a read, list or delete.
func requestData(r *http.Request, op logical.Operation) (map[string]any, *apiError) {
	if op == logical.OpUpdate {
		body, e := readBody(r)
		if e != nil {
			return nil, e
		}
		if len(bytes.TrimSpace(body)) == 0 {
			return map[string]any{}, nil
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		var data map[string]any
		if e := decodeOne(dec, &data, "; the body must be a JSON object"); e != nil {
			return nil, e
		}
		if data == nil { // "null", as Vault's client sends for a write without data
			data = map[string]any{}
		}
		return data, nil
	}
	q := r.URL.Query()
	q.Del("list")
	if len(q) == 0 {
		return nil, nil
	}
	data := make(map[string]any, len(q))
	for k, v := range q {
		data[k] = v[0]
	}
	return data, nil
}

// logical serves every path outside the seal endpoints through the core's
// request path.
func (h *handler) logical(w http.ResponseWriter, r *http.Request, path string) {
	if h.core.Sealed() {
		writeError(w, http.StatusServiceUnavailable, "SecretHub is sealed")
		return
	}
	req := &logical.Request{Path: path, ClientToken: requestToken(r), ClientAddr: clientAddr(r), Operation: logical.Operation(strings.ToLower(r.Method))}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		// Only a chain the listener verified (the agent listener, which
		// requires client certificates from the agent CA) counts.
		req.PeerCertificates = r.TLS.PeerCertificates
	}
	op, ok := operationOf(r)
	if !ok {
		h.reject(w, r, req, fmt.Errorf("%w: method %s", logical.ErrUnsupportedOperation, r.Method))
		return
	}
	req.Operation = op
	data, apiErr := requestData(r, op)
	if apiErr != nil {
		err := error(&logical.InvalidRequestError{Reason: apiErr.message})
		if apiErr.status == http.StatusRequestEntityTooLarge {
			err = fmt.Errorf("%w: %s", logical.ErrRequestTooLarge, apiErr.message)
		}
		h.reject(w, r, req, err)
		return
	}
	req.Data = data
	if strings.HasSuffix(r.URL.Path, "/") && op == logical.OpRead {
		req.Operation = logical.OpList
	}
	resp, err := h.core.HandleRequest(r.Context(), req)
	if err != nil {
		if core.StatusOf(err) == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", "GET, LIST, PUT, POST, DELETE")
		}
		h.respondError(w, r, err)
		return
	}
	writeResponse(w, req, resp)
}

// reject audits a request refused before the request path and answers it.
func (h *handler) reject(w http.ResponseWriter, r *http.Request, req *logical.Request, err error) {
	if aerr := h.core.RejectRequest(r.Context(), req, err); !errors.Is(aerr, err) {
		h.respondError(w, r, aerr)
		return
	}
	switch {
	case errors.Is(err, logical.ErrUnsupportedOperation):
		w.Header().Set("Allow", "GET, LIST, PUT, POST, DELETE")
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed; use GET, LIST, PUT, POST or DELETE", r.Method))
	default:
		h.respondError(w, r, err)
	}
}

// writeResponse writes Vault's envelope, 204 when there is nothing to say,
// or a raw body.
func writeResponse(w http.ResponseWriter, req *logical.Request, resp *logical.Response) {
	if resp == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if resp.Raw != nil {
		ct := resp.RawContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(statusOr(resp.StatusCode, http.StatusOK))
		_, _ = w.Write(resp.Raw)
		return
	}
	if resp.Data == nil && resp.Auth == nil && resp.Secret == nil && len(resp.Warnings) == 0 {
		w.WriteHeader(statusOr(resp.StatusCode, http.StatusNoContent))
		return
	}
	writeJSON(w, statusOr(resp.StatusCode, http.StatusOK), envelope(req, resp))
}

// envelope is Vault's response envelope of resp: the body of a REST
// answer, and the response of an agent's read.
func envelope(req *logical.Request, resp *logical.Response) wire.Response {
	out := wire.Response{RequestID: req.ID, Data: resp.Data, Warnings: resp.Warnings}
	if s := resp.Secret; s != nil && s.LeaseID != "" {
		out.LeaseID, out.LeaseDuration, out.Renewable = s.LeaseID, int64(s.TTL.Seconds()), s.Renewable
	}
	if a := resp.Auth; a != nil {
		out.Auth = &wire.Auth{
			ClientToken: a.ClientToken, Accessor: a.Accessor, Policies: a.Policies, TokenPolicies: a.TokenPolicies,
			Metadata: a.Metadata, LeaseDuration: int64(a.LeaseDuration.Seconds()), Renewable: a.Renewable,
			EntityID: a.EntityID, TokenType: a.TokenType, Orphan: a.Orphan,
		}
	}
	return out
}

func statusOr(s, def int) int {
	if s != 0 {
		return s
	}
	return def
}
