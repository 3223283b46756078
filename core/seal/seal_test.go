package seal_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/secrethub/secrethub/core/seal"
	"github.com/secrethub/secrethub/core/storage"
	"github.com/secrethub/secrethub/core/storage/inmem"
)

// initialized prepares a seal with cfg over a fresh backend and returns the
// seal, its shares, the root key it guards and the backend.
func initialized(t *testing.T, shares, threshold int) (*seal.Seal, [][]byte, []byte, *inmem.Backend) {
	t.Helper()
	be := inmem.New()
	s := seal.New(be, nil)
	root := make([]byte, 32)
	_, _ = rand.Read(root)
	keys, ops, err := s.Prepare(seal.Config{Shares: shares, Threshold: threshold}, root)
	if err != nil {
		t.Fatalf("Prepare(%d, %d): %v", shares, threshold, err)
	}
	if len(keys) != shares {
		t.Fatalf("Prepare gave %d shares, want %d", len(keys), shares)
	}
	if err := be.Txn(context.Background(), ops); err != nil {
		t.Fatal(err)
	}
	return s, keys, root, be
}

func TestUnsealWithThresholdShares(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ shares, threshold int }{{1, 1}, {2, 2}, {5, 3}, {10, 10}} {
		s, keys, root, _ := initialized(t, tc.shares, tc.threshold)
		// Use the last `threshold` shares, not the first, to show any subset works.
		subset := keys[len(keys)-tc.threshold:]
		for i, k := range subset {
			p, got, err := s.Submit(ctx, k)
			if err != nil {
				t.Fatalf("%d/%d share %d: %v", tc.shares, tc.threshold, i, err)
			}
			if i < len(subset)-1 {
				if got != nil || p.Provided != i+1 || p.Nonce == "" {
					t.Fatalf("%d/%d share %d: progress %+v, key %v", tc.shares, tc.threshold, i, p, got != nil)
				}
				continue
			}
			if !bytes.Equal(got, root) {
				t.Fatalf("%d/%d: combined key does not open the root key", tc.shares, tc.threshold)
			}
		}
		if n, nonce := s.Progress(); n != 0 || nonce != "" {
			t.Errorf("%d/%d: progress after unseal = %d %q, want reset", tc.shares, tc.threshold, n, nonce)
		}
	}
}

func TestWrongForeignAndDuplicateShares(t *testing.T) {
	ctx := context.Background()
	_, foreign, _, _ := initialized(t, 5, 3)
	random := make([]byte, 33)
	_, _ = rand.Read(random)

	cases := map[string]struct {
		submit  func(keys [][]byte) [][]byte
		wantErr error
		// wantProgress is the progress after the last submission.
		wantProgress int
	}{
		"foreign share completes the threshold": {
			// x coordinates are random: move the foreign one off the
			// real shares', or it would count as a duplicate instead.
			submit: func(k [][]byte) [][]byte {
				f := bytes.Clone(foreign[2])
				f[len(f)-1] = unusedX(k)
				return [][]byte{k[0], k[1], f}
			},
			wantErr: seal.ErrWrongShares, wantProgress: 0,
		},
		"random share completes the threshold": {
			// Its x coordinate (last byte) must be none of the real
			// shares', or it would count as a duplicate instead.
			submit: func(k [][]byte) [][]byte {
				r := bytes.Clone(random)
				r[len(r)-1] = unusedX(k)
				return [][]byte{k[0], r, k[1]}
			},
			wantErr: seal.ErrWrongShares, wantProgress: 0,
		},
		"foreign share with a colliding x coordinate": {
			submit: func(k [][]byte) [][]byte {
				f := bytes.Clone(foreign[0])
				f[len(f)-1] = k[0][len(k[0])-1]
				return [][]byte{k[0], f}
			},
			wantErr: seal.ErrWrongShares, wantProgress: 0,
		},
		"duplicate share keeps progress": {
			submit:  func(k [][]byte) [][]byte { return [][]byte{k[0], k[1], k[1]} },
			wantErr: seal.ErrDuplicateShare, wantProgress: 2,
		},
		"share of the wrong length keeps progress": {
			submit:  func(k [][]byte) [][]byte { return [][]byte{k[0], k[1][:20]} },
			wantErr: seal.ErrInvalidShare, wantProgress: 1,
		},
		"empty share": {
			submit:  func(k [][]byte) [][]byte { return [][]byte{{}} },
			wantErr: seal.ErrInvalidShare, wantProgress: 0,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s, keys, root, _ := initialized(t, 5, 3)
			subs := tc.submit(keys)
			var err error
			var key []byte
			for _, sh := range subs {
				_, key, err = s.Submit(ctx, sh)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("last Submit: %v, want %v", err, tc.wantErr)
			}
			if key != nil {
				t.Fatal("a key was returned with an error")
			}
			if n, _ := s.Progress(); n != tc.wantProgress {
				t.Fatalf("progress %d, want %d", n, tc.wantProgress)
			}
			// After the failure, the right shares still unseal.
			s.Reset()
			for _, sh := range keys[:3] {
				_, key, err = s.Submit(ctx, sh)
				if err != nil {
					t.Fatalf("right shares after failure: %v", err)
				}
			}
			if !bytes.Equal(key, root) {
				t.Fatal("right shares after failure did not give the root key")
			}
		})
	}
}

func TestSingleShareWrongKey(t *testing.T) {
	s, _, _, _ := initialized(t, 1, 1)
	wrong := make([]byte, 32)
	if _, _, err := s.Submit(context.Background(), wrong); !errors.Is(err, seal.ErrWrongShares) {
		t.Fatalf("wrong single key: %v, want ErrWrongShares", err)
	}
}

func TestConfigValidate(t *testing.T) {
	cases := map[string]struct {
		cfg       seal.Config
		wantField string // "" means valid
	}{
		"defaults":                  {seal.Config{}.WithDefaults(), ""},
		"1 of 1":                    {seal.Config{Shares: 1, Threshold: 1}, ""},
		"255 of 255":                {seal.Config{Shares: 255, Threshold: 255}, ""},
		"zero shares":               {seal.Config{Shares: 0, Threshold: 0}, "secret_shares"},
		"negative shares":           {seal.Config{Shares: -1, Threshold: 1}, "secret_shares"},
		"256 shares":                {seal.Config{Shares: 256, Threshold: 3}, "secret_shares"},
		"threshold over shares":     {seal.Config{Shares: 3, Threshold: 4}, "secret_threshold"},
		"threshold zero":            {seal.Config{Shares: 3, Threshold: 0}, "secret_threshold"},
		"threshold 1 of many":       {seal.Config{Shares: 3, Threshold: 1}, "secret_threshold"},
		"defaults fill threshold":   {seal.Config{Shares: 2}.WithDefaults(), ""},
		"defaults fill shares":      {seal.Config{Threshold: 7}.WithDefaults(), ""},
		"defaults keep bad numbers": {seal.Config{Shares: 2, Threshold: 9}.WithDefaults(), "secret_threshold"},
	}
	for name, tc := range cases {
		err := tc.cfg.Validate()
		var fe *seal.FieldError
		switch {
		case tc.wantField == "" && err != nil:
			t.Errorf("%s: %v, want valid", name, err)
		case tc.wantField != "" && (!errors.As(err, &fe) || fe.Field != tc.wantField):
			t.Errorf("%s: %v, want an error on %s", name, err, tc.wantField)
		}
	}
	if d := (seal.Config{}).WithDefaults(); d.Shares != 5 || d.Threshold != 3 {
		t.Errorf("defaults = %d/%d, want 5/3", d.Shares, d.Threshold)
	}
}

func TestNothingStoredRebuildsTheKey(t *testing.T) {
	ctx := context.Background()
	_, keys, root, be := initialized(t, 3, 2)
	names, err := be.List(ctx, "core/")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		raw, err := be.Get(ctx, "core/"+n)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		for i, k := range keys {
			if bytes.Contains(raw, k[:16]) || strings.Contains(string(raw), hex.EncodeToString(k[:16])) ||
				strings.Contains(string(raw), base64.StdEncoding.EncodeToString(k)[:16]) {
				t.Errorf("share %d found in core/%s", i, n)
			}
		}
		if bytes.Contains(raw, root[:16]) {
			t.Errorf("root key in plaintext in core/%s", n)
		}
	}
}

func TestDecodeShare(t *testing.T) {
	k := []byte{1, 2, 3, 250}
	for _, in := range []string{hex.EncodeToString(k), base64.StdEncoding.EncodeToString(k), " " + hex.EncodeToString(k) + "\n"} {
		got, err := seal.DecodeShare(in)
		if err != nil || !bytes.Equal(got, k) {
			t.Errorf("DecodeShare(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "   ", "not a key!", "abc"} {
		if _, err := seal.DecodeShare(in); !errors.Is(err, seal.ErrInvalidShare) {
			t.Errorf("DecodeShare(%q): %v, want ErrInvalidShare", in, err)
		}
	}
}

func TestSubmitUninitialized(t *testing.T) {
	s := seal.New(inmem.New(), nil)
	if _, _, err := s.Submit(context.Background(), make([]byte, 33)); !errors.Is(err, seal.ErrNotInitialized) {
		t.Fatalf("Submit on uninitialized seal: %v", err)
	}
}

// unusedX returns an x coordinate (a share's last byte) that no share of
// keys has.
func unusedX(keys [][]byte) byte {
	used := map[byte]bool{}
	for _, k := range keys {
		used[k[len(k)-1]] = true
	}
	for x := byte(1); ; x++ {
		if !used[x] {
			return x
		}
	}
}
