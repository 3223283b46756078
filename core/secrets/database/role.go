package database

import (
	"context"
	"fmt"
	"io"

	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/logical/field"
)

// Default statements, used when a role gives none of a kind.
const (
	// DefaultCreationStatement creates a login role that expires with its
	// lease.
	DefaultCreationStatement = `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`
	// DefaultRenewStatement moves the expiry of a login role.
	DefaultRenewStatement = `ALTER ROLE "{{name}}" VALID UNTIL '{{expiration}}';`
	// defaultRotationStatement sets a static role's (or the admin's)
	// password.
	defaultRotationStatement = `ALTER ROLE "{{name}}" WITH PASSWORD '{{password}}';`
)

// Generated credentials.
const (
	// passwordAlphabet needs no quoting anywhere in SQL.
	passwordAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	// passwordLen characters of passwordAlphabet carry 32*log2(62) ≈ 190
	// bits.
	passwordLen = 32
	// userAlphabet and userRandomLen give 20*log2(36) ≈ 103 random bits
	// per user name.
	userAlphabet  = "abcdefghijklmnopqrstuvwxyz0123456789"
	userRandomLen = 20
	// maxIdentLen is PostgreSQL's NAMEDATALEN-1.
	maxIdentLen = 63
	// maxRolePart is how much of the role name a user name carries.
	maxRolePart = 24
)

// role is a stored dynamic role.
type role struct {
	DBName               string        `json:"db_name"`
	CreationStatements   []string      `json:"creation_statements"`
	RevocationStatements []string      `json:"revocation_statements"`
	RenewStatements      []string      `json:"renew_statements"`
	RollbackStatements   []string      `json:"rollback_statements"`
	DefaultTTL           time.Duration `json:"default_ttl"`
	MaxTTL               time.Duration `json:"max_ttl"`
}

var roleFields = []string{
	"db_name", "creation_statements", "revocation_statements", "renew_statements",
	"rollback_statements", "default_ttl", "max_ttl", "credential_type",
}

func (e *Engine) readRoleEntry(ctx context.Context, name string) (*role, error) {
	var r role
	ok, err := logical.GetJSON(ctx, e.storage, rolePrefix+name, &r)
	if err != nil || !ok {
		return nil, err
	}
	return &r, nil
}

func (e *Engine) readRole(ctx context.Context, name string) (*logical.Response, error) {
	r, err := e.readRoleEntry(ctx, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, fmt.Errorf("database: role %q: %w", name, logical.ErrNotFound)
	}
	return &logical.Response{Data: map[string]any{
		"db_name":               r.DBName,
		"creation_statements":   nonNil(r.CreationStatements),
		"revocation_statements": nonNil(r.RevocationStatements),
		"renew_statements":      nonNil(r.RenewStatements),
		"rollback_statements":   nonNil(r.RollbackStatements),
		"default_ttl":           seconds(r.DefaultTTL),
		"max_ttl":               seconds(r.MaxTTL),
		"credential_type":       "password",
		"credential_config":     map[string]any{},
	}}, nil
}

// writeRole creates or updates a role; on update absent fields keep their
// values. Every statement template must parse.
func (e *Engine) writeRole(ctx context.Context, name string, data map[string]any) (*logical.Response, error) {
	if err := field.CheckFields(data, roleFields...); err != nil {
		return nil, err
	}
	old, err := e.readRoleEntry(ctx, name)
	if err != nil {
		return nil, err
	}
	var r role
	if old != nil {
		r = *old
	}
	if r.DBName, err = field.GetOr(data, "db_name", parseString, r.DBName); err != nil {
		return nil, err
	}
	if r.DBName == "" {
		return nil, logical.Invalid("db_name", "required: the name of a database config")
	}
	if err := checkName(r.DBName); err != nil {
		return nil, logical.Invalid("db_name", "not a config name: %v", err)
	}
	if ct, err := field.GetOr(data, "credential_type", parseString, "password"); err != nil {
		return nil, err
	} else if ct != "password" {
		return nil, logical.Invalid("credential_type", "only password is supported")
	}
	if r.CreationStatements, err = statementsField(data, "creation_statements", r.CreationStatements, phName, phPassword, phExpiration); err != nil {
		return nil, err
	}
	if r.RevocationStatements, err = statementsField(data, "revocation_statements", r.RevocationStatements, phName); err != nil {
		return nil, err
	}
	if r.RenewStatements, err = statementsField(data, "renew_statements", r.RenewStatements, phName, phExpiration); err != nil {
		return nil, err
	}
	if r.RollbackStatements, err = statementsField(data, "rollback_statements", r.RollbackStatements, phName, phPassword, phExpiration); err != nil {
		return nil, err
	}
	if r.DefaultTTL, err = field.GetOr(data, "default_ttl", parseTTL, r.DefaultTTL); err != nil {
		return nil, err
	}
	if r.MaxTTL, err = field.GetOr(data, "max_ttl", parseTTL, r.MaxTTL); err != nil {
		return nil, err
	}
	if r.MaxTTL > 0 && r.DefaultTTL > r.MaxTTL {
		return nil, logical.Invalid("default_ttl", "%ds is above max_ttl %ds", seconds(r.DefaultTTL), seconds(r.MaxTTL))
	}
	if err := logical.PutJSON(ctx, e.storage, rolePrefix+name, &r); err != nil {
		return nil, err
	}
	return nil, nil
}

// ttls returns the lease TTL and max TTL of credentials of r.
func (e *Engine) ttls(r *role) (ttl, maxTTL time.Duration) {
	ttl, maxTTL = r.DefaultTTL, r.MaxTTL
	if ttl == 0 {
		ttl = e.defaultTTL
	}
	if maxTTL == 0 {
		maxTTL = e.maxTTL
	}
	return min(ttl, maxTTL), maxTTL
}

// issueCreds creates a login role for role name: a user name and password
// are generated, the creation statements run in one transaction, and the
// response carries a Secret for the core to lease. If a statement fails
// the transaction is rolled back (and the rollback statements run, if
// the role has any), so no half-made credential remains.
func (e *Engine) issueCreds(ctx context.Context, name string) (*logical.Response, error) {
	r, err := e.readRoleEntry(ctx, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, logical.Invalid("name", "unknown role %q", name)
	}
	t, err := e.targetFor(ctx, r.DBName, "db_name")
	if err != nil {
		return nil, err
	}
	if !t.cfg.allows(name) {
		return nil, logical.Invalid("name", "role %q is not in the allowed_roles of database config %q", name, r.DBName)
	}
	stmts := r.CreationStatements
	if len(stmts) == 0 {
		stmts = []string{DefaultCreationStatement}
	}
	parsed, err := parseTemplates(stmts, phName, phPassword, phExpiration)
	if err != nil {
		return nil, logical.Invalid("creation_statements", "%v", err)
	}
	ttl, maxTTL := e.ttls(r)
	username, err := e.generateUsername(name)
	if err != nil {
		return nil, err
	}
	password, err := e.generatePassword(ctx, t.cfg)
	if err != nil {
		return nil, err
	}
	vals := map[string]string{phName: username, phPassword: password, phExpiration: formatExpiration(e.now().Add(ttl))}

	ctx, cancel := e.opContext(ctx)
	defer cancel()
	conn, err := t.acquire(ctx, "db_name")
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	if err := inTx(ctx, conn, func(tx pgx.Tx) error { return execAll(ctx, tx, parsed, vals) }); err != nil {
		ferr := t.failStmt("creation_statements", err, "create credential for role "+strconv.Quote(name), password)
		if len(r.RollbackStatements) > 0 {
			if rb, perr := parseTemplates(r.RollbackStatements, phName, phPassword, phExpiration); perr == nil {
				rctx := context.WithoutCancel(ctx)
				if rerr := inTx(rctx, conn, func(tx pgx.Tx) error { return execAll(rctx, tx, rb, vals) }); rerr != nil {
					e.log.WarnContext(ctx, "database rollback statements failed", "role", name, "config", r.DBName,
						"error", scrub(reason(rerr), password, t.cfg.Password))
				}
			}
		}
		return nil, ferr
	}
	e.log.InfoContext(ctx, "database credential issued", "role", name, "config", r.DBName, "username", username)
	return &logical.Response{
		Data: map[string]any{"username": username, "password": password},
		Secret: &logical.Secret{
			TTL: ttl, MaxTTL: maxTTL, Renewable: true,
			InternalData: map[string]any{"username": username, "role": name, "db_name": r.DBName},
		},
	}, nil
}

// formatExpiration writes t as PostgreSQL reads a timestamptz.
func formatExpiration(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05") + "+00"
}

// inTx runs f in a transaction on conn, committing if it succeeds.
func inTx(ctx context.Context, conn interface {
	Begin(context.Context) (pgx.Tx, error)
}, f func(pgx.Tx) error) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	return tx.Commit(ctx)
}

// stmtError is the failure of statement n (1-based) of a list.
type stmtError struct {
	n   int
	err error
}

func (e *stmtError) Error() string { return fmt.Sprintf("statement %d: %v", e.n, reason(e.err)) }
func (e *stmtError) Unwrap() error { return e.err }

// execAll renders and runs statements in order.
func execAll(ctx context.Context, tx pgx.Tx, stmts []statement, vals map[string]string) error {
	for i, st := range stmts {
		sql, err := st.render(vals)
		if err != nil {
			return &stmtError{i + 1, err}
		}
		if _, err := tx.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol); err != nil {
			return &stmtError{i + 1, err}
		}
	}
	return nil
}

// generateUsername makes "v-<role>-<random>-<unix time>": the role name
// lowercased with anything but [a-z0-9_] turned to '_', at most
// maxRolePart bytes of it, within PostgreSQL's 63-byte limit.
func (e *Engine) generateUsername(roleName string) (string, error) {
	var sb strings.Builder
	for _, c := range strings.ToLower(roleName) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' {
			sb.WriteRune(c)
		} else {
			sb.WriteByte('_')
		}
	}
	rp := truncate(sb.String(), maxRolePart)
	rnd, err := randomString(e.rand, userAlphabet, userRandomLen)
	if err != nil {
		return "", err
	}
	u := "v-" + rp + "-" + rnd + "-" + strconv.FormatInt(e.now().Unix(), 10)
	return truncate(u, maxIdentLen), nil
}

// randomString draws n characters of alphabet uniformly from r.
func randomString(r io.Reader, alphabet string, n int) (string, error) {
	out := make([]byte, n)
	for i := range out {
		k, err := randInt(r, len(alphabet))
		if err != nil {
			return "", fmt.Errorf("database: random source: %w", err)
		}
		out[i] = alphabet[k]
	}
	return string(out), nil
}

// randInt returns a uniform integer in [0, max) from r.
func randInt(r io.Reader, m int) (int, error) {
	// Rejection sampling on one byte: alphabets are shorter than 256.
	limit := 256 - 256%m
	var b [1]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, err
		}
		if int(b[0]) < limit {
			return int(b[0]) % m, nil
		}
	}
}
