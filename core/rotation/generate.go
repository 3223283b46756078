package rotation

import (
	"crypto/rand"
	"fmt"
	"io"
)

// Charset names the characters a generated value is drawn from.
type Charset string

// The charsets.
const (
	// CharsetAlnum is A-Z, a-z and 0-9 (62 characters, about 5.95 bits
	// each).
	CharsetAlnum Charset = "alnum"
	// CharsetAlnumSymbols is CharsetAlnum and CharsetSymbols (77
	// characters, about 6.27 bits each).
	CharsetAlnumSymbols Charset = "alnum-symbols"
	// CharsetHex is 0-9 and a-f (4 bits each).
	CharsetHex Charset = "hex"
	// CharsetBase64URL is RFC 4648's URL-safe base64 alphabet, A-Z a-z
	// 0-9 - _ (6 bits each), without padding.
	CharsetBase64URL Charset = "base64url"
)

// Generator length bounds and defaults.
const (
	MinLength      = 8
	MaxLength      = 128
	DefaultLength  = 32
	DefaultCharset = CharsetAlnum
)

// CharsetSymbols are the symbols of CharsetAlnumSymbols. Quotes,
// backslash, backtick, space, '$', '%', '&', '|', brackets and braces are
// left out: they are the characters most often mangled by shells, SQL
// string literals and configuration templates. Values put in URLs still
// need escaping ('@', ':', '?', '#').
const CharsetSymbols = "!#*+,-.:;=?@^_~"

const (
	alnum     = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	hexChars  = "0123456789abcdef"
	base64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)

// Alphabet returns the characters of c, or false for an unknown charset.
func (c Charset) Alphabet() (string, bool) {
	switch c {
	case CharsetAlnum:
		return alnum, true
	case CharsetAlnumSymbols:
		return alnum + CharsetSymbols, true
	case CharsetHex:
		return hexChars, true
	case CharsetBase64URL:
		return base64URL, true
	}
	return "", false
}

// Generator makes the random values a rotation writes.
type Generator struct {
	// Length is the value's length in characters, MinLength..MaxLength;
	// 0 means DefaultLength.
	Length int `json:"length"`
	// Charset is what the value is drawn from; "" means DefaultCharset.
	Charset Charset `json:"charset"`
}

// withDefaults fills in zero fields.
func (g Generator) withDefaults() Generator {
	if g.Length == 0 {
		g.Length = DefaultLength
	}
	if g.Charset == "" {
		g.Charset = DefaultCharset
	}
	return g
}

// Generate returns a value of g.Length characters drawn uniformly and
// independently from g's charset, reading randomness from r (crypto/rand
// when nil). Bytes that would bias the draw (those at or above the largest
// multiple of the alphabet's size) are rejected and drawn again.
func (g Generator) Generate(r io.Reader) (string, error) {
	g = g.withDefaults()
	if g.Length < MinLength || g.Length > MaxLength {
		return "", fmt.Errorf("rotation: generate: length %d outside %d..%d", g.Length, MinLength, MaxLength)
	}
	alphabet, ok := g.Charset.Alphabet()
	if !ok {
		return "", fmt.Errorf("rotation: generate: unknown charset %q", g.Charset)
	}
	if r == nil {
		r = rand.Reader
	}
	n := len(alphabet)
	limit := 256 - 256%n // bytes >= limit are rejected
	out := make([]byte, 0, g.Length)
	buf := make([]byte, g.Length*2)
	for len(out) < g.Length {
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("rotation: generate: read random bytes: %w", err)
		}
		for _, b := range buf {
			if int(b) >= limit {
				continue
			}
			out = append(out, alphabet[int(b)%n])
			if len(out) == g.Length {
				break
			}
		}
	}
	clear(buf)
	return string(out), nil
}
