package reload

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// waitDelay is how long Run waits, after killing a timed-out command's
// process group, for its output pipes to close.
const waitDelay = 2 * time.Second

// stderrTail is how much of a command's stderr is kept, and stderrLines
// how many of its last lines go into an error.
const (
	stderrTail  = 4096
	stderrLines = 5
)

// Command runs a program without a shell.
type Command struct {
	// Argv is the program and its arguments; Argv[0] is looked up in PATH
	// when it has no slash.
	Argv []string
	// Timeout bounds the run (DefaultTimeout when zero). At the timeout
	// the command and every process in its process group get SIGKILL.
	Timeout time.Duration
	// Env is the command's environment. Nil means the agent's own
	// environment less every SECRETHUB_* variable, so the agent's
	// credentials never reach the command.
	Env []string
}

// Run runs the command and waits for it. The error names Argv[0] and
// holds the exit status and the last lines of stderr; never the
// arguments or the environment.
func (c Command) Run(ctx context.Context) error {
	if len(c.Argv) == 0 || c.Argv[0] == "" {
		return errors.New("reload: command: empty argv")
	}
	name := c.Argv[0]
	timeout := timeoutOrDefault(c.Timeout)
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, ErrTimeout)
	defer cancel()

	cmd := exec.CommandContext(ctx, name, c.Argv[1:]...)
	cmd.Env = c.Env
	if cmd.Env == nil {
		cmd.Env = agentEnv(os.Environ())
	}
	// Its own process group, so the kill at the timeout reaches what the
	// command started too (a shell's children).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = waitDelay
	stderr := &tail{max: stderrTail}
	cmd.Stderr = stderr

	err := cmd.Run()
	if err == nil {
		return nil
	}
	detail := ""
	if s := stderr.lastLines(stderrLines); s != "" {
		detail = "; stderr: " + s
	}
	if errors.Is(context.Cause(ctx), ErrTimeout) {
		return fmt.Errorf("reload: command %q: killed after %s%s: %w", name, timeout, detail, ErrTimeout)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("reload: command %q: %w", name, ctxErr)
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return fmt.Errorf("reload: command %q: %s%s", name, exitErr.ProcessState, detail)
	}
	return fmt.Errorf("reload: command %q: %w", name, err)
}

// agentEnv returns env without the SECRETHUB_* variables.
func agentEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, "SECRETHUB_") {
			out = append(out, kv)
		}
	}
	return out
}

// tail is an io.Writer that keeps the last max bytes written.
type tail struct {
	max int
	mu  sync.Mutex // guards buf
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) >= t.max {
		p = p[len(p)-t.max:]
		t.buf = t.buf[:0]
	}
	if over := len(t.buf) + len(p) - t.max; over > 0 {
		t.buf = t.buf[over:]
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

// lastLines returns up to n last non-empty lines, joined with " | ".
func (t *tail) lastLines(n int) string {
	t.mu.Lock()
	s := strings.ToValidUTF8(string(t.buf), "?")
	t.mu.Unlock()
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
