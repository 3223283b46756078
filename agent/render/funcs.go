package render

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"text/template"
)

// funcs returns the template functions of one render. They close over st;
// Compile calls it on a zero state only so the parser knows the names.
func (st *state) funcs() template.FuncMap {
	return template.FuncMap{
		// Secrets.
		"secret":    st.secret,
		"secretKey": st.secretKey,

		// Values.
		"default":  dfault,
		"required": required,
		"dict":     dict,

		// Encoding and strings. Every function that builds a value charges
		// its size to the render's work budget.
		"base64Encode": func(v any) (string, error) {
			return st.charged(base64.StdEncoding.EncodeToString([]byte(toString(v))))
		},
		"base64Decode": st.base64Decode,
		"toJSON":       func(v any) (string, error) { return st.toJSON(v, false) },
		"toJSONPretty": func(v any) (string, error) { return st.toJSON(v, true) },
		"fromJSON":     st.fromJSON,
		"join":         st.join,
		"split":        st.split,
		"trimSpace":    st.trimSpace,
		"upper":        func(v any) (string, error) { return st.charged(strings.ToUpper(toString(v))) },
		"lower":        func(v any) (string, error) { return st.charged(strings.ToLower(toString(v))) },
		"quote":        func(v any) (string, error) { return st.charged(strconv.Quote(toString(v))) },

		// Connection strings.
		"pgURL":    func(m any) (string, error) { return st.charged2(pgURL(m)) },
		"redisURL": func(m any) (string, error) { return st.charged2(redisURL(m)) },

		// text/template builtins that build strings, replaced by charged
		// versions with the same behaviour.
		"print":    func(a ...any) (string, error) { return st.charged(fmt.Sprint(a...)) },
		"printf":   func(f string, a ...any) (string, error) { return st.charged(fmt.Sprintf(f, a...)) },
		"println":  func(a ...any) (string, error) { return st.charged(fmt.Sprintln(a...)) },
		"html":     func(a ...any) (string, error) { return st.charged(template.HTMLEscaper(a...)) },
		"js":       func(a ...any) (string, error) { return st.charged(template.JSEscaper(a...)) },
		"urlquery": func(a ...any) (string, error) { return st.charged(template.URLQueryEscaper(a...)) },

		// Inserted by instrument.
		enterFunc: st.enter,
		leaveFunc: st.leave,
		stepFunc:  st.step,
		rangeFunc: rangeable,
		printFunc: printable,
	}
}

// step counts one unit of work and checks the context.
func (st *state) step() (string, error) {
	if err := st.ctx.Err(); err != nil {
		return "", err
	}
	st.steps++
	if st.steps > st.opts.MaxSteps {
		return "", fmt.Errorf("%w (%d steps)", ErrTooComplex, st.opts.MaxSteps)
	}
	return "", nil
}

// enter starts a template body: one step, one level deeper.
func (st *state) enter() (string, error) {
	st.depth++
	if st.depth > maxDepth {
		return "", fmt.Errorf("%w (templates nested deeper than %d)", ErrTooComplex, maxDepth)
	}
	return st.step()
}

// leave ends a template body.
func (st *state) leave() string {
	st.depth--
	return ""
}

// charged accounts for a value a helper built.
func (st *state) charged(s string) (string, error) {
	if len(s) > st.opts.MaxOutputBytes {
		return "", fmt.Errorf("%w: a value of %d bytes (limit %d)", ErrOutputTooLarge, len(s), st.opts.MaxOutputBytes)
	}
	if err := st.charge(len(s)); err != nil {
		return "", err
	}
	return s, nil
}

// charge adds n bytes of helper work (roughly the bytes it allocates) to the
// render's budget.
func (st *state) charge(n int) error {
	st.work += n
	if st.work > st.maxWork {
		return fmt.Errorf("%w: helpers built more than %d bytes", ErrTooComplex, st.maxWork)
	}
	return nil
}

func (st *state) charged2(s string, err error) (string, error) {
	if err != nil {
		return "", err
	}
	return st.charged(s)
}

// fetch reads path once per render.
func (st *state) fetch(path string) (map[string]any, error) {
	if path == "" {
		return nil, errors.New("empty secret path")
	}
	if r, ok := st.fetched[path]; ok {
		return r.data, r.err
	}
	data, err := st.fetcher.Secret(st.ctx, path)
	if err != nil {
		err = fmt.Errorf("secret %q: %w", path, err)
		data = nil
	}
	st.fetched[path] = fetched{data: data, err: err}
	return data, err
}

// secret returns the data of the secret at path. A missing secret is an
// error, or an empty map under MissingKeyZero.
func (st *state) secret(path string) (map[string]any, error) {
	data, err := st.fetch(path)
	if err != nil {
		if errors.Is(err, ErrNotFound) && st.opts.MissingKey == MissingKeyZero {
			return map[string]any{}, nil
		}
		return nil, err
	}
	if data == nil {
		data = map[string]any{}
	}
	return data, nil
}

// secretKey returns one value of the secret at path. A missing secret or key
// is an error, or "" under MissingKeyZero.
func (st *state) secretKey(path, key string) (any, error) {
	data, err := st.fetch(path)
	if err != nil {
		if errors.Is(err, ErrNotFound) && st.opts.MissingKey == MissingKeyZero {
			return "", nil
		}
		return nil, fmt.Errorf("%w (reading key %q)", err, key)
	}
	v, ok := data[key]
	if !ok {
		if st.opts.MissingKey == MissingKeyZero {
			return "", nil
		}
		return nil, fmt.Errorf("secret %q key %q: %w", path, key, ErrMissingKey)
	}
	return v, nil
}

// dfault returns given unless it is empty (nil, false, 0, or an empty
// string, list or map), else d: `default "x" .maybe`, `.maybe | default "x"`.
func dfault(d any, given ...any) any {
	if len(given) == 0 || isEmpty(given[0]) {
		return d
	}
	return given[0]
}

// required returns v, or fails the render with msg when v is nil or "".
func required(msg string, v any) (any, error) {
	if v == nil {
		return nil, fmt.Errorf("required: %s", msg)
	}
	if s, ok := v.(string); ok && s == "" {
		return nil, fmt.Errorf("required: %s", msg)
	}
	return v, nil
}

// dict builds a map from key/value pairs: dict "host" "db" "port" 5432.
func dict(kv ...any) (map[string]any, error) {
	if len(kv)%2 != 0 {
		return nil, fmt.Errorf("dict: odd number of arguments (%d)", len(kv))
	}
	m := make(map[string]any, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return nil, fmt.Errorf("dict: key %d is a %T, not a string", i/2, kv[i])
		}
		m[k] = kv[i+1]
	}
	return m, nil
}

func isEmpty(v any) bool {
	rv := reflect.ValueOf(v)
	if !rv.IsValid() {
		return true
	}
	switch rv.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return rv.Len() == 0
	case reflect.Bool:
		return !rv.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return rv.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return rv.Float() == 0
	case reflect.Interface, reflect.Pointer:
		return rv.IsNil()
	}
	return false
}

// toString converts a secret value to text: nil is "", numbers print without
// exponent or trailing zeros (a JSON 5432 is "5432"), []byte is its bytes.
func toString(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case []byte:
		return string(v)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(v), 'f', -1, 32)
	case fmt.Stringer:
		return v.String()
	}
	return fmt.Sprint(v)
}

func (st *state) base64Decode(v any) (string, error) {
	b, err := base64.StdEncoding.DecodeString(toString(v))
	if err != nil {
		// CorruptInputError names only the offset.
		return "", fmt.Errorf("base64Decode: %w", err)
	}
	return st.charged(string(b))
}

func (st *state) toJSON(v any, pretty bool) (string, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if pretty {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(v); err != nil {
		// Encoding errors name types ("unsupported type: func()"), not values.
		return "", fmt.Errorf("toJSON: %w", err)
	}
	return st.charged(strings.TrimSuffix(b.String(), "\n"))
}

// fromJSON parses a JSON document (objects become maps, numbers float64).
// Its error gives the offset only: json's own message quotes input bytes.
func (st *state) fromJSON(v any) (any, error) {
	text := toString(v)
	// Decoding allocates a few times the input.
	if err := st.charge(4 * len(text)); err != nil {
		return nil, err
	}
	var out any
	if err := json.Unmarshal([]byte(text), &out); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, fmt.Errorf("fromJSON: invalid JSON at byte offset %d", syn.Offset)
		}
		return nil, errors.New("fromJSON: invalid JSON")
	}
	return out, nil
}

func (st *state) trimSpace(v any) (string, error) {
	s := toString(v)
	if err := st.charge(len(s)); err != nil {
		return "", err
	}
	return strings.TrimSpace(s), nil
}

// join joins a list with sep: `.hosts | join ","`. Elements are converted
// like toString.
func (st *state) join(sep string, list any) (string, error) {
	var parts []string
	switch l := list.(type) {
	case nil:
	case []string:
		parts = l
	case []any:
		parts = make([]string, len(l))
		for i, e := range l {
			parts[i] = toString(e)
		}
	default:
		return "", fmt.Errorf("join: cannot join a %T", list)
	}
	n := len(sep) * max(len(parts)-1, 0)
	for _, p := range parts {
		n += len(p)
	}
	if n > st.opts.MaxOutputBytes {
		return "", fmt.Errorf("%w: join of %d bytes (limit %d)", ErrOutputTooLarge, n, st.opts.MaxOutputBytes)
	}
	return st.charged(strings.Join(parts, sep))
}

// split splits s around sep: `.hosts | split ","` (an empty input gives an
// empty list, not [""]).
func (st *state) split(sep string, s any) ([]string, error) {
	str := toString(s)
	if str == "" {
		return []string{}, nil
	}
	parts := strings.Split(str, sep)
	// A string header per element, plus the scan.
	if err := st.charge(len(str) + 16*len(parts)); err != nil {
		return nil, err
	}
	return parts, nil
}

// rangeable passes values range can iterate over and rejects the rest with
// an error naming only the type: text/template's own error prints the value.
func rangeable(v any) (any, error) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Invalid, reflect.Array, reflect.Slice, reflect.Map,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return v, nil
	case reflect.Pointer:
		if rv.IsNil() {
			return v, nil
		}
	}
	return nil, fmt.Errorf("range can't iterate over a value of type %T", v)
}

// printable prints nil as "" rather than "<no value>".
func printable(v any) any {
	if v == nil {
		return ""
	}
	return v
}

// conn reads connection fields from a map argument.
type conn struct {
	fn string
	m  map[string]any
}

func newConn(fn string, v any) (conn, error) {
	switch m := v.(type) {
	case map[string]any:
		return conn{fn, m}, nil
	case map[string]string:
		c := conn{fn, make(map[string]any, len(m))}
		for k, e := range m {
			c.m[k] = e
		}
		return c, nil
	}
	return conn{}, fmt.Errorf("%s: argument is a %T, not a map", fn, v)
}

// get returns the text of the first present key of names; required keys
// that are absent (or null) are an error naming the key.
func (c conn) get(required bool, names ...string) (string, bool, error) {
	for _, n := range names {
		if v, ok := c.m[n]; ok && v != nil {
			return toString(v), true, nil
		}
	}
	if required {
		return "", false, fmt.Errorf("%s: missing key %q: %w", c.fn, names[0], ErrMissingKey)
	}
	return "", false, nil
}

func (c conn) nonEmpty(names ...string) (string, error) {
	s, _, err := c.get(true, names...)
	if err == nil && s == "" {
		err = fmt.Errorf("%s: key %q is empty", c.fn, names[0])
	}
	return s, err
}

func (c conn) hostPort() (string, error) {
	host, err := c.nonEmpty("host")
	if err != nil {
		return "", err
	}
	port, err := c.nonEmpty("port")
	if err != nil {
		return "", err
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("%s: key \"port\" is not a port number (1-65535)", c.fn)
	}
	return net.JoinHostPort(host, port), nil
}

// pgURL builds postgres://user:password@host:port/dbname[?sslmode=...] from
// a map with host, port, user (or username, as dynamic credentials name it),
// password, dbname and optional sslmode. User, password and database name
// are escaped; sslmode is omitted when absent so the driver default applies.
func pgURL(v any) (string, error) {
	c, err := newConn("pgURL", v)
	if err != nil {
		return "", err
	}
	hp, err := c.hostPort()
	if err != nil {
		return "", err
	}
	user, err := c.nonEmpty("user", "username")
	if err != nil {
		return "", err
	}
	pass, _, err := c.get(true, "password")
	if err != nil {
		return "", err
	}
	db, err := c.nonEmpty("dbname")
	if err != nil {
		return "", err
	}
	u := url.URL{
		Scheme:  "postgres",
		User:    url.UserPassword(user, pass),
		Host:    hp,
		Path:    "/" + db,
		RawPath: "/" + url.PathEscape(db),
	}
	if mode, ok, _ := c.get(false, "sslmode"); ok && mode != "" {
		u.RawQuery = url.Values{"sslmode": {mode}}.Encode()
	}
	return u.String(), nil
}

// redisURL builds redis://[username]:password@host:port[/db] from a map with
// host, port, password and optional username, db and tls (true gives the
// rediss scheme).
func redisURL(v any) (string, error) {
	c, err := newConn("redisURL", v)
	if err != nil {
		return "", err
	}
	hp, err := c.hostPort()
	if err != nil {
		return "", err
	}
	pass, _, err := c.get(true, "password")
	if err != nil {
		return "", err
	}
	user, _, _ := c.get(false, "username")
	u := url.URL{Scheme: "redis", User: url.UserPassword(user, pass), Host: hp}
	if db, ok, _ := c.get(false, "db"); ok && db != "" {
		if n, err := strconv.Atoi(db); err != nil || n < 0 {
			return "", errors.New("redisURL: key \"db\" is not a database number")
		}
		u.Path = "/" + db
	}
	if tls, ok := c.m["tls"]; ok {
		switch tls {
		case true, "true":
			u.Scheme = "rediss"
		case false, "false", nil:
		default:
			return "", errors.New("redisURL: key \"tls\" must be true or false")
		}
	}
	return u.String(), nil
}
