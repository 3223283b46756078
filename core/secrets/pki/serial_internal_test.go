package pki

import (
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/core/logical"
)

func TestSerialForms(t *testing.T) {
	cases := map[string]struct {
		in      string
		want    string // colon form; "" for an error
		wantErr string
	}{
		"colon":           {in: "1a:2b:03", want: "1a:2b:03"},
		"hyphen":          {in: "1a-2b-03", want: "1a:2b:03"},
		"upper":           {in: "1A:2B:03", want: "1a:2b:03"},
		"plain":           {in: "1a2b03", want: "1a:2b:03"},
		"plain odd":       {in: "a2b03", want: "0a:2b:03"},
		"one digit group": {in: "1a:b:3", want: "1a:0b:03"},
		"leading zeros":   {in: "00:00:01", want: "01"},
		"twenty bytes":    {in: strings.Repeat("ff", 20), want: strings.TrimSuffix(strings.Repeat("ff:", 20), ":")},
		"too long":        {in: strings.Repeat("ff", 21), wantErr: "up to 20"},
		"three digits":    {in: "1ab:2b", wantErr: "two hex digits"},
		"not hex":         {in: "zz:01", wantErr: "not a serial number"},
		"empty":           {in: "", wantErr: "want a serial"},
		"only separators": {in: "::", wantErr: "not a serial number"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			n, err := parseSerial(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseSerial(%q) = %v, %v; want error %q", tc.in, n, err, tc.wantErr)
				}
				return
			}
			if err != nil || formatSerial(n, ":") != tc.want {
				t.Fatalf("parseSerial(%q) = %v, %v; want %s", tc.in, n, err, tc.want)
			}
		})
	}
	if got := formatSerial(big.NewInt(0x0102), "-"); got != "01-02" {
		t.Fatalf("formatSerial hyphen = %q", got)
	}
}

// FuzzParseSerial: a serial from a path or a body either is refused or
// round-trips through both of Vault's forms.
func FuzzParseSerial(f *testing.F) {
	for _, s := range []string{"1a:2b", "1a-2b", "ff", ":", "-1", "0x12", strings.Repeat("a", 70), "1:2:3:4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSerial(s)
		if err != nil {
			return
		}
		if n.Sign() < 0 || len(n.Bytes()) > 20 {
			t.Fatalf("parseSerial(%q) = %s", s, n)
		}
		for _, sep := range []string{":", "-"} {
			again, err := parseSerial(formatSerial(n, sep))
			if err != nil || again.Cmp(n) != 0 {
				t.Fatalf("%q -> %s -> %v, %v", s, formatSerial(n, sep), again, err)
			}
		}
	})
}

// FuzzParseCertChain: set-signed's certificate field never panics and is
// refused with a 400 naming "certificate" unless it parses.
func FuzzParseCertChain(f *testing.F) {
	f.Add("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	f.Add("junk")
	f.Add("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\ntrailing")
	f.Fuzz(func(t *testing.T, s string) {
		certs, err := parseCertChain(s)
		if err != nil {
			var inv *logical.InvalidRequestError
			if !errors.As(err, &inv) || inv.Field != "certificate" {
				t.Fatalf("parseCertChain: %v", err)
			}
			return
		}
		if len(certs) == 0 || len(certs) > maxChainLen {
			t.Fatalf("%d certificates", len(certs))
		}
	})
}
