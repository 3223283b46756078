package database

import (
	"context"
	"fmt"
	"time"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/logical/field"
)

// staticRole is a stored static role: an existing database user whose
// password the engine rotates.
type staticRole struct {
	DBName             string        `json:"db_name"`
	Username           string        `json:"username"`
	RotationPeriod     time.Duration `json:"rotation_period"`
	RotationStatements []string      `json:"rotation_statements"`
	// GracePeriod is how long PreviousPassword stays readable.
	GracePeriod time.Duration `json:"grace_period"`

	Password         string    `json:"password"`
	LastRotation     time.Time `json:"last_vault_rotation"`
	PreviousPassword string    `json:"previous_password,omitempty"`
	PreviousUntil    time.Time `json:"previous_password_until"`
}

var staticRoleFields = []string{
	"db_name", "username", "rotation_period", "rotation_statements", "grace_period", "credential_type",
}

func (e *Engine) readStaticEntry(ctx context.Context, name string) (*staticRole, error) {
	var r staticRole
	ok, err := logical.GetJSON(ctx, e.storage, staticRolePrefix+name, &r)
	if err != nil || !ok {
		return nil, err
	}
	return &r, nil
}

func (e *Engine) readStaticRole(ctx context.Context, name string) (*logical.Response, error) {
	r, err := e.readStaticEntry(ctx, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, fmt.Errorf("database: static role %q: %w", name, logical.ErrNotFound)
	}
	return &logical.Response{Data: map[string]any{
		"db_name":             r.DBName,
		"username":            r.Username,
		"rotation_period":     seconds(r.RotationPeriod),
		"rotation_statements": nonNil(r.RotationStatements),
		"grace_period":        seconds(r.GracePeriod),
		"last_vault_rotation": r.LastRotation.UTC().Format(time.RFC3339Nano),
		"credential_type":     "password",
	}}, nil
}

// writeStaticRole creates or updates a static role. A new one has its
// password rotated at once, and is stored only if that works. The user
// and the database of an existing static role cannot change.
func (e *Engine) writeStaticRole(ctx context.Context, name string, data map[string]any) (*logical.Response, error) {
	if err := field.CheckFields(data, staticRoleFields...); err != nil {
		return nil, err
	}
	e.staticMu.Lock()
	defer e.staticMu.Unlock()
	old, err := e.readStaticEntry(ctx, name)
	if err != nil {
		return nil, err
	}
	r := staticRole{GracePeriod: e.grace}
	if old != nil {
		r = *old
	}
	dbName, err := field.GetOr(data, "db_name", parseString, r.DBName)
	if err != nil {
		return nil, err
	}
	username, err := field.GetOr(data, "username", parseString, r.Username)
	if err != nil {
		return nil, err
	}
	if old != nil && (dbName != old.DBName || username != old.Username) {
		return nil, logical.Invalid("username", "the username and db_name of a static role cannot change; delete it and create another")
	}
	r.DBName, r.Username = dbName, username
	switch {
	case r.DBName == "":
		return nil, logical.Invalid("db_name", "required: the name of a database config")
	case checkName(r.DBName) != nil:
		return nil, logical.Invalid("db_name", "not a config name")
	case r.Username == "":
		return nil, logical.Invalid("username", "required: the database user whose password is rotated")
	case len(r.Username) > maxIdentLen:
		return nil, logical.Invalid("username", "longer than %d bytes", maxIdentLen)
	}
	if ct, err := field.GetOr(data, "credential_type", parseString, "password"); err != nil {
		return nil, err
	} else if ct != "password" {
		return nil, logical.Invalid("credential_type", "only password is supported")
	}
	if r.RotationPeriod, err = field.GetOr(data, "rotation_period", parseTTL, r.RotationPeriod); err != nil {
		return nil, err
	}
	if r.RotationPeriod < minRotationPeriod {
		return nil, logical.Invalid("rotation_period", "required, at least %d seconds", seconds(minRotationPeriod))
	}
	if r.RotationStatements, err = statementsField(data, "rotation_statements", r.RotationStatements, phName, phPassword); err != nil {
		return nil, err
	}
	if r.GracePeriod, err = field.GetOr(data, "grace_period", parseTTL, r.GracePeriod); err != nil {
		return nil, err
	}
	if r.GracePeriod > r.RotationPeriod {
		return nil, logical.Invalid("grace_period", "%ds is above rotation_period %ds", seconds(r.GracePeriod), seconds(r.RotationPeriod))
	}
	if old != nil {
		return nil, logical.PutJSON(ctx, e.storage, staticRolePrefix+name, &r)
	}
	if err := e.rotateStatic(ctx, name, &r); err != nil {
		return nil, err
	}
	return nil, nil
}

func (e *Engine) deleteStaticRole(ctx context.Context, name string) (*logical.Response, error) {
	e.staticMu.Lock()
	defer e.staticMu.Unlock()
	return e.deleteKey(ctx, staticRolePrefix+name)
}

// readStaticCreds answers static-creds/:name: the current password, and
// the previous one while its grace period lasts.
func (e *Engine) readStaticCreds(ctx context.Context, name string) (*logical.Response, error) {
	r, err := e.readStaticEntry(ctx, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, fmt.Errorf("database: static role %q: %w", name, logical.ErrNotFound)
	}
	now := e.now()
	ttl := max(r.LastRotation.Add(r.RotationPeriod).Sub(now), 0)
	data := map[string]any{
		"username":            r.Username,
		"password":            r.Password,
		"last_vault_rotation": r.LastRotation.UTC().Format(time.RFC3339Nano),
		"rotation_period":     seconds(r.RotationPeriod),
		"ttl":                 seconds(ttl),
	}
	if r.PreviousPassword != "" && now.Before(r.PreviousUntil) {
		data["previous_password"] = r.PreviousPassword
		data["previous_password_expires"] = r.PreviousUntil.UTC().Format(time.RFC3339Nano)
	}
	return &logical.Response{Data: data}, nil
}

// RotateStaticRole gives static role name's user a new password now: the
// rotation statements (default ALTER ROLE ... WITH PASSWORD) run in a
// transaction, the new password is stored, and the transaction commits.
// The previous password stays readable in static-creds for the role's
// grace period. The rotation scheduler calls it for DueStaticRoles.
func (e *Engine) RotateStaticRole(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	e.staticMu.Lock()
	defer e.staticMu.Unlock()
	r, err := e.readStaticEntry(ctx, name)
	if err != nil {
		return err
	}
	if r == nil {
		return fmt.Errorf("database: static role %q: %w", name, logical.ErrNotFound)
	}
	return e.rotateStatic(ctx, name, r)
}

// DueStaticRoles returns the names of the static roles whose rotation is
// due at now (last rotation + rotation period not after now), sorted.
func (e *Engine) DueStaticRoles(ctx context.Context, now time.Time) ([]string, error) {
	names, err := logical.ListKeys(ctx, e.storage, staticRolePrefix)
	if err != nil {
		return nil, fmt.Errorf("database: list static roles: %w", err)
	}
	var due []string
	for _, k := range names {
		r, err := e.readStaticEntry(ctx, k)
		if err != nil {
			return nil, err
		}
		if r != nil && !r.LastRotation.Add(r.RotationPeriod).After(now) {
			due = append(due, k)
		}
	}
	return due, nil
}

// rotateStatic rotates r (held under staticMu) and stores it. If storing
// works but the commit fails, the previous record is put back.
func (e *Engine) rotateStatic(ctx context.Context, name string, r *staticRole) error {
	stmts := r.RotationStatements
	if len(stmts) == 0 {
		stmts = []string{defaultRotationStatement}
	}
	parsed, err := parseTemplates(stmts, phName, phPassword)
	if err != nil {
		return logical.Invalid("rotation_statements", "%v", err)
	}
	t, err := e.targetFor(ctx, r.DBName, "db_name")
	if err != nil {
		return err
	}
	pw, err := e.generatePassword(ctx, t.cfg)
	if err != nil {
		return err
	}
	ctx, cancel := e.opContext(ctx)
	defer cancel()
	conn, err := t.acquire(ctx, "db_name")
	if err != nil {
		return err
	}
	defer conn.Release()
	exists, err := roleExists(ctx, conn, r.Username)
	if err != nil {
		return t.failStmt("username", err, "look up user")
	}
	if !exists {
		return logical.Invalid("username", "database %q at %s has no user %q", t.name, t.host, field.Truncate(r.Username, maxIdentLen))
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return t.fail("db_name", ErrUnreachable, err, "begin")
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it is a no-op
	if err := execAll(ctx, tx, parsed, map[string]string{phName: r.Username, phPassword: pw}); err != nil {
		return t.failStmt("rotation_statements", err, "rotate the password of static role "+fmt.Sprintf("%q", name), pw, r.Password)
	}
	old := *r
	now := e.now()
	nr := *r
	if r.Password != "" {
		nr.PreviousPassword, nr.PreviousUntil = r.Password, now.Add(r.GracePeriod)
	}
	nr.Password, nr.LastRotation = pw, now
	if err := logical.PutJSON(ctx, e.storage, staticRolePrefix+name, &nr); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		if old.Password == "" {
			_, _ = e.deleteKey(context.WithoutCancel(ctx), staticRolePrefix+name)
		} else if perr := logical.PutJSON(context.WithoutCancel(ctx), e.storage, staticRolePrefix+name, &old); perr != nil {
			e.log.ErrorContext(ctx, "static rotation: commit failed and the old record could not be restored", "role", name, "error", perr.Error())
		}
		return t.fail("db_name", ErrUnreachable, err, "commit the rotation of static role %q", name)
	}
	*r = nr
	e.log.InfoContext(ctx, "database static role rotated", "role", name, "config", r.DBName, "username", r.Username)
	return nil
}
