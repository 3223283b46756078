package database

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/secrethub/secrethub/core/logical"
)

// BenchmarkDynamicPostgresCreds measures issuing a dynamic credential
// through the engine (creds/:role with the default creation statement, in
// its transaction, from the engine's pool) against the ceiling: a bare
// CREATE ROLE ... LOGIN PASSWORD round trip on one open connection. Both
// run against the same server in the same run; revocation and DROP ROLE
// happen after the timed loop. Each reports p50 and p99 latency and the
// rate (ops/s).
func BenchmarkDynamicPostgresCreds(b *testing.B) {
	f := newFixture(b)
	ctx := context.Background()
	f.writeConfig(nil)
	role := f.prefix + "bench"
	f.must(logical.OpUpdate, "roles/"+role, map[string]any{"db_name": "pg"})

	b.Run("engine", func(b *testing.B) {
		leases := make([]*logical.SecretLease, 0, b.N)
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		start := time.Now()
		for range b.N {
			t0 := time.Now()
			resp, err := f.e.HandleRequest(ctx, &logical.Request{Operation: logical.OpRead, RelativePath: "creds/" + role})
			lat = append(lat, time.Since(t0))
			if err != nil {
				b.Fatal(err)
			}
			leases = append(leases, &logical.SecretLease{InternalData: resp.Secret.InternalData})
		}
		report(b, lat, time.Since(start))
		b.StopTimer()
		for _, l := range leases {
			if err := f.e.RevokeSecret(ctx, l); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("create-role-ceiling", func(b *testing.B) {
		conn, err := pgx.Connect(ctx, f.loginURL(f.admin, f.adminPW))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close(context.Background())
		names := make([]string, 0, b.N)
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		start := time.Now()
		for i := range b.N {
			name := fmt.Sprintf("v-%sceil-%d", f.prefix, i)
			sql := fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD 'abcdefghijklmnopqrstuvwxyz012345'", pgx.Identifier{name}.Sanitize())
			t0 := time.Now()
			_, err := conn.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol)
			lat = append(lat, time.Since(t0))
			if err != nil {
				b.Fatal(err)
			}
			names = append(names, name)
		}
		report(b, lat, time.Since(start))
		b.StopTimer()
		for _, n := range names {
			if _, err := conn.Exec(ctx, "DROP ROLE "+pgx.Identifier{n}.Sanitize()); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// report adds p50_ms, p99_ms and ops/s to b.
func report(b *testing.B, lat []time.Duration, total time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
	b.ReportMetric(float64(len(lat))/total.Seconds(), "ops/s")
}
