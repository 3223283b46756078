package database

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/secrethub/secrethub/core/logical"
)

// leaseData reads what issueCreds put in a lease.
func leaseData(l *logical.SecretLease) (username, roleName, dbName string, err error) {
	if l == nil {
		return "", "", "", errors.New("database: nil lease")
	}
	get := func(k string) string {
		s, _ := l.InternalData[k].(string)
		return s
	}
	username, roleName, dbName = get("username"), get("role"), get("db_name")
	if username == "" || dbName == "" {
		return "", "", "", fmt.Errorf("database: lease %s has no username or db_name in its internal data", l.LeaseID)
	}
	return username, roleName, dbName, nil
}

// RenewSecret extends the credential of l to l.ExpireTime: it runs the
// role's renew statements (default: ALTER ROLE ... VALID UNTIL) in a
// transaction. If the role is gone the default statements are used.
func (e *Engine) RenewSecret(ctx context.Context, l *logical.SecretLease) error {
	username, roleName, dbName, err := leaseData(l)
	if err != nil {
		return err
	}
	var stmts []string
	if roleName != "" {
		r, err := e.readRoleEntry(ctx, roleName)
		if err != nil {
			return err
		}
		if r != nil {
			stmts = r.RenewStatements
		}
	}
	if len(stmts) == 0 {
		stmts = []string{DefaultRenewStatement}
	}
	parsed, err := parseTemplates(stmts, phName, phExpiration)
	if err != nil {
		return logical.Invalid("renew_statements", "%v", err)
	}
	t, err := e.targetFor(ctx, dbName, "db_name")
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
	vals := map[string]string{phName: username, phExpiration: formatExpiration(l.ExpireTime)}
	if err := inTx(ctx, conn, func(tx pgx.Tx) error { return execAll(ctx, tx, parsed, vals) }); err != nil {
		return t.failStmt("renew_statements", err, "renew "+strconv.Quote(username))
	}
	return nil
}

// RevokeSecret removes the credential of l. With the role's revocation
// statements if it has any; else by default: the login is disabled, the
// role's sessions are terminated, what it owns is reassigned to the admin
// user and its privileges dropped (in every database where it has any),
// and the role is dropped. A role that no longer exists counts as
// revoked; an unreachable server is an error wrapping ErrUnreachable.
func (e *Engine) RevokeSecret(ctx context.Context, l *logical.SecretLease) error {
	username, roleName, dbName, err := leaseData(l)
	if err != nil {
		return err
	}
	var stmts []string
	if roleName != "" {
		r, err := e.readRoleEntry(ctx, roleName)
		if err != nil {
			return err
		}
		if r != nil {
			stmts = r.RevocationStatements
		}
	}
	t, err := e.targetFor(ctx, dbName, "db_name")
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
	exists, err := roleExists(ctx, conn, username)
	if err != nil {
		return t.failStmt("db_name", err, "look up "+strconv.Quote(username))
	}
	if !exists {
		return nil
	}
	if len(stmts) > 0 {
		parsed, err := parseTemplates(stmts, phName)
		if err != nil {
			return logical.Invalid("revocation_statements", "%v", err)
		}
		vals := map[string]string{phName: username}
		if err := inTx(ctx, conn, func(tx pgx.Tx) error { return execAll(ctx, tx, parsed, vals) }); err != nil {
			if gone, gerr := roleExists(ctx, conn, username); gerr == nil && !gone {
				return nil
			}
			return t.failStmt("revocation_statements", err, "revoke "+strconv.Quote(username))
		}
	} else if err := e.defaultRevoke(ctx, t, conn, username); err != nil {
		return err
	}
	e.log.InfoContext(ctx, "database credential revoked", "config", dbName, "username", username)
	return nil
}

// roleExists reports whether a role named name exists.
func roleExists(ctx context.Context, conn *pgxpool.Conn, name string) (bool, error) {
	var n int
	err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_catalog.pg_roles WHERE rolname = $1", name).Scan(&n)
	return n > 0, err
}

// defaultRevoke is the default revocation of username.
func (e *Engine) defaultRevoke(ctx context.Context, t *target, conn *pgxpool.Conn, username string) error {
	ident := pgx.Identifier{username}.Sanitize()
	fail := func(err error, what string) error {
		if gone, gerr := roleExists(ctx, conn, username); gerr == nil && !gone {
			return nil
		}
		return t.failStmt("revocation_statements", err, what+" "+strconv.Quote(username))
	}
	// No new sessions, then end the open ones. From PostgreSQL 14,
	// pg_terminate_backend can wait for each session to end.
	if _, err := conn.Exec(ctx, "ALTER ROLE "+ident+" NOLOGIN"); err != nil {
		return fail(err, "disable login of")
	}
	var version int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		return fail(err, "read server version for")
	}
	terminate := "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity WHERE usename = $1 AND pid <> pg_catalog.pg_backend_pid()"
	if version >= 140000 {
		terminate = "SELECT pg_catalog.pg_terminate_backend(pid, 5000) FROM pg_catalog.pg_stat_activity WHERE usename = $1 AND pid <> pg_catalog.pg_backend_pid()"
	}
	if _, err := conn.Exec(ctx, terminate, username); err != nil {
		return fail(err, "terminate sessions of")
	}
	// Other databases where the role owns objects or holds privileges:
	// pg_shdepend is shared by all databases of the server.
	rows, err := conn.Query(ctx, `SELECT DISTINCT d.datname FROM pg_catalog.pg_shdepend s
		JOIN pg_catalog.pg_database d ON d.oid = s.dbid
		WHERE s.refclassid = 'pg_catalog.pg_authid'::regclass
		  AND s.refobjid = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $1)
		  AND d.datname <> current_database() AND d.datallowconn`, username)
	if err != nil {
		return fail(err, "find the databases of")
	}
	others, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fail(err, "find the databases of")
	}
	dropOwned := "REASSIGN OWNED BY " + ident + " TO CURRENT_USER; DROP OWNED BY " + ident
	for _, db := range others {
		cc := t.pool.Config().ConnConfig.Copy()
		cc.Database = db
		oc, err := pgx.ConnectConfig(ctx, cc)
		if err != nil {
			return fail(err, "connect to database "+strconv.Quote(db)+" to drop what is owned by")
		}
		_, err = oc.Exec(ctx, dropOwned, pgx.QueryExecModeSimpleProtocol)
		_ = oc.Close(context.WithoutCancel(ctx))
		if err != nil {
			return fail(err, "in database "+strconv.Quote(db)+", drop what is owned by")
		}
	}
	err = inTx(ctx, conn, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, dropOwned+"; DROP ROLE IF EXISTS "+ident, pgx.QueryExecModeSimpleProtocol)
		return err
	})
	if err != nil {
		return fail(err, "drop")
	}
	return nil
}
