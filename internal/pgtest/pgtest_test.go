package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestNewDatabase(t *testing.T) {
	var dbURL string
	t.Run("inner", func(t *testing.T) {
		dbURL = NewDatabase(t)
		conn, err := pgx.Connect(t.Context(), dbURL)
		if err != nil {
			t.Fatalf("connect to the new database: %v", err)
		}
		defer conn.Close(context.Background())
		var name string
		if err := conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^secrethub_test_[0-9a-f]{16}$`).MatchString(name) {
			t.Fatalf("database name = %q, want secrethub_test_<16 hex>", name)
		}
		// A second database is a different one.
		if other := NewDatabase(t); other == dbURL {
			t.Fatalf("two NewDatabase calls returned the same URL %s", dbURL)
		}
	})

	// The inner test's cleanup dropped the database, though a connection was
	// still open to it while the test ran.
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	conn, err := pgx.Connect(t.Context(), AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(t.Context(), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Fatalf("database %s still exists after the test's cleanup", name)
	}
}

// fakeTB records how a helper ends a test. Fatalf and SkipNow end the calling
// goroutine, as the real ones do.
type fakeTB struct {
	testing.TB
	fatal   string
	skipped bool
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Fatal(args ...any)                 { f.Fatalf("%s", fmt.Sprint(args...)) }
func (f *fakeTB) Skip(...any)                       { f.SkipNow() }
func (f *fakeTB) Skipf(string, ...any)              { f.SkipNow() }
func (f *fakeTB) SkipNow()                          { f.skipped = true; runtime.Goexit() }
func (f *fakeTB) Cleanup(func())                    {}
func (f *fakeTB) Errorf(format string, args ...any) { f.Fatalf(format, args...) }

func TestUnreachableFails(t *testing.T) {
	// Port 1 on the loopback refuses connections at once.
	t.Setenv(EnvURL, "postgres://postgres:hunter2@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=5")
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		NewDatabase(f)
	}()
	<-done
	if f.skipped {
		t.Fatal("NewDatabase skipped the test; it must fail it")
	}
	if f.fatal == "" {
		t.Fatal("NewDatabase returned without failing the test")
	}
	for _, want := range []string{"make test", EnvURL, "127.0.0.1:1"} {
		if !strings.Contains(f.fatal, want) {
			t.Errorf("failure message %q does not mention %q", f.fatal, want)
		}
	}
	if strings.Contains(f.fatal, "hunter2") {
		t.Errorf("failure message %q shows the password", f.fatal)
	}
}

func TestWithDatabase(t *testing.T) {
	tests := map[string]struct {
		admin string
		want  string
	}{
		"url": {
			admin: "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
			want:  "postgres://postgres@127.0.0.1:5432/db1?sslmode=disable",
		},
		"url without database": {
			admin: "postgresql://u:p@localhost",
			want:  "postgresql://u:p@localhost/db1",
		},
		"keyword/value": {
			admin: "host=127.0.0.1 dbname=postgres",
			want:  "host=127.0.0.1 dbname=postgres dbname=db1",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := withDatabase(tt.admin, "db1")
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("withDatabase(%q) = %q, want %q", tt.admin, got, tt.want)
			}
		})
	}
}
