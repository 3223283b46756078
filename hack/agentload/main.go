// Command agentload measures one secrethub core holding many agent
// connections: the core's resident memory with N agents connected and
// watching a path, and how long a write of that path takes to reach every
// agent as a "changed" push (and, with -reread, until every agent has
// read the new value).
//
// It obtains one agent certificate (a token whose policy reads one path)
// that every simulated agent shares, opens N WebSockets to the agent
// listener (hello, then a read of the path, so it is watched), reads the
// core's VmRSS from /proc/<pid>/status, writes the path once over REST and
// waits for the pushes. It talks only to the addresses it is given, is
// bounded by -connections (at most 20,000) and -timeout, and stops by
// itself.
//
//	go run ./hack/agentload -addr http://127.0.0.1:4210 -token <root> \
//	    -agent-addr 127.0.0.1:4211 -core-pid <pid> -connections 10000
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/secrethub/secrethub/core/wire"
)

// maxConnections bounds -connections: the file descriptor limit here is
// 20,000.
const maxConnections = 19000

// watchedPath is the path every simulated agent watches.
const watchedPath = "secrets/agentload/watched"

type options struct {
	addr, token, agentAddr string
	corePID                int
	connections            int
	dialConcurrency        int
	perSource              int
	timeout                time.Duration
	reread                 bool
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", "http://127.0.0.1:4210", "the core's REST address")
	flag.StringVar(&o.token, "token", os.Getenv("SECRETHUB_TOKEN"), "a root token (default $SECRETHUB_TOKEN)")
	flag.StringVar(&o.agentAddr, "agent-addr", "127.0.0.1:4211", "the core's agent listener, host:port")
	flag.IntVar(&o.corePID, "core-pid", 0, "the core's process ID, for its VmRSS (0: not reported)")
	flag.IntVar(&o.connections, "connections", 1000, "agent connections to open (at most 19000)")
	flag.IntVar(&o.dialConcurrency, "dial-concurrency", 32, "connections being opened at once")
	flag.IntVar(&o.perSource, "per-source", 5000, "connections per loopback source address (127.0.0.1, 127.0.0.2, ...)")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Minute, "bound on the whole run")
	flag.BoolVar(&o.reread, "reread", true, "after the push, every agent reads the path again; measure until all have")
	flag.Parse()
	if err := validate(o); err != nil {
		fmt.Fprintln(os.Stderr, "agentload:", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "agentload:", err)
		os.Exit(1)
	}
}

func validate(o options) error {
	switch {
	case o.token == "":
		return errors.New("-token: a root token is required")
	case o.connections < 1 || o.connections > maxConnections:
		return fmt.Errorf("-connections: want 1 to %d", maxConnections)
	case o.dialConcurrency < 1 || o.dialConcurrency > 1024:
		return errors.New("-dial-concurrency: want 1 to 1024")
	case o.perSource < 1:
		return errors.New("-per-source: want at least 1")
	case o.connections/o.perSource > 250:
		return errors.New("-per-source: too few connections per source address")
	case o.timeout <= 0 || o.timeout > 30*time.Minute:
		return errors.New("-timeout: want up to 30m")
	}
	return nil
}

func run(ctx context.Context, o options) error {
	if err := waitHealthy(ctx, o.addr); err != nil {
		return err
	}
	tlsCfg, err := setup(ctx, o)
	if err != nil {
		return err
	}
	baseRSS, _ := rssKiB(o.corePID)

	// Connect every agent: hello, read (watch), then wait for the push.
	agents := make([]*agent, o.connections)
	start := time.Now()
	if err := connectAll(ctx, o, tlsCfg, agents); err != nil {
		closeAll(agents)
		return err
	}
	connectTime := time.Since(start)
	defer closeAll(agents)
	runtime.GC()
	rss, rssErr := rssKiB(o.corePID)
	listed, err := countListed(ctx, o)
	if err != nil {
		return err
	}

	// One write; every agent is told.
	var changed, reread sync.WaitGroup
	changed.Add(len(agents))
	if o.reread {
		reread.Add(len(agents))
	}
	var writeAtNanos atomic.Int64
	for _, a := range agents {
		a.writeAt = &writeAtNanos
		go a.awaitChange(&changed, &reread, o.reread)
	}
	writeAt := time.Now()
	writeAtNanos.Store(writeAt.UnixNano())
	if err := call(ctx, http.MethodPut, o.addr+"/v1/"+watchedPath, o.token, map[string]any{"v": "1"}, nil); err != nil {
		return fmt.Errorf("write the watched path: %w", err)
	}
	if err := waitCtx(ctx, &changed); err != nil {
		return fmt.Errorf("waiting for every agent to be told: %w (%d of %d told)", err, countTold(agents), len(agents))
	}
	allChanged := time.Since(writeAt)
	var allReread time.Duration
	if o.reread {
		if err := waitCtx(ctx, &reread); err != nil {
			return fmt.Errorf("waiting for every agent to read again: %w", err)
		}
		allReread = time.Since(writeAt)
	}

	// Report.
	lat := make([]time.Duration, 0, len(agents))
	failures := 0
	for _, a := range agents {
		if a.err != nil {
			failures++
			continue
		}
		lat = append(lat, a.toldAfter)
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(time.Microsecond)
	}
	fmt.Printf("agents: %d connected in %s (%d in sys/agents), %d source addresses\n",
		len(agents), connectTime.Round(time.Millisecond), listed, (len(agents)+o.perSource-1)/o.perSource)
	if o.corePID > 0 && rssErr == nil {
		fmt.Printf("core RSS: %.1f MiB before, %.1f MiB with %d agents (%.1f KiB per agent)\n",
			float64(baseRSS)/1024, float64(rss)/1024, len(agents), float64(rss-baseRSS)/float64(len(agents)))
	} else if rssErr != nil {
		fmt.Printf("core RSS: unavailable: %v\n", rssErr)
	}
	fmt.Printf("changed push: all %d told %s after the write (p50 %s, p99 %s)",
		len(agents), allChanged.Round(time.Microsecond), pct(0.5), pct(0.99))
	if o.reread {
		fmt.Printf("; all re-read after %s", allReread.Round(time.Microsecond))
	}
	fmt.Println()
	if failures > 0 {
		return fmt.Errorf("%d agents failed after connecting", failures)
	}
	return nil
}

func waitCtx(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitHealthy waits up to 30 seconds for the core to answer sys/health
// with 200 (initialized, unsealed).
func waitHealthy(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, addr+"/v1/sys/health", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("core at %s not healthy within 30s (last: %v)", addr, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// setup writes the policy and the watched secret, makes a token that can
// read it, and gets the agent certificate every simulated agent shares.
func setup(ctx context.Context, o options) (*tls.Config, error) {
	policy := `{"rules":[{"path":"secrets/agentload/*","capabilities":["read"]}]}`
	if err := call(ctx, http.MethodPut, o.addr+"/v1/sys/policies/acl/agentload", o.token, map[string]any{"policy": policy}, nil); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if err := call(ctx, http.MethodPut, o.addr+"/v1/"+watchedPath, o.token, map[string]any{"v": "0"}, nil); err != nil {
		return nil, fmt.Errorf("seed secret: %w", err)
	}
	var created wire.Response
	if err := call(ctx, http.MethodPost, o.addr+"/v1/auth/token/create", o.token, map[string]any{"policies": []string{"agentload"}, "ttl": "2h"}, &created); err != nil {
		return nil, fmt.Errorf("agent token: %w", err)
	}
	if created.Auth == nil {
		return nil, errors.New("agent token: no auth in the answer")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "agentload"}}, key)
	if err != nil {
		return nil, err
	}
	csr := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	var signed wire.Response
	if err := call(ctx, http.MethodPut, o.addr+"/v1/sys/agent/certificate", created.Auth.ClientToken, map[string]any{"csr": csr, "name": "agentload"}, &signed); err != nil {
		return nil, fmt.Errorf("agent certificate: %w", err)
	}
	certPEM, _ := signed.Data["certificate"].(string)
	caPEM, _ := signed.Data["issuing_ca"].(string)
	block, _ := pem.Decode([]byte(certPEM))
	if block == nil {
		return nil, errors.New("agent certificate: no PEM certificate in the answer")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(caPEM)) {
		return nil, errors.New("agent certificate: no issuing CA in the answer")
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12, RootCAs: pool,
		Certificates: []tls.Certificate{{Certificate: [][]byte{block.Bytes}, PrivateKey: key}},
	}, nil
}

// agent is one simulated agent connection.
type agent struct {
	ws *websocket.Conn
	// writeAt is when the write was sent, Unix nanoseconds.
	writeAt *atomic.Int64
	// told is set once the push arrived, toldAfter its delay after the
	// write.
	told      atomic.Bool
	toldAfter time.Duration
	err       error
}

// connectAll opens every connection, dialConcurrency at a time; the n-th
// connection leaves from 127.0.0.(1 + n/perSource).
func connectAll(ctx context.Context, o options, tlsCfg *tls.Config, agents []*agent) error {
	var (
		next     atomic.Int64
		firstErr error
		mu       sync.Mutex
		wg       sync.WaitGroup
	)
	for range o.dialConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(agents) || ctx.Err() != nil {
					return
				}
				mu.Lock()
				failed := firstErr != nil
				mu.Unlock()
				if failed {
					return
				}
				a, err := connect(ctx, o, tlsCfg, i)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("agent %d: %w", i, err)
					}
					mu.Unlock()
					return
				}
				agents[i] = a
			}
		}()
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return firstErr
}

func connect(ctx context.Context, o options, tlsCfg *tls.Config, i int) (*agent, error) {
	src := &net.TCPAddr{IP: net.IPv4(127, 0, byte((1+i/o.perSource)/256), byte((1+i/o.perSource)%256))}
	nd := &net.Dialer{LocalAddr: src, Timeout: 10 * time.Second}
	d := websocket.Dialer{
		NetDialContext: nd.DialContext, TLSClientConfig: tlsCfg, HandshakeTimeout: 10 * time.Second,
		Subprotocols: []string{wire.AgentSubprotocol}, ReadBufferSize: 1024, WriteBufferSize: 1024,
	}
	ws, resp, err := d.DialContext(ctx, "wss://"+o.agentAddr+wire.AgentConnectPath, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial: %w (status %d)", err, resp.StatusCode)
		}
		return nil, fmt.Errorf("dial: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			ws.Close()
		}
	}()
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	// The longest heartbeat the core accepts: the simulated agents stay
	// silent for the whole run.
	if err := ws.WriteJSON(wire.AgentMessage{Type: wire.AgentHello, ID: "h", Name: "agentload-" + strconv.Itoa(i), Version: "agentload", HeartbeatSeconds: 300}); err != nil {
		return nil, err
	}
	if err := expect(ws, wire.AgentWelcome, "h"); err != nil {
		return nil, err
	}
	if err := ws.WriteJSON(wire.AgentMessage{Type: wire.AgentRead, ID: "r0", Path: watchedPath}); err != nil {
		return nil, err
	}
	if err := expect(ws, wire.AgentSecret, "r0"); err != nil {
		return nil, err
	}
	_ = ws.SetReadDeadline(time.Time{})
	ok = true
	return &agent{ws: ws}, nil
}

func expect(ws *websocket.Conn, typ, id string) error {
	var m wire.AgentMessage
	if err := ws.ReadJSON(&m); err != nil {
		return fmt.Errorf("waiting for %s: %w", typ, err)
	}
	if m.Type != typ || m.ID != id {
		return fmt.Errorf("got %s %q (code %d: %s), want %s %q", m.Type, m.ID, m.Code, m.Error, typ, id)
	}
	return nil
}

// awaitChange waits for the push and, with reread, reads the path again.
func (a *agent) awaitChange(changed, reread *sync.WaitGroup, doReread bool) {
	defer func() {
		if !a.told.Load() {
			changed.Done()
		}
		if doReread {
			reread.Done()
		}
	}()
	var m wire.AgentMessage
	if err := a.ws.ReadJSON(&m); err != nil {
		a.err = err
		return
	}
	if m.Type != wire.AgentChanged || m.Path != watchedPath {
		a.err = fmt.Errorf("got %s %s, want changed %s", m.Type, m.Path, watchedPath)
		return
	}
	a.toldAfter = time.Since(time.Unix(0, a.writeAt.Load()))
	a.told.Store(true)
	changed.Done()
	if !doReread {
		return
	}
	if err := a.ws.WriteJSON(wire.AgentMessage{Type: wire.AgentRead, ID: "r1", Path: watchedPath}); err != nil {
		a.err = err
		return
	}
	if err := expect(a.ws, wire.AgentSecret, "r1"); err != nil {
		a.err = err
	}
}

func countTold(agents []*agent) int {
	n := 0
	for _, a := range agents {
		if a != nil && a.told.Load() {
			n++
		}
	}
	return n
}

func closeAll(agents []*agent) {
	for _, a := range agents {
		if a != nil {
			_ = a.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			a.ws.Close()
		}
	}
}

// countListed is how many agents LIST sys/agents shows.
func countListed(ctx context.Context, o options) (int, error) {
	req, _ := http.NewRequestWithContext(ctx, "LIST", o.addr+"/v1/sys/agents", nil)
	req.Header.Set("X-SecretHub-Token", o.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("list sys/agents: %w", err)
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Keys []string `json:"keys"`
		} `json:"data"`
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("list sys/agents: status %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, fmt.Errorf("list sys/agents: %w", err)
	}
	return len(out.Data.Keys), nil
}

// rssKiB reads VmRSS of pid from /proc.
func rssKiB(pid int) (int64, error) {
	if pid <= 0 {
		return 0, errors.New("no -core-pid")
	}
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, errors.New("no VmRSS in /proc/<pid>/status")
}

// call sends a JSON request and decodes the JSON answer into out.
func call(ctx context.Context, method, u, token string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	req.Header.Set("X-SecretHub-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: status %d: %s", method, u, resp.StatusCode, bytes.TrimSpace(raw))
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}
