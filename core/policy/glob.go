package policy

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxPathLength is the longest rule path, in bytes.
const MaxPathLength = 512

// segKind says how one segment of a rule path matches.
type segKind uint8

const (
	// segLiteral matches one path segment equal to its text.
	segLiteral segKind = iota
	// segWild matches one path segment against a pattern with '*' and '?'.
	segWild
	// segAny ("**") matches zero or more whole segments.
	segAny
)

type segment struct {
	kind segKind
	text string
}

// glob is a compiled rule path. It is immutable once compiled.
type glob struct {
	pattern string
	segs    []segment
	// literal: the pattern has no wildcard, so a path matches exactly when
	// it equals the pattern.
	literal bool
	// prefix is literal text every matching path starts with.
	prefix string
	// minSegs is the number of segments other than "**": a matching path
	// has at least that many.
	minSegs int
	// hasAny: the pattern has a "**" segment; without one, a matching path
	// has exactly len(segs) segments.
	hasAny bool
}

// compileGlob parses a rule path (see docs/policies.md, "Glob grammar").
// Its errors describe the problem without naming the field; the caller
// adds the field.
func compileGlob(pattern string) (*glob, error) {
	switch {
	case pattern == "":
		return nil, errors.New("must not be empty")
	case len(pattern) > MaxPathLength:
		return nil, fmt.Errorf("longer than %d bytes", MaxPathLength)
	case !utf8.ValidString(pattern):
		return nil, errors.New("not valid UTF-8")
	case pattern[0] == '/':
		return nil, fmt.Errorf("%q must not start with '/'", pattern)
	}
	for _, r := range pattern {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return nil, fmt.Errorf("%q contains a control character", pattern)
		}
	}
	g := &glob{pattern: pattern, literal: true}
	prefixDone := false
	offset := 0
	for i, text := range strings.Split(pattern, "/") {
		switch {
		case text == "":
			return nil, fmt.Errorf("%q has an empty segment (segment %d)", pattern, i)
		case text == "." || text == "..":
			return nil, fmt.Errorf("%q has a %q segment", pattern, text)
		case text == "**":
			g.segs = append(g.segs, segment{kind: segAny})
			g.hasAny = true
			g.literal = false
			if !prefixDone {
				// "**" may match no segment at all, so the '/' before it
				// is not part of every match.
				g.prefix = strings.TrimSuffix(pattern[:offset], "/")
				prefixDone = true
			}
		case strings.Contains(text, "**"):
			return nil, fmt.Errorf("%q: \"**\" must be a whole segment, not part of %q", pattern, text)
		case strings.ContainsAny(text, "*?"):
			g.segs = append(g.segs, segment{kind: segWild, text: text})
			g.minSegs++
			g.literal = false
			if !prefixDone {
				g.prefix = pattern[:offset+strings.IndexAny(text, "*?")]
				prefixDone = true
			}
		default:
			g.segs = append(g.segs, segment{kind: segLiteral, text: text})
			g.minSegs++
		}
		offset += len(text) + 1
	}
	if g.literal {
		g.prefix = pattern
	}
	return g, nil
}

// maxStackSegs is how many path segments a match splits on the stack.
const maxStackSegs = 32

// splitPath splits path on '/' into buf, like strings.Split but without
// allocating when buf is large enough.
func splitPath(buf []string, path string) []string {
	for {
		i := strings.IndexByte(path, '/')
		if i < 0 {
			return append(buf, path)
		}
		buf = append(buf, path[:i])
		path = path[i+1:]
	}
}

// matchString reports whether path matches g. It splits path itself; ACL
// evaluation splits a request path once and calls match for every rule.
func (g *glob) matchString(path string) bool {
	var buf [maxStackSegs]string
	return g.match(path, splitPath(buf[:0], path))
}

// match reports whether path, split into segs, matches g.
func (g *glob) match(path string, segs []string) bool {
	if g.literal {
		return path == g.pattern
	}
	if !strings.HasPrefix(path, g.prefix) || len(segs) < g.minSegs {
		return false
	}
	if !g.hasAny && len(segs) != len(g.segs) {
		return false
	}
	// Wildcard matching at the level of segments, where "**" is the star:
	// remember the last "**" seen and, on a mismatch, let it swallow one
	// more segment. A "**" matches any run of segments, so retrying from
	// the last one only is enough (see Russ Cox, "Glob Matching Can Be
	// Simple And Fast Too").
	pi, si := 0, 0
	starP, starS := -1, 0
	for si < len(segs) {
		if pi < len(g.segs) {
			switch s := g.segs[pi]; s.kind {
			case segAny:
				starP, starS = pi, si
				pi++
				continue
			case segLiteral:
				if s.text == segs[si] {
					pi++
					si++
					continue
				}
			case segWild:
				if wildMatch(s.text, segs[si]) {
					pi++
					si++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starS++
		pi, si = starP+1, starS
	}
	for pi < len(g.segs) && g.segs[pi].kind == segAny {
		pi++
	}
	return pi == len(g.segs)
}

// wildMatch matches one segment s against pattern p, where '*' matches any
// run of characters and '?' exactly one character (a UTF-8 sequence), and
// every other byte itself. Both must be valid UTF-8 for '?' to count
// characters rather than bytes.
func wildMatch(p, s string) bool {
	px, sx := 0, 0
	// nextPx, nextSx: where to restart after a mismatch, i.e. the last '*'
	// and one character further into s than it matched last time. nextSx
	// is 0 while no '*' was seen (a restart always moves past 0).
	nextPx, nextSx := 0, 0
	for px < len(p) || sx < len(s) {
		if px < len(p) {
			switch c := p[px]; c {
			case '*':
				nextPx = px
				if sx < len(s) {
					_, w := utf8.DecodeRuneInString(s[sx:])
					nextSx = sx + w
				} else {
					nextSx = len(s) + 1
				}
				px++
				continue
			case '?':
				if sx < len(s) {
					_, w := utf8.DecodeRuneInString(s[sx:])
					px++
					sx += w
					continue
				}
			default:
				if sx < len(s) && s[sx] == c {
					px++
					sx++
					continue
				}
			}
		}
		if 0 < nextSx && nextSx <= len(s) {
			px, sx = nextPx, nextSx
			continue
		}
		return false
	}
	return true
}
