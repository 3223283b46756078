// Command loadgen measures a running secrethub server over HTTP against a
// trivial Go handler on the same machine, in the same run.
//
// It starts `secrethub server` on a fresh Postgres database (real storage,
// real audit table, fail closed), initializes and unseals it, and starts a
// trivial HTTP server in a second process of its own. Then, for each
// concurrency level, it drives each scenario closed-loop for a fixed time
// and prints requests per second, p50 and p99 latency, and the ratio to the
// trivial handler's rate at the same concurrency. Every run is bounded in
// time and in request count, and talks only to 127.0.0.1.
//
//	go run ./hack/loadgen -bin bin/secrethub -duration 3s -concurrency 1,16,64
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type options struct {
	bin         string
	databaseURL string
	duration    time.Duration
	concurrency []int
	maxRequests int
	scenarios   []string
}

func run() error {
	var o options
	var conc, trivial, only string
	flag.StringVar(&o.bin, "bin", "bin/secrethub", "secrethub binary to measure")
	flag.StringVar(&o.databaseURL, "database-url", envOr("SECRETHUB_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "Postgres admin URL; a database is created for the run and dropped after")
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "how long each scenario runs at each concurrency")
	flag.StringVar(&conc, "concurrency", "1,16,64", "comma-separated concurrency levels")
	flag.IntVar(&o.maxRequests, "max-requests", 500000, "upper bound on requests per scenario and level")
	flag.StringVar(&only, "scenarios", "", "comma-separated substrings: run only the scenarios whose names contain one (the trivial handler always runs)")
	flag.StringVar(&trivial, "trivial-listen", "", "internal: serve the trivial handler on this address")
	flag.Parse()
	if trivial != "" {
		return serveTrivial(trivial)
	}
	for _, s := range strings.Split(conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 1024 {
			return fmt.Errorf("-concurrency: %q is not a level between 1 and 1024", s)
		}
		o.concurrency = append(o.concurrency, n)
	}
	for _, s := range strings.Split(only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			o.scenarios = append(o.scenarios, s)
		}
	}
	if o.duration <= 0 || o.duration > time.Minute {
		return errors.New("-duration: want between 0 and 1m")
	}
	return measure(o)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// serveTrivial is the ceiling: a Go handler that answers a small JSON
// body, as cheaply as net/http allows.
func serveTrivial(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	body := []byte(`{"data":{"value":"trivial"}}` + "\n")
	return http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
}

func measure(o options) error {
	ctx := context.Background()
	dbURL, drop, err := createDatabase(ctx, o.databaseURL)
	if err != nil {
		return err
	}
	defer drop()

	stats, err := pgx.Connect(ctx, o.databaseURL)
	if err != nil {
		return fmt.Errorf("connect to Postgres: %w", err)
	}
	defer stats.Close(ctx)

	srv, addr, err := startSecretHub(o.bin, dbURL)
	if err != nil {
		return err
	}
	defer stop(srv)
	trivial, trivialAddr, err := startTrivial()
	if err != nil {
		return err
	}
	defer stop(trivial)

	base := "http://" + addr
	root, err := bootstrap(base)
	if err != nil {
		return err
	}
	roleID, secretID, err := setupAppRole(base, root)
	if err != nil {
		return err
	}
	if err := call(http.MethodPut, base+"/v1/secrets/bench/read", root, map[string]any{"user": "bench", "password": "not-a-real-secret"}, nil); err != nil {
		return fmt.Errorf("seed secret: %w", err)
	}

	loginBody, _ := json.Marshal(map[string]any{"role_id": roleID, "secret_id": secretID})
	scenarios := []scenario{
		{name: "trivial handler", method: http.MethodGet, url: func(int) string { return "http://" + trivialAddr + "/" }},
		{name: "KV read", method: http.MethodGet, token: root, url: func(int) string { return base + "/v1/secrets/bench/read" }},
		{name: "KV write (audited, Postgres)", method: http.MethodPut, token: root,
			url:  func(w int) string { return base + "/v1/secrets/bench/write-" + strconv.Itoa(w) },
			body: []byte(`{"user":"bench","password":"rotated-value"}`)},
		{name: "AppRole login", method: http.MethodPost, url: func(int) string { return base + "/v1/auth/approle/login" }, body: loginBody},
	}

	fmt.Printf("secrethub %s vs a trivial Go handler, %s per scenario and level, %d CPUs\n\n", o.bin, o.duration, numCPU())
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tconcurrency\treq/s\tp50\tp99\terrors\t% of trivial\tCPU µs/req: server\tpostgres\tloadgen\tWAL syncs/req\t")
	var errNotes []string
	for _, c := range o.concurrency {
		var ceiling float64
		for _, sc := range scenarios {
			if sc.name != "trivial handler" && !selected(sc.name, o.scenarios) {
				continue
			}
			serverPID := srv.Process.Pid
			if sc.name == "trivial handler" {
				serverPID = trivial.Process.Pid
			}
			syncs := walSyncs(ctx, stats)
			before := sampleCPU(serverPID)
			res := sc.run(c, o.duration, o.maxRequests)
			cpu := sampleCPU(serverPID).sub(before)
			syncs = walSyncs(ctx, stats) - syncs
			ratio := "-"
			if sc.name == "trivial handler" {
				ceiling = res.rate
			} else if ceiling > 0 {
				ratio = fmt.Sprintf("%.1f%%", 100*res.rate/ceiling)
			}
			n := float64(max(1, res.requests))
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%d\t%s\t%.0f\t%.0f\t%.0f\t%.2f\t\n", sc.name, c, res.rate,
				res.p50.Round(time.Microsecond), res.p99.Round(time.Microsecond), res.errors, ratio,
				cpu.server.Seconds()*1e6/n, cpu.postgres.Seconds()*1e6/n, cpu.self.Seconds()*1e6/n, float64(syncs)/n)
			if res.firstErr != "" {
				errNotes = append(errNotes, fmt.Sprintf("%s at %d: first error: %s", sc.name, c, res.firstErr))
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range errNotes {
		fmt.Println(n)
	}
	return nil
}

func numCPU() int {
	n := 0
	if f, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		n = bytes.Count(f, []byte("processor\t:"))
	}
	return n
}

type scenario struct {
	name   string
	method string
	token  string
	url    func(worker int) string
	body   []byte
}

type result struct {
	requests int
	rate     float64
	p50, p99 time.Duration
	errors   int
	firstErr string
}

// run drives the scenario closed-loop with c workers until d passes or
// max requests are sent.
func (s scenario) run(c int, d time.Duration, max int) result {
	tr := &http.Transport{MaxIdleConns: c, MaxIdleConnsPerHost: c, MaxConnsPerHost: c, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var (
		mu        sync.Mutex
		latencies []time.Duration
		errs      int
		sent      int
		firstErr  string
	)
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := s.url(w)
			local := make([]time.Duration, 0, 4096)
			localErrs := 0
			for time.Now().Before(deadline) {
				mu.Lock()
				if sent >= max {
					mu.Unlock()
					break
				}
				sent++
				mu.Unlock()
				req, _ := http.NewRequest(s.method, u, bytes.NewReader(s.body))
				if s.token != "" {
					req.Header.Set("X-SecretHub-Token", s.token)
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode >= 300 {
						err = fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(body))
					}
				}
				local = append(local, time.Since(t0))
				if err != nil {
					localErrs++
					mu.Lock()
					if firstErr == "" {
						firstErr = err.Error()
					}
					mu.Unlock()
				}
			}
			mu.Lock()
			latencies = append(latencies, local...)
			errs += localErrs
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(latencies)
	pct := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))]
	}
	return result{requests: len(latencies), rate: float64(len(latencies)-errs) / elapsed.Seconds(), p50: pct(0.50), p99: pct(0.99), errors: errs, firstErr: firstErr}
}

func createDatabase(ctx context.Context, adminURL string) (string, func(), error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("connect to Postgres (run make test-services): %w", err)
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	name := "secrethub_loadgen_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		conn.Close(ctx)
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		conn.Close(ctx)
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() {
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		conn.Close(ctx)
	}
	return u.String(), drop, nil
}

var listening = regexp.MustCompile(`"msg":"secrethub server listening","address":"http://([^"]+)"`)

func startSecretHub(bin, dbURL string) (*exec.Cmd, string, error) {
	cmd := exec.Command(bin, "server", "-listen-address", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "SECRETHUB_LOG_LEVEL=info")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s: %w", bin, err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case a := <-addr:
		return cmd, a, nil
	case <-time.After(30 * time.Second):
		stop(cmd)
		return nil, "", errors.New("secrethub server did not start listening within 30s")
	}
}

func startTrivial() (*exec.Cmd, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(self, "-trivial-listen", "127.0.0.1:0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		stop(cmd)
		return nil, "", fmt.Errorf("trivial server: %w", err)
	}
	return cmd, strings.TrimSpace(line), nil
}

func stop(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
	}
}

// call sends a JSON request and decodes the JSON answer into out.
func call(method, u, token string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("X-SecretHub-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, u, resp.StatusCode, raw)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

func bootstrap(base string) (string, error) {
	var init struct {
		Keys      []string `json:"keys"`
		RootToken string   `json:"root_token"`
	}
	if err := call(http.MethodPut, base+"/v1/sys/init", "", map[string]any{"secret_shares": 1, "secret_threshold": 1}, &init); err != nil {
		return "", err
	}
	if err := call(http.MethodPut, base+"/v1/sys/unseal", "", map[string]any{"key": init.Keys[0]}, nil); err != nil {
		return "", err
	}
	return init.RootToken, nil
}

func setupAppRole(base, root string) (string, string, error) {
	if err := call(http.MethodPut, base+"/v1/sys/policies/acl/bench", root, map[string]any{
		"policy": `{"rules":[{"path":"secrets/bench/**","capabilities":["read","list"]}]}`}, nil); err != nil {
		return "", "", err
	}
	if err := call(http.MethodPut, base+"/v1/auth/approle/role/bench", root, map[string]any{"token_policies": []string{"bench"}, "token_ttl": "10m"}, nil); err != nil {
		return "", "", err
	}
	var rid, sid struct {
		Data map[string]any `json:"data"`
	}
	if err := call(http.MethodGet, base+"/v1/auth/approle/role/bench/role-id", root, nil, &rid); err != nil {
		return "", "", err
	}
	if err := call(http.MethodPut, base+"/v1/auth/approle/role/bench/secret-id", root, map[string]any{}, &sid); err != nil {
		return "", "", err
	}
	r, _ := rid.Data["role_id"].(string)
	s, _ := sid.Data["secret_id"].(string)
	return r, s, nil
}

// selected reports whether name contains one of subs, or subs is empty.
func selected(name string, subs []string) bool {
	if len(subs) == 0 {
		return true
	}
	for _, s := range subs {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}

// cpuTimes is CPU time (user + system) used so far by the server under
// test, by every process named postgres (the whole cluster, other
// databases included), and by this process (the load generator).
type cpuTimes struct {
	server, postgres, self time.Duration
}

func (a cpuTimes) sub(b cpuTimes) cpuTimes {
	return cpuTimes{server: a.server - b.server, postgres: a.postgres - b.postgres, self: a.self - b.self}
}

// sampleCPU reads the CPU times from /proc; a process it cannot read
// counts zero.
func sampleCPU(serverPID int) cpuTimes {
	t := cpuTimes{server: procCPU(strconv.Itoa(serverPID)), self: procCPU("self")}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if comm, err := os.ReadFile("/proc/" + e.Name() + "/comm"); err == nil && strings.TrimSpace(string(comm)) == "postgres" {
			t.postgres += procCPU(e.Name())
		}
	}
	return t
}

// procCPU returns utime + stime of /proc/<pid>/stat.
func procCPU(pid string) time.Duration {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// clockTicks is USER_HZ, which is 100 on every Linux architecture Go
// supports.
const clockTicks = 100

// walSyncs is how many times the cluster has synced its WAL to disk
// (pg_stat_wal, Postgres 14 and later; 0 where it cannot be read). It
// counts the whole cluster, other databases included.
func walSyncs(ctx context.Context, conn *pgx.Conn) int64 {
	var n int64
	_ = conn.QueryRow(ctx, "SELECT wal_sync FROM pg_stat_wal").Scan(&n)
	return n
}
