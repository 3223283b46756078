package policy

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrNotFound is returned by Store.Get for a policy that does not
	// exist.
	ErrNotFound = errors.New("policy: not found")
	// ErrBuiltin is returned by Store.Delete for the built-in policies
	// root and default, which cannot be deleted.
	ErrBuiltin = errors.New("policy: built-in policy cannot be deleted")
)

// maxProblems caps how many problems a ValidationError lists.
const maxProblems = 20

// Problem is one thing wrong with a policy document: the field, as a path
// into the document ("rules[2].capabilities[1]"; "" for the document as a
// whole), and why.
type Problem struct {
	Field  string
	Reason string
}

func (p Problem) String() string {
	if p.Field == "" {
		return p.Reason
	}
	return p.Field + ": " + p.Reason
}

// ValidationError is a policy name or document that does not validate. It
// is bad input: the HTTP layer answers 400, naming Field.
//
// Field and Reason are the first problem found; Problems lists every one
// found, in document order, up to a cap (Problems[0] is Field and Reason).
type ValidationError struct {
	Field    string
	Reason   string
	Problems []Problem
}

func (e *ValidationError) Error() string {
	if len(e.Problems) <= 1 {
		return Problem{Field: e.Field, Reason: e.Reason}.String()
	}
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return strings.Join(parts, "; ")
}

// problems collects the problems of one document.
type problems struct {
	list    []Problem
	dropped int
}

func (ps *problems) add(field, format string, args ...any) {
	if len(ps.list) >= maxProblems {
		ps.dropped++
		return
	}
	ps.list = append(ps.list, Problem{Field: field, Reason: fmt.Sprintf(format, args...)})
}

// err returns the collected problems as a *ValidationError, or nil.
func (ps *problems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	list := ps.list
	if ps.dropped > 0 {
		list = append(list, Problem{Reason: fmt.Sprintf("and %d more problems", ps.dropped)})
	}
	return &ValidationError{Field: list[0].Field, Reason: list[0].Reason, Problems: list}
}

func invalid(field, format string, args ...any) error {
	var ps problems
	ps.add(field, format, args...)
	return ps.err()
}
