package logical

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxPathLength is the longest API path the core accepts, in bytes.
const MaxPathLength = 512

// CleanPath checks an API path below /v1/ and returns it without leading
// or trailing slashes. It refuses, with an InvalidRequestError naming
// "path", what could address something other than what it says: "." and
// ".." segments, empty segments ("a//b"), control characters, invalid
// UTF-8, and paths over MaxPathLength. A trailing slash (a folder, for
// lists) is reported through folder.
func CleanPath(p string) (clean string, folder bool, err error) {
	if len(p) > MaxPathLength {
		return "", false, Invalid("path", "longer than %d bytes", MaxPathLength)
	}
	if !utf8.ValidString(p) {
		return "", false, Invalid("path", "not valid UTF-8")
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return "", false, Invalid("path", "contains a control character")
		}
	}
	p = strings.TrimPrefix(p, "/")
	folder = strings.HasSuffix(p, "/")
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		return "", folder, Invalid("path", "empty")
	}
	for i, seg := range strings.Split(p, "/") {
		switch seg {
		case "":
			return "", false, Invalid("path", "empty segment at position %d", i+1)
		case ".", "..":
			return "", false, &InvalidRequestError{Field: "path", Reason: fmt.Sprintf("segment %q is not allowed", seg)}
		}
	}
	return p, folder, nil
}
