// Package reload tells an application that a rendered file changed: by
// running a command, by sending a signal to a process named in a pid
// file, or by an HTTP request.
//
// Each kind is an Action; New builds one from a template's reload block
// in the agent's configuration. No error from an action carries the
// environment, a request body or a secret: a command's error has its exit
// status and the last lines it wrote to stderr.
package reload

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/secrethub/secrethub/agent/config"
)

// DefaultTimeout bounds a command or HTTP reload whose Timeout is zero.
const DefaultTimeout = config.DefaultReloadTimeout

var (
	// ErrTimeout is wrapped by the error of a reload that ran out of
	// time; a command is killed (with its whole process group).
	ErrTimeout = errors.New("reload timed out")
	// ErrRemoteRefused is wrapped by the error of an HTTP reload aimed at
	// a host that is not loopback, while AllowRemote is false.
	ErrRemoteRefused = errors.New("reload target is not a loopback address")
	// ErrNoProcess is wrapped by the error of a signal reload whose pid
	// file names no running process (a stale pid file).
	ErrNoProcess = errors.New("no such process")
)

// Action tells the application to reload.
type Action interface {
	// Run reloads once. It returns when the reload is done, failed, timed
	// out or ctx ended.
	Run(ctx context.Context) error
}

var (
	_ Action = Command{}
	_ Action = Signal{}
	_ Action = HTTP{}
)

// New builds the action a validated reload block describes.
func New(r config.Reload) (Action, error) {
	timeout := time.Duration(r.Timeout)
	switch {
	case r.Command != nil && r.Signal == nil && r.HTTP == nil:
		return Command{Argv: append([]string(nil), r.Command...), Timeout: timeout}, nil
	case r.Signal != nil && r.Command == nil && r.HTTP == nil:
		sig, err := config.ParseSignal(r.Signal.Name)
		if err != nil {
			return nil, fmt.Errorf("reload: signal.name: %w", err)
		}
		return Signal{Signal: sig, PIDFile: r.Signal.PIDFile}, nil
	case r.HTTP != nil && r.Command == nil && r.Signal == nil:
		return HTTP{URL: r.HTTP.URL, Method: r.HTTP.Method, Timeout: timeout, AllowRemote: r.HTTP.AllowRemote}, nil
	}
	return nil, errors.New("reload: set exactly one of command, signal and http")
}

func timeoutOrDefault(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultTimeout
	}
	return d
}
