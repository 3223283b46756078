package reload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// maxPID is Linux's PID_MAX_LIMIT: every process ID is below it.
const maxPID = 1 << 22

// Signal sends a signal to the process whose ID is in a pid file.
type Signal struct {
	// Signal is what to send, like syscall.SIGHUP.
	Signal syscall.Signal
	// PIDFile holds the process ID as decimal text (white space around
	// it is ignored). It is read at every Run, so a restarted process is
	// found.
	PIDFile string
}

// Run reads the pid file and sends the signal. A process ID that is not a
// positive number (0 and -1 would signal a whole group, or everything) is
// refused; a process that is gone gives ErrNoProcess.
func (s Signal) Run(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("reload: signal: %w", err)
	}
	if s.Signal <= 0 {
		return fmt.Errorf("reload: signal: %d is not a signal", int(s.Signal))
	}
	pid, err := readPID(s.PIDFile)
	if err != nil {
		return fmt.Errorf("reload: signal: pid file %q: %w", s.PIDFile, err)
	}
	if err := syscall.Kill(pid, s.Signal); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("reload: signal %s to pid %d (from %q): %w", s.Signal, pid, s.PIDFile, ErrNoProcess)
		}
		return fmt.Errorf("reload: signal %s to pid %d (from %q): %w", s.Signal, pid, s.PIDFile, err)
	}
	return nil
}

// readPID reads a small regular file holding one process ID.
func readPID(path string) (int, error) {
	if path == "" {
		return 0, errors.New("no path")
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	if !fi.Mode().IsRegular() {
		return 0, errors.New("not a regular file")
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 65))
	if err != nil {
		return 0, err
	}
	if len(b) > 64 {
		return 0, errors.New("too long for a process ID")
	}
	text := strings.TrimSpace(string(b))
	if text == "" {
		return 0, errors.New("empty")
	}
	pid, err := strconv.Atoi(text)
	if err != nil || pid < 1 || pid >= maxPID {
		return 0, fmt.Errorf("%q is not a process ID", text)
	}
	return pid, nil
}
