package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/secrethub/secrethub/core/logical/field"
	"io"
	"math/big"
	"strings"
)

// Key types, as Vault names them.
const (
	KeyTypeRSA     = "rsa"
	KeyTypeEC      = "ec"
	KeyTypeEd25519 = "ed25519"
	KeyTypeAny     = "any"
)

// Bounds on the keys the engine accepts in CSRs.
const (
	minRSABits = 2048
	maxRSABits = 8192 // bigger keys only cost CPU to check
)

// serialBytes is the size of a serial number: 128 random bits.
const serialBytes = 16

// checkGenKey checks a key type and size the engine can generate, and
// fills in the default size (defEC, defRSA) when bits is 0.
func checkGenKey(keyType string, bits, defEC, defRSA int) (int, error) {
	switch keyType {
	case KeyTypeEC:
		if bits == 0 {
			return defEC, nil
		}
		if bits == 256 || bits == 384 || bits == 521 {
			return bits, nil
		}
		return 0, fmt.Errorf("ec keys have 256, 384 or 521 bits, not %d", bits)
	case KeyTypeRSA:
		if bits == 0 {
			return defRSA, nil
		}
		if bits == 2048 || bits == 3072 || bits == 4096 {
			return bits, nil
		}
		return 0, fmt.Errorf("rsa keys have 2048, 3072 or 4096 bits, not %d", bits)
	}
	return 0, fmt.Errorf("key_type must be rsa or ec, not %q", field.Truncate(keyType, 32))
}

// generateKey makes a private key of the given type and size, which
// checkGenKey accepted.
func generateKey(r io.Reader, keyType string, bits int) (crypto.Signer, error) {
	switch keyType {
	case KeyTypeEC:
		var c elliptic.Curve
		switch bits {
		case 256:
			c = elliptic.P256()
		case 384:
			c = elliptic.P384()
		case 521:
			c = elliptic.P521()
		default:
			return nil, fmt.Errorf("pki: no curve of %d bits", bits)
		}
		k, err := ecdsa.GenerateKey(c, r)
		if err != nil {
			return nil, fmt.Errorf("pki: generate ec key: %w", err)
		}
		return k, nil
	case KeyTypeRSA:
		k, err := rsa.GenerateKey(r, bits)
		if err != nil {
			return nil, fmt.Errorf("pki: generate rsa key: %w", err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("pki: cannot generate %q keys", keyType)
}

// describeKey returns a public key's type and size in bits; ok is false
// for a key the engine does not accept at all.
func describeKey(pub crypto.PublicKey) (keyType string, bits int, ok bool) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return KeyTypeRSA, k.N.BitLen(), true
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return KeyTypeEC, k.Curve.Params().BitSize, true
		}
		return KeyTypeEC, 0, false
	case ed25519.PublicKey:
		return KeyTypeEd25519, 256, true
	}
	return "", 0, false
}

// checkPublicKey refuses keys no certificate of this engine may carry:
// unknown algorithms and curves, RSA keys under 2048 or over 8192 bits.
func checkPublicKey(pub crypto.PublicKey) error {
	kt, bits, ok := describeKey(pub)
	switch {
	case !ok && kt == KeyTypeEC:
		return fmt.Errorf("the key's elliptic curve is not supported (use P-256, P-384 or P-521)")
	case !ok:
		return fmt.Errorf("the key's algorithm is not supported (use rsa, ec or ed25519)")
	case kt == KeyTypeRSA && bits < minRSABits:
		return fmt.Errorf("rsa keys of fewer than %d bits are unsafe and not supported (got %d)", minRSABits, bits)
	case kt == KeyTypeRSA && bits > maxRSABits:
		return fmt.Errorf("rsa keys of more than %d bits are not supported (got %d)", maxRSABits, bits)
	}
	return nil
}

// marshalKey encodes a private key: PKCS#8 when pkcs8 is set, else in its
// own format (PKCS#1 for RSA, SEC 1 for EC; ed25519 has only PKCS#8). It
// returns the DER and the PEM block type.
func marshalKey(k crypto.Signer, pkcs8 bool) ([]byte, string, error) {
	if !pkcs8 {
		switch k := k.(type) {
		case *rsa.PrivateKey:
			return x509.MarshalPKCS1PrivateKey(k), "RSA PRIVATE KEY", nil
		case *ecdsa.PrivateKey:
			der, err := x509.MarshalECPrivateKey(k)
			if err != nil {
				return nil, "", fmt.Errorf("pki: encode ec key: %w", err)
			}
			return der, "EC PRIVATE KEY", nil
		}
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, "", fmt.Errorf("pki: encode private key: %w", err)
	}
	return der, "PRIVATE KEY", nil
}

// parseStoredKey decodes a PKCS#8 private key from storage.
func parseStoredKey(der []byte) (crypto.Signer, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("pki: decode stored private key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("pki: stored private key of type %T cannot sign", k)
	}
	return s, nil
}

// subjectKeyID is method 1 of RFC 7093: the leftmost 160 bits of the
// SHA-256 of the subjectPublicKey bit string (as crypto/x509 computes it
// for CA certificates).
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("pki: encode public key: %w", err)
	}
	var info struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spki, &info); err != nil {
		return nil, fmt.Errorf("pki: decode public key: %w", err)
	}
	sum := sha256.Sum256(info.PublicKey.Bytes)
	return sum[:20], nil
}

// newSerial returns a random positive serial number of 128 bits at most.
func newSerial(r io.Reader) (*big.Int, error) {
	var b [serialBytes]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, fmt.Errorf("pki: random serial: %w", err)
		}
		n := new(big.Int).SetBytes(b[:])
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// formatSerial renders a serial as Vault does: lower-case hex bytes joined
// by sep (":" in responses, "-" in storage keys and lists).
func formatSerial(n *big.Int, sep string) string {
	b := n.Bytes()
	if len(b) == 0 {
		return "00"
	}
	var sb strings.Builder
	sb.Grow(len(b) * (2 + len(sep)))
	for i, c := range b {
		if i > 0 {
			sb.WriteString(sep)
		}
		sb.WriteString(hex.EncodeToString([]byte{c}))
	}
	return sb.String()
}

// parseSerial reads a serial number given as hex bytes separated by ":"
// or "-" (Vault's forms), or as plain hex. Serials are at most 20 bytes
// (RFC 5280).
func parseSerial(s string) (*big.Int, error) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 64 {
		return nil, errors.New("want a serial number of up to 20 hex bytes in the form 1a:2b or 1a-2b")
	}
	var digits strings.Builder
	if strings.ContainsAny(s, ":-") {
		for part := range strings.FieldsFuncSeq(s, func(r rune) bool { return r == ':' || r == '-' }) {
			if len(part) > 2 {
				return nil, fmt.Errorf("%q is not a serial number: each byte has two hex digits", field.Truncate(s, 64))
			}
			if len(part) == 1 {
				digits.WriteByte('0')
			}
			digits.WriteString(part)
		}
	} else {
		digits.WriteString(s)
	}
	raw, err := hex.DecodeString(padEven(digits.String()))
	if err != nil || len(raw) == 0 || len(raw) > 20 {
		return nil, fmt.Errorf("%q is not a serial number of up to 20 hex bytes", field.Truncate(s, 64))
	}
	return new(big.Int).SetBytes(raw), nil
}

func padEven(s string) string {
	if len(s)%2 == 1 {
		return "0" + s
	}
	return s
}

// pemString encodes der as one PEM block, without the trailing newline, as
// Vault returns PEM in JSON.
func pemString(blockType string, der []byte) string {
	return strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})))
}

// encodeDER renders der in format: PEM (pem, pem_bundle) or base64 (der).
func encodeDER(format, blockType string, der []byte) string {
	if format == "der" {
		return base64.StdEncoding.EncodeToString(der)
	}
	return pemString(blockType, der)
}
