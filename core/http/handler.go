// Package http serves the core's REST API.
//
// Paths, verbs, bodies and envelopes follow Vault's HTTP API, so Vault's
// clients work against SecretHub unchanged: a successful response is the
// endpoint's JSON (or 204), a failure is {"errors":[...]} with a 4xx or 5xx
// status. This package only translates between HTTP and the core's methods;
// it holds no logic of its own.
package http

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/secrethub/secrethub/core"
	"github.com/secrethub/secrethub/core/wire"
)

// DefaultMaxRequestBytes is the default limit on a request body.
const DefaultMaxRequestBytes = 1 << 20

// Options tune the handler.
type Options struct {
	// MaxRequestBytes limits request bodies; larger ones get 413. Zero
	// means DefaultMaxRequestBytes.
	MaxRequestBytes int64
	// Logger receives one line per failed request. Default slog.Default().
	Logger *slog.Logger
}

// route is one path's handlers by method.
type route map[string]http.HandlerFunc

type handler struct {
	core    *core.Core
	log     *slog.Logger
	routes  map[string]route
	maxBody int64
}

// New returns the API handler for c.
func New(c *core.Core, opts Options) http.Handler {
	h := &handler{core: c, log: opts.Logger, maxBody: opts.MaxRequestBytes}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxRequestBytes
	}
	h.routes = map[string]route{
		"sys/init":        {http.MethodGet: h.initStatus, http.MethodPut: h.init, http.MethodPost: h.init},
		"sys/seal-status": {http.MethodGet: h.sealStatus},
		"sys/unseal":      {http.MethodPut: h.unseal, http.MethodPost: h.unseal},
		"sys/health":      {http.MethodGet: h.health, http.MethodHead: h.health},
		// The agent WebSocket (agentws.go): on the agent listener only.
		strings.TrimPrefix(wire.AgentConnectPath, "/v1/"): {http.MethodGet: h.agentConnect},
	}
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	path, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	if !ok {
		writeError(w, http.StatusNotFound, "no handler for "+strconv.Quote(r.URL.Path)+"; the API lives under /v1/")
		return
	}
	path = strings.TrimSuffix(path, "/")
	rt, ok := h.routes[path]
	if !ok {
		r.Body = http.MaxBytesReader(w, r.Body, h.maxBody)
		h.logical(w, r, path)
		return
	}
	method := r.Method
	if method == "LIST" { // Vault clients send LIST; no sys route here lists.
		method = http.MethodGet
	}
	fn, ok := rt[method]
	if !ok {
		allowed := make([]string, 0, len(rt))
		for m := range rt {
			allowed = append(allowed, m)
		}
		slices.Sort(allowed)
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s; allowed: %s", r.Method, r.URL.Path, strings.Join(allowed, ", ")))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.maxBody)
	fn(w, r)
}

// requestToken returns the client token from X-SecretHub-Token,
// X-Vault-Token or an Authorization bearer header, in that order.
func requestToken(r *http.Request) string {
	if t := r.Header.Get("X-SecretHub-Token"); t != "" {
		return t
	}
	if t := r.Header.Get("X-Vault-Token"); t != "" {
		return t
	}
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return ""
}

// decodeBody decodes a JSON object body into v, refusing unknown fields.
// An empty body leaves v untouched. The error names the problem and the
// HTTP status to answer with.
func decodeBody(r *http.Request, v any) *apiError {
	body, e := readBody(r)
	if e != nil {
		return e
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	return decodeOne(dec, v, "")
}

// readBody reads the whole request body; a body over the limit is a 413.
func readBody(r *http.Request) ([]byte, *apiError) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &apiError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", tooBig.Limit)}
		}
		return nil, &apiError{http.StatusBadRequest, "reading request body: " + err.Error()}
	}
	return body, nil
}

// decodeOne decodes exactly one JSON value from dec into v; hint is added
// to a decoding error's message.
func decodeOne(dec *json.Decoder, v any, hint string) *apiError {
	if err := dec.Decode(v); err != nil {
		return &apiError{http.StatusBadRequest, describeJSONError(err) + hint}
	}
	if dec.More() {
		return &apiError{http.StatusBadRequest, "invalid JSON body: more than one value"}
	}
	return nil
}

// describeJSONError turns encoding/json's errors into messages that name
// the field, without echoing the body (it may hold a secret).
func describeJSONError(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return fmt.Sprintf("invalid JSON body: expected a %s, got %s", typeErr.Type, typeErr.Value)
		}
		return fmt.Sprintf("invalid value for field %q: expected %s, got %s", typeErr.Field, typeErr.Type, typeErr.Value)
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("invalid JSON body at byte %d", syntaxErr.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "invalid JSON body: unexpected end"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	default:
		return "invalid JSON body"
	}
}

type apiError struct {
	status  int
	message string
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msgs ...string) {
	writeJSON(w, status, wire.ErrorResponse{Errors: msgs})
}

// respondError answers err with core.StatusOf's status and
// core.PublicMessage's text. Internal errors are logged in full; the
// client gets a generic message.
func (h *handler) respondError(w http.ResponseWriter, r *http.Request, err error) {
	status := core.StatusOf(err)
	if status == http.StatusInternalServerError {
		h.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "error", err.Error())
	}
	writeError(w, status, core.PublicMessage(err))
}

func (h *handler) initStatus(w http.ResponseWriter, r *http.Request) {
	ok, err := h.core.Initialized(r.Context())
	if err != nil {
		h.respondError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.InitStatusResponse{Initialized: ok})
}

// unsupportedInitField names the first field of req that Vault's client
// may send but the Shamir seal has no use for, if it is set.
func unsupportedInitField(req *wire.InitRequest) string {
	switch {
	case len(req.PGPKeys) > 0:
		return "pgp_keys"
	case req.StoredShares != 0:
		return "stored_shares"
	case req.RecoveryShares != 0:
		return "recovery_shares"
	case req.RecoveryThreshold != 0:
		return "recovery_threshold"
	case len(req.RecoveryPGPKeys) > 0:
		return "recovery_pgp_keys"
	case req.RootTokenPGPKey != "":
		return "root_token_pgp_key"
	}
	return ""
}

func (h *handler) init(w http.ResponseWriter, r *http.Request) {
	var req wire.InitRequest
	if e := decodeBody(r, &req); e != nil {
		writeError(w, e.status, e.message)
		return
	}
	if f := unsupportedInitField(&req); f != "" {
		writeError(w, http.StatusBadRequest, f+": not supported by the Shamir seal; leave it unset")
		return
	}
	if req.SecretShares < 0 || req.SecretThreshold < 0 {
		writeError(w, http.StatusBadRequest, "secret_shares and secret_threshold must not be negative")
		return
	}
	res, err := h.core.Init(r.Context(), core.InitRequest{SecretShares: req.SecretShares, SecretThreshold: req.SecretThreshold})
	if err != nil {
		h.respondError(w, r, err)
		return
	}
	out := wire.InitResponse{RootToken: res.RootToken}
	for _, s := range res.Shares {
		out.Keys = append(out.Keys, hex.EncodeToString(s))
		out.KeysBase64 = append(out.KeysBase64, base64.StdEncoding.EncodeToString(s))
		clear(s)
	}
	writeJSON(w, http.StatusOK, out)
}

func toSealStatus(st core.SealStatus) wire.SealStatusResponse {
	return wire.SealStatusResponse{
		Type: st.Type, Initialized: st.Initialized, Sealed: st.Sealed,
		T: st.Threshold, N: st.Shares, Progress: st.Progress, Nonce: st.Nonce,
		Version: core.Version, ClusterName: st.ClusterName, ClusterID: st.ClusterID,
		StorageType: st.StorageType,
	}
}

func (h *handler) sealStatus(w http.ResponseWriter, r *http.Request) {
	st, err := h.core.SealStatus(r.Context())
	if err != nil {
		h.respondError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toSealStatus(st))
}

func (h *handler) unseal(w http.ResponseWriter, r *http.Request) {
	var req wire.UnsealRequest
	if e := decodeBody(r, &req); e != nil {
		writeError(w, e.status, e.message)
		return
	}
	if req.Migrate {
		writeError(w, http.StatusBadRequest, "migrate: seal migration is not supported")
		return
	}
	var st core.SealStatus
	var err error
	switch {
	case req.Reset:
		st, err = h.core.ResetUnseal(r.Context())
	case req.Key == "":
		writeError(w, http.StatusBadRequest, "key: missing; give one unseal key share (hex or base64), or reset: true")
		return
	default:
		share, derr := core.DecodeShare(req.Key)
		if derr != nil {
			h.respondError(w, r, derr)
			return
		}
		st, err = h.core.Unseal(r.Context(), share)
		clear(share)
	}
	if err != nil {
		h.respondError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toSealStatus(st))
}

// health answers with Vault's status codes: 200 active, 429 standby, 472
// DR secondary, 473 performance standby, 501 uninitialized, 503 sealed.
// The *code query parameters override each, and standbyok /
// perfstandbyok turn a standby's answer into the active code.
func (h *handler) health(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	codes := map[string]int{
		"activecode": http.StatusOK, "standbycode": http.StatusTooManyRequests,
		"drsecondarycode": 472, "performancestandbycode": 473,
		"uninitcode": http.StatusNotImplemented, "sealedcode": http.StatusServiceUnavailable,
	}
	for name := range codes {
		v := q.Get(name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 || n > 599 {
			writeError(w, http.StatusBadRequest, name+": must be an HTTP status code (100-599)")
			return
		}
		codes[name] = n
	}
	for _, name := range []string{"standbyok", "perfstandbyok"} {
		if v := q.Get(name); v != "" {
			if _, err := strconv.ParseBool(v); err != nil {
				writeError(w, http.StatusBadRequest, name+": must be true or false")
				return
			}
		}
	}
	hs, err := h.core.Health(r.Context())
	if err != nil {
		h.respondError(w, r, err)
		return
	}
	status := codes["activecode"]
	switch {
	case !hs.Initialized:
		status = codes["uninitcode"]
	case hs.Sealed:
		status = codes["sealedcode"]
	case hs.Standby:
		status = codes["standbycode"]
		if ok, _ := strconv.ParseBool(q.Get("standbyok")); ok {
			status = codes["activecode"]
		}
	}
	out := wire.HealthResponse{
		Initialized: hs.Initialized, Sealed: hs.Sealed, Standby: hs.Standby,
		ReplicationPerformanceMode: "disabled", ReplicationDRMode: "disabled",
		ServerTimeUTC: hs.ServerTime.Unix(), Version: hs.Version,
		ClusterName: hs.ClusterName, ClusterID: hs.ClusterID,
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, out)
}
