package reload

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/secrethub/secrethub/agent/config"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, deadline time.Duration, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(deadline)
	for !cond() {
		select {
		case <-tick.C:
		case <-timeout:
			t.Fatalf("timed out after %s waiting for %s", deadline, what)
		}
	}
}

// processGone reports whether pid has exited (absent, or a zombie no one
// reaped yet).
func processGone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// The state follows the command name, which is in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && (s[i+2] == 'Z' || s[i+2] == 'X')
}

func TestCommand(t *testing.T) {
	const marker = "env-secret-5d1e0b"
	t.Setenv("SECRETHUB_SECRET_ID", marker)
	t.Setenv("RELOAD_TEST_OTHER", "ok")
	tests := map[string]struct {
		cmd         Command
		wantErr     []string // substrings; none means success
		wantMissing []string // must not be in the error
	}{
		"success":                   {cmd: Command{Argv: []string{"true"}}},
		"arguments without a shell": {cmd: Command{Argv: []string{"test", "a b", "=", "a b"}}},
		"inherits the environment":  {cmd: Command{Argv: []string{"sh", "-c", `test "$RELOAD_TEST_OTHER" = ok`}}},
		"agent credentials are not passed": {
			cmd: Command{Argv: []string{"sh", "-c", `test -z "$SECRETHUB_SECRET_ID"`}},
		},
		"explicit environment": {
			cmd: Command{Argv: []string{"/bin/sh", "-c", `test "$X" = 1 && test -z "$RELOAD_TEST_OTHER"`}, Env: []string{"X=1"}},
		},
		"exit status and last stderr lines": {
			cmd:         Command{Argv: []string{"sh", "-c", "for i in 1 2 3 4 5 6 7; do echo line$i >&2; done; echo out; exit 3"}},
			wantErr:     []string{`reload: command "sh": exit status 3; stderr: line3 | line4 | line5 | line6 | line7`},
			wantMissing: []string{"line2", "out", "for i"},
		},
		"environment never in the error": {
			cmd:         Command{Argv: []string{"sh", "-c", "exit 9"}, Env: []string{"TOKEN=" + marker}},
			wantErr:     []string{"exit status 9"},
			wantMissing: []string{marker, "TOKEN"},
		},
		"killed by a signal": {
			cmd:     Command{Argv: []string{"sh", "-c", "kill -TERM $$"}},
			wantErr: []string{`command "sh": signal: terminated`},
		},
		"not found": {
			cmd:     Command{Argv: []string{"/nonexistent/reload-me"}},
			wantErr: []string{`reload: command "/nonexistent/reload-me"`, "no such file"},
		},
		"empty argv": {cmd: Command{}, wantErr: []string{"empty argv"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.cmd.Run(context.Background())
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Run succeeded, want an error")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %q, want it to contain %q", err, w)
				}
			}
			for _, w := range tc.wantMissing {
				if strings.Contains(err.Error(), w) {
					t.Errorf("err = %q, must not contain %q", err, w)
				}
			}
			if errors.Is(err, ErrTimeout) {
				t.Errorf("err %v is ErrTimeout", err)
			}
		})
	}
}

// TestCommandTimeoutKillsGroup runs a shell that starts a long sleep in
// the background: at the timeout both die, and Run returns.
func TestCommandTimeoutKillsGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "sleep.pid")
	cmd := Command{
		Argv:    []string{"sh", "-c", `sleep 60 & echo $! > "$P"; echo started >&2; wait`},
		Env:     []string{"P=" + pidFile, "PATH=" + os.Getenv("PATH")},
		Timeout: time.Second,
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Run(context.Background()) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return long after its 1s timeout")
	}
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if !strings.Contains(err.Error(), `command "sh": killed after 1s; stderr: started`) {
		t.Errorf("err = %q, want the timeout and the stderr tail", err)
	}
	b, rerr := os.ReadFile(pidFile)
	if rerr != nil {
		t.Fatalf("the command never started its sleep: %v", rerr)
	}
	pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
	if perr != nil {
		t.Fatal(perr)
	}
	waitFor(t, "the background sleep to be killed", 10*time.Second, func() bool { return processGone(pid) })
}

func TestCommandParentContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Command{Argv: []string{"sleep", "60"}}.Run(ctx)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want context.Canceled and not ErrTimeout", err)
	}
}

func TestTail(t *testing.T) {
	tests := map[string]struct {
		writes []string
		max    int
		want   string
	}{
		"empty":                {nil, 16, ""},
		"few lines":            {[]string{"a\nb\n"}, 16, "a | b"},
		"blank lines skipped":  {[]string{"a\n\n  \nb"}, 16, "a | b"},
		"keeps the last bytes": {[]string{"0123456789\n", "abcdef\nghij"}, 10, "bcdef | ghij"},
		"one huge write":       {[]string{strings.Repeat("x", 100) + "\nend"}, 8, "xxxx | end"},
		"only the last lines":  {[]string{"1\n2\n3\n4\n5\n6\n7\n"}, 100, "3 | 4 | 5 | 6 | 7"},
		"invalid utf-8":        {[]string{"a\xffb"}, 16, "a?b"},
	}
	for name, tc := range tests {
		tl := &tail{max: tc.max}
		for _, w := range tc.writes {
			if n, err := tl.Write([]byte(w)); n != len(w) || err != nil {
				t.Fatalf("%s: Write = %d, %v", name, n, err)
			}
		}
		if got := tl.lastLines(5); got != tc.want {
			t.Errorf("%s: lastLines = %q, want %q", name, got, tc.want)
		}
	}
}

// startTrapper starts a shell that appends the name of each HUP or USR1 it
// gets to a file, and waits until its pid file is in place (the traps are
// set before it is written).
func startTrapper(t *testing.T) (pidFile, gotFile string) {
	t.Helper()
	dir := t.TempDir()
	pidFile = filepath.Join(dir, "app.pid")
	gotFile = filepath.Join(dir, "got")
	cmd := exec.Command("sh", "-c",
		`trap 'echo HUP >> "$F"' HUP; trap 'echo USR1 >> "$F"' USR1; echo $$ > "$P.tmp"; mv "$P.tmp" "$P"; while :; do sleep 0.05; done`)
	cmd.Env = append(os.Environ(), "F="+gotFile, "P="+pidFile)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	waitFor(t, "the helper's pid file", 10*time.Second, func() bool {
		_, err := os.Stat(pidFile)
		return err == nil
	})
	return pidFile, gotFile
}

func TestSignalDelivered(t *testing.T) {
	pidFile, gotFile := startTrapper(t)
	var want []string
	steps := []struct {
		sig  syscall.Signal
		name string // what the helper records
	}{{syscall.SIGHUP, "HUP"}, {syscall.SIGUSR1, "USR1"}, {syscall.SIGHUP, "HUP"}}
	for _, step := range steps {
		if err := (Signal{Signal: step.sig, PIDFile: pidFile}).Run(context.Background()); err != nil {
			t.Fatalf("Run(%v): %v", step.sig, err)
		}
		want = append(want, step.name)
		wantText := strings.Join(want, "\n") + "\n"
		waitFor(t, fmt.Sprintf("the helper to record %v", want), 10*time.Second, func() bool {
			b, _ := os.ReadFile(gotFile)
			return string(b) == wantText
		})
	}
}

func TestSignalPIDFileErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A process that has exited and been reaped: its pid names no one.
	done := exec.Command("true")
	if err := done.Run(); err != nil {
		t.Fatal(err)
	}
	stale := write("stale", strconv.Itoa(done.ProcessState.Pid())+"\n")

	tests := map[string]struct {
		sig     Signal
		wantErr string
		wantIs  error
	}{
		"missing file":    {sig: Signal{Signal: syscall.SIGHUP, PIDFile: filepath.Join(dir, "nope")}, wantErr: "no such file"},
		"no path":         {sig: Signal{Signal: syscall.SIGHUP}, wantErr: "no path"},
		"empty":           {sig: Signal{Signal: syscall.SIGHUP, PIDFile: write("empty", " \n")}, wantErr: "empty"},
		"not a number":    {sig: Signal{Signal: syscall.SIGHUP, PIDFile: write("abc", "abc")}, wantErr: `"abc" is not a process ID`},
		"zero is a group": {sig: Signal{Signal: syscall.SIGHUP, PIDFile: write("zero", "0")}, wantErr: `"0" is not a process ID`},
		"-1 is everyone":  {sig: Signal{Signal: syscall.SIGHUP, PIDFile: write("minus", "-1\n")}, wantErr: `"-1" is not a process ID`},
		"two numbers":     {sig: Signal{Signal: syscall.SIGHUP, PIDFile: write("two", "12 13")}, wantErr: "is not a process ID"},
		"too large":       {sig: Signal{Signal: syscall.SIGHUP, PIDFile: write("big", "99999999999")}, wantErr: "is not a process ID"},
		"too long":        {sig: Signal{Signal: syscall.SIGHUP, PIDFile: write("long", strings.Repeat("1", 100))}, wantErr: "too long"},
		"a directory":     {sig: Signal{Signal: syscall.SIGHUP, PIDFile: dir}, wantErr: "not a regular file"},
		"no signal":       {sig: Signal{PIDFile: stale}, wantErr: "0 is not a signal"},
		"stale pid":       {sig: Signal{Signal: syscall.SIGHUP, PIDFile: stale}, wantIs: ErrNoProcess},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.sig.Run(context.Background())
			if err == nil {
				t.Fatal("Run succeeded, want an error")
			}
			if tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %q, want it to contain %q", err, tc.wantErr)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("err = %v, want errors.Is %v", err, tc.wantIs)
			}
		})
	}
}

// recorder is an HTTP handler that records requests and answers with a
// status chosen per path.
type recorder struct {
	mu      sync.Mutex // guards methods
	methods []string
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec.mu.Lock()
	rec.methods = append(rec.methods, r.Method+" "+r.URL.Path)
	rec.mu.Unlock()
	switch r.URL.Path {
	case "/ok":
		w.WriteHeader(http.StatusOK)
	case "/nocontent":
		w.WriteHeader(http.StatusNoContent)
	case "/fail":
		http.Error(w, "db password is hunter2", http.StatusInternalServerError)
	case "/redirect-local":
		http.Redirect(w, r, "/ok", http.StatusFound)
	case "/redirect-remote":
		http.Redirect(w, r, "http://192.0.2.1/reload", http.StatusFound)
	case "/slow":
		<-r.Context().Done()
	default:
		http.NotFound(w, r)
	}
}

func TestHTTP(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(rec) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	viaLocalhost := "http://localhost:" + u.Port()

	tests := map[string]struct {
		h          HTTP
		wantErr    string
		wantIs     error
		wantNotErr string
		wantSeen   []string // requests the server got
	}{
		"POST by default":   {h: HTTP{URL: srv.URL + "/ok"}, wantSeen: []string{"POST /ok"}},
		"GET":               {h: HTTP{URL: srv.URL + "/ok", Method: "GET"}, wantSeen: []string{"GET /ok"}},
		"204 is fine":       {h: HTTP{URL: srv.URL + "/nocontent", Method: "PUT"}, wantSeen: []string{"PUT /nocontent"}},
		"localhost by name": {h: HTTP{URL: viaLocalhost + "/ok"}, wantSeen: []string{"POST /ok"}},
		"allow_remote still reaches loopback": {
			h: HTTP{URL: srv.URL + "/ok", AllowRemote: true}, wantSeen: []string{"POST /ok"},
		},
		"local redirect followed": {
			h: HTTP{URL: srv.URL + "/redirect-local", Method: "GET"}, wantSeen: []string{"GET /redirect-local", "GET /ok"},
		},
		"5xx fails, body not shown": {
			h: HTTP{URL: srv.URL + "/fail"}, wantErr: "answered 500 Internal Server Error, want 2xx", wantNotErr: "hunter2",
			wantSeen: []string{"POST /fail"},
		},
		"404 fails": {h: HTTP{URL: srv.URL + "/nope"}, wantErr: "answered 404", wantSeen: []string{"POST /nope"}},
		"redirect off loopback refused": {
			h: HTTP{URL: srv.URL + "/redirect-remote"}, wantIs: ErrRemoteRefused, wantSeen: []string{"POST /redirect-remote"},
		},
		"remote IP refused before any connection": {
			h: HTTP{URL: "http://192.0.2.1:8080/reload"}, wantIs: ErrRemoteRefused,
			wantErr: `reload: http "http://192.0.2.1:8080/reload": reload target is not a loopback address (set allow_remote to reach it)`,
		},
		"remote name refused without a lookup": {h: HTTP{URL: "https://app.example.invalid/reload"}, wantIs: ErrRemoteRefused},
		"password in URL not shown": {
			h: HTTP{URL: "http://u:hunter2@192.0.2.1/"}, wantIs: ErrRemoteRefused, wantNotErr: "hunter2",
		},
		"bad scheme": {h: HTTP{URL: "ftp://127.0.0.1/"}, wantErr: "want http:// or https://"},
		"timeout": {
			h: HTTP{URL: srv.URL + "/slow", Timeout: 200 * time.Millisecond}, wantIs: ErrTimeout,
			wantErr: "no answer within 200ms", wantSeen: []string{"POST /slow"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rec.mu.Lock()
			rec.methods = nil
			rec.mu.Unlock()
			err := tc.h.Run(context.Background())
			if tc.wantErr == "" && tc.wantIs == nil {
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
			} else {
				if err == nil {
					t.Fatal("Run succeeded, want an error")
				}
				if tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("err = %q, want it to contain %q", err, tc.wantErr)
				}
				if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
					t.Errorf("err = %v, want errors.Is %v", err, tc.wantIs)
				}
				if tc.wantNotErr != "" && strings.Contains(err.Error(), tc.wantNotErr) {
					t.Errorf("err = %q, must not contain %q", err, tc.wantNotErr)
				}
			}
			rec.mu.Lock()
			seen := rec.methods
			rec.mu.Unlock()
			if !reflect.DeepEqual(seen, tc.wantSeen) {
				t.Errorf("server saw %q, want %q", seen, tc.wantSeen)
			}
		})
	}
}

func TestLoopbackOnly(t *testing.T) {
	tests := map[string]bool{ // address -> allowed
		"127.0.0.1:80": true, "127.9.9.9:1": true, "[::1]:443": true,
		"192.0.2.1:80": false, "10.0.0.1:80": false, "[2001:db8::1]:80": false, "[::]:80": false, "0.0.0.0:80": false,
		"localhost:80": false, // the resolved address comes here, never a name
		"garbage":      false,
	}
	for addr, allowed := range tests {
		err := loopbackOnly("tcp", addr, nil)
		if (err == nil) != allowed {
			t.Errorf("loopbackOnly(%q) = %v, want allowed %v", addr, err, allowed)
		}
		if err != nil && !errors.Is(err, ErrRemoteRefused) {
			t.Errorf("loopbackOnly(%q) = %v, want ErrRemoteRefused", addr, err)
		}
	}
}

func TestNew(t *testing.T) {
	tests := map[string]struct {
		in      config.Reload
		want    Action
		wantErr string
	}{
		"command": {
			in:   config.Reload{Command: []string{"/bin/kill", "-HUP", "1"}, Timeout: config.Duration(3 * time.Second)},
			want: Command{Argv: []string{"/bin/kill", "-HUP", "1"}, Timeout: 3 * time.Second},
		},
		"signal": {
			in:   config.Reload{Signal: &config.SignalReload{Name: "usr1", PIDFile: "/run/a.pid"}},
			want: Signal{Signal: syscall.SIGUSR1, PIDFile: "/run/a.pid"},
		},
		"http": {
			in:   config.Reload{HTTP: &config.HTTPReload{URL: "http://127.0.0.1:1/r", Method: "PUT", AllowRemote: true}, Timeout: config.Duration(time.Second)},
			want: HTTP{URL: "http://127.0.0.1:1/r", Method: "PUT", Timeout: time.Second, AllowRemote: true},
		},
		"unknown signal": {in: config.Reload{Signal: &config.SignalReload{Name: "SIGFOO"}}, wantErr: "unknown signal"},
		"none":           {in: config.Reload{}, wantErr: "exactly one"},
		"two": {
			in:      config.Reload{Command: []string{"x"}, HTTP: &config.HTTPReload{URL: "http://127.0.0.1/"}},
			wantErr: "exactly one",
		},
	}
	for name, tc := range tests {
		got, err := New(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: err = %v, want %q", name, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: New = %#v, %v; want %#v", name, got, err, tc.want)
		}
	}
}
