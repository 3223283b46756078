// Package pgtest gives each test a PostgreSQL database of its own, so that
// packages that use Postgres can run their tests in parallel.
//
// The server is the one SECRETHUB_TEST_DATABASE_URL names, by default a
// local one with trust authentication. `make test` starts it (through
// hack/test-services.sh). A test that cannot reach it fails: it never skips.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL is the environment variable that names the server tests use, as a
// URL of a database that the user may CREATE DATABASE from.
const EnvURL = "SECRETHUB_TEST_DATABASE_URL"

// DefaultURL is the server used when EnvURL is unset or empty.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// NamePrefix starts the name of every database NewDatabase creates.
const NamePrefix = "secrethub_test_"

// timeout bounds each administrative step: connecting, creating, dropping.
const timeout = 30 * time.Second

// AdminURL returns the URL of the administrative database: EnvURL's value,
// or DefaultURL.
func AdminURL() string {
	if u := os.Getenv(EnvURL); u != "" {
		return u
	}
	return DefaultURL
}

// NewDatabase creates an empty database with a unique name and returns its
// URL. A cleanup registered on t drops it again, closing any connection that
// is still open to it. If the server cannot be reached NewDatabase fails the
// test, telling the user how to start it.
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin := AdminURL()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("pgtest: cannot reach PostgreSQL at %s (from %s, or the default): %v\n"+
			"Run `make test`, which starts PostgreSQL through hack/test-services.sh, "+
			"or point %s at a server where this user may CREATE DATABASE.",
			redact(admin), EnvURL, err, EnvURL)
	}
	defer conn.Close(context.Background())

	name := NamePrefix + randomHex(8)
	ident := pgx.Identifier{name}.Sanitize()
	// template0 is never connected to, so parallel creates do not collide on
	// a busy template1.
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident+" TEMPLATE template0 ENCODING 'UTF8'"); err != nil {
		t.Fatalf("pgtest: create database %s on %s: %v", name, redact(admin), err)
	}
	t.Cleanup(func() {
		// t's own context is cancelled by now: drop under a fresh one.
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("pgtest: drop database %s: connect: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})

	dbURL, err := withDatabase(admin, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return dbURL
}

// withDatabase returns the connection string admin with its database
// replaced by name. It accepts both URLs and keyword/value strings.
func withDatabase(admin, name string) (string, error) {
	if strings.HasPrefix(admin, "postgres://") || strings.HasPrefix(admin, "postgresql://") {
		u, err := url.Parse(admin)
		if err != nil {
			return "", fmt.Errorf("parse %s: %w", EnvURL, err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	// In a keyword/value string the last setting of a keyword wins.
	return admin + " dbname=" + name, nil
}

// redact returns s with any password in it hidden, for error messages.
func redact(s string) string {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		return u.Redacted()
	}
	if strings.Contains(s, "password") {
		return "(the connection string in " + EnvURL + ")"
	}
	return s
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails: it crashes the program instead
	return hex.EncodeToString(b)
}
