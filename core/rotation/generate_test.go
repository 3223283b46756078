package rotation_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/core/rotation"
)

func TestGenerateCharsets(t *testing.T) {
	for _, cs := range []rotation.Charset{rotation.CharsetAlnum, rotation.CharsetAlnumSymbols, rotation.CharsetHex, rotation.CharsetBase64URL} {
		t.Run(string(cs), func(t *testing.T) {
			alphabet, ok := cs.Alphabet()
			if !ok {
				t.Fatal("no alphabet")
			}
			seen := map[rune]bool{}
			for range 50 {
				v, err := rotation.Generator{Length: 128, Charset: cs}.Generate(nil)
				if err != nil {
					t.Fatal(err)
				}
				if len(v) != 128 {
					t.Fatalf("length %d; want 128", len(v))
				}
				for _, r := range v {
					if !strings.ContainsRune(alphabet, r) {
						t.Fatalf("character %q outside the %s alphabet", r, cs)
					}
					seen[r] = true
				}
			}
			// 6,400 draws leave no character of an alphabet of at most 77
			// unseen unless the draw is broken (chance below 1e-30).
			if len(seen) != len(alphabet) {
				t.Fatalf("%d of %d characters drawn", len(seen), len(alphabet))
			}
		})
	}
}

// Bytes that would bias the draw are rejected: for alnum (62 characters)
// bytes 248..255 are skipped, so 248 must not map to alphabet[248%62].
func TestGenerateRejectsBiasedBytes(t *testing.T) {
	src := bytes.Repeat([]byte{248, 255, 0, 61, 62, 247}, 10)
	v, err := rotation.Generator{Length: 8, Charset: rotation.CharsetAlnum}.Generate(bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	// Accepted bytes: 0, 61, 62, 247 → A, 9, A, 247%62=61 → 9.
	if want := "A9A9A9A9"; v != want {
		t.Fatalf("Generate = %q; want %q", v, want)
	}
}

func TestGenerateBounds(t *testing.T) {
	for _, g := range []rotation.Generator{{Length: 7}, {Length: 129}, {Charset: "emoji"}} {
		if _, err := g.Generate(nil); err == nil {
			t.Errorf("Generate(%+v) succeeded", g)
		}
	}
	v, err := rotation.Generator{}.Generate(nil)
	if err != nil || len(v) != rotation.DefaultLength {
		t.Fatalf("zero Generator = %q, %v; want %d characters", v, err, rotation.DefaultLength)
	}
}
