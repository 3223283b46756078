package pki

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/logical/field"
	"github.com/secrethub/secrethub/core/storage"
)

// certEntry is an issued certificate as stored under certs/<serial>.
type certEntry struct {
	Certificate    []byte `json:"certificate"`               // DER
	Issuer         string `json:"issuer"`                    // serial of the CA certificate that signed it
	RevocationTime int64  `json:"revocation_time,omitempty"` // Unix seconds; 0: not revoked
}

// revokedEntry is a revocation as stored under revoked/<serial>: what a
// CRL build needs without reading the certificate.
type revokedEntry struct {
	RevocationTime int64  `json:"revocation_time"` // Unix seconds
	NotAfter       int64  `json:"not_after"`       // Unix seconds
	Issuer         string `json:"issuer"`
}

// crlEntry is the current CRL as stored.
type crlEntry struct {
	DER        []byte `json:"der"`
	Number     int64  `json:"number"`
	Issuer     string `json:"issuer"`      // serial of the CA certificate that signed it
	ThisUpdate int64  `json:"this_update"` // Unix seconds
	NextUpdate int64  `json:"next_update"` // Unix seconds
}

func certKey(serial *big.Int) string    { return certsPrefix + formatSerial(serial, "-") }
func revokedKey(serial *big.Int) string { return revokedPrefix + formatSerial(serial, "-") }

// certPutOp is the storage operation that records cert, signed by the CA
// whose serial is issuer.
func certPutOp(cert *x509.Certificate, issuer string) (storage.Op, error) {
	raw, err := json.Marshal(&certEntry{Certificate: cert.Raw, Issuer: issuer})
	if err != nil {
		return storage.Op{}, fmt.Errorf("pki: encode certificate: %w", err)
	}
	return storage.PutOp(certKey(cert.SerialNumber), raw), nil
}

// storeCert records an issued certificate.
func (e *Engine) storeCert(ctx context.Context, cert *x509.Certificate, issuer string) error {
	op, err := certPutOp(cert, issuer)
	if err != nil {
		return err
	}
	if err := e.storage.Put(ctx, op.Key, op.Value); err != nil {
		return fmt.Errorf("pki: store certificate %s: %w", formatSerial(cert.SerialNumber, ":"), err)
	}
	return nil
}

// getCert reads a stored certificate; nil when there is none.
func (e *Engine) getCert(ctx context.Context, serial *big.Int) (*certEntry, error) {
	raw, err := logical.GetOptional(ctx, e.storage, certKey(serial))
	if err != nil {
		return nil, fmt.Errorf("pki: read certificate %s: %w", formatSerial(serial, ":"), err)
	}
	if raw == nil {
		return nil, nil
	}
	var ent certEntry
	if err := json.Unmarshal(raw, &ent); err != nil {
		return nil, fmt.Errorf("pki: decode certificate %s: %w", formatSerial(serial, ":"), err)
	}
	return &ent, nil
}

func revocationData(unix int64) map[string]any {
	rfc := ""
	if unix != 0 {
		rfc = time.Unix(unix, 0).UTC().Format(time.RFC3339)
	}
	return map[string]any{"revocation_time": unix, "revocation_time_rfc3339": rfc}
}

// readCert serves cert/<serial>, and cert/ca, cert/ca_chain and cert/crl.
func (e *Engine) readCert(ctx context.Context, arg string) (*logical.Response, error) {
	switch arg {
	case "ca", "ca_chain":
		ca, err := e.loadCA(ctx)
		if err != nil {
			return nil, err
		}
		if ca == nil {
			return nil, fmt.Errorf("pki: no CA: %w", logical.ErrNotFound)
		}
		if arg == "ca" {
			data := revocationData(0)
			data["certificate"] = ca.chainPEM[0]
			return &logical.Response{Data: data}, nil
		}
		return &logical.Response{Data: map[string]any{
			"certificate": strings.Join(ca.chainPEM, "\n"),
			"ca_chain":    slices.Clone(ca.chainPEM),
		}}, nil
	case "crl":
		ca, err := e.loadCA(ctx)
		if err != nil {
			return nil, err
		}
		if ca == nil {
			return nil, fmt.Errorf("pki: no CA: %w", logical.ErrNotFound)
		}
		crl, err := e.currentCRL(ctx, ca)
		if err != nil {
			return nil, err
		}
		return &logical.Response{Data: map[string]any{"certificate": pemString("X509 CRL", crl.DER)}}, nil
	}
	serial, err := parseSerial(arg)
	if err != nil {
		return nil, logical.Invalid("serial", "%v", err)
	}
	ent, err := e.getCert(ctx, serial)
	if err != nil {
		return nil, err
	}
	if ent == nil {
		return nil, fmt.Errorf("pki: certificate %s: %w", formatSerial(serial, ":"), logical.ErrNotFound)
	}
	data := revocationData(ent.RevocationTime)
	data["certificate"] = pemString("CERTIFICATE", ent.Certificate)
	data["serial_number"] = formatSerial(serial, ":")
	return &logical.Response{Data: data}, nil
}

// listCerts lists the serials of stored certificates, hex bytes joined by
// "-" as Vault lists them.
func (e *Engine) listCerts(ctx context.Context) (*logical.Response, error) {
	serials, err := logical.ListKeys(ctx, e.storage, certsPrefix)
	if err != nil {
		return nil, fmt.Errorf("pki: list certificates: %w", err)
	}
	return logical.ListResponse(serials), nil
}

func (e *Engine) handleRevoke(ctx context.Context, data map[string]any) (*logical.Response, error) {
	if err := field.CheckFields(data, "serial_number"); err != nil {
		return nil, err
	}
	s, ok, err := field.GetNonNull(data, "serial_number", parseString)
	if err != nil {
		return nil, err
	}
	if !ok || s == "" {
		return nil, logical.Invalid("serial_number", "missing")
	}
	serial, err := parseSerial(s)
	if err != nil {
		return nil, logical.Invalid("serial_number", "%v", err)
	}
	t, err := e.Revoke(ctx, serial)
	if err != nil {
		return nil, err
	}
	data = revocationData(t.Unix())
	data["state"] = "revoked"
	return &logical.Response{Data: data}, nil
}

// Revoke revokes the stored certificate with serial and rebuilds the CRL,
// in one storage transaction, and returns the revocation time. Revoking a
// revoked certificate returns its first revocation time and changes
// nothing. An unknown serial, or the CA's own, is an InvalidRequestError.
func (e *Engine) Revoke(ctx context.Context, serial *big.Int) (time.Time, error) {
	e.crlMu.Lock()
	defer e.crlMu.Unlock()
	ca, err := e.loadCA(ctx)
	if err != nil {
		return time.Time{}, err
	}
	if ca != nil && ca.cert.SerialNumber.Cmp(serial) == 0 {
		return time.Time{}, logical.Invalid("serial_number", "this is the mount's own CA certificate: delete the CA (DELETE root) instead")
	}
	ent, err := e.getCert(ctx, serial)
	if err != nil {
		return time.Time{}, err
	}
	if ent == nil {
		return time.Time{}, logical.Invalid("serial_number", "no certificate with serial %s is stored on this mount", formatSerial(serial, ":"))
	}
	if ent.RevocationTime != 0 {
		return time.Unix(ent.RevocationTime, 0).UTC(), nil
	}
	cert, err := x509.ParseCertificate(ent.Certificate)
	if err != nil {
		return time.Time{}, fmt.Errorf("pki: decode stored certificate %s: %w", formatSerial(serial, ":"), err)
	}
	now := e.now().UTC().Truncate(time.Second)
	ent.RevocationTime = now.Unix()
	rev := &revokedEntry{RevocationTime: now.Unix(), NotAfter: cert.NotAfter.Unix(), Issuer: ent.Issuer}
	rawCert, err := json.Marshal(ent)
	if err != nil {
		return time.Time{}, fmt.Errorf("pki: encode certificate: %w", err)
	}
	rawRev, err := json.Marshal(rev)
	if err != nil {
		return time.Time{}, fmt.Errorf("pki: encode revocation: %w", err)
	}
	ops := []storage.Op{storage.PutOp(certKey(serial), rawCert), storage.PutOp(revokedKey(serial), rawRev)}
	if ca != nil {
		crl, err := e.buildCRL(ctx, ca, serial, rev)
		if err != nil {
			return time.Time{}, err
		}
		raw, err := json.Marshal(crl)
		if err != nil {
			return time.Time{}, fmt.Errorf("pki: encode CRL: %w", err)
		}
		ops = append(ops, storage.PutOp(crlKey, raw))
	}
	if err := e.storage.Txn(ctx, ops); err != nil {
		return time.Time{}, fmt.Errorf("pki: store revocation of %s: %w", formatSerial(serial, ":"), err)
	}
	return now, nil
}

// IsRevoked reports whether serial was revoked on this mount.
func (e *Engine) IsRevoked(ctx context.Context, serial *big.Int) (bool, error) {
	if serial == nil {
		return false, fmt.Errorf("pki: nil serial")
	}
	raw, err := logical.GetOptional(ctx, e.storage, revokedKey(serial))
	if err != nil {
		return false, fmt.Errorf("pki: read revocation of %s: %w", formatSerial(serial, ":"), err)
	}
	return raw != nil, nil
}

// getCRL reads the stored CRL; nil when there is none.
func (e *Engine) getCRL(ctx context.Context) (*crlEntry, error) {
	raw, err := logical.GetOptional(ctx, e.storage, crlKey)
	if err != nil {
		return nil, fmt.Errorf("pki: read CRL: %w", err)
	}
	if raw == nil {
		return nil, nil
	}
	var c crlEntry
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("pki: decode CRL: %w", err)
	}
	return &c, nil
}

// fresh reports whether c may be served for ca at now: signed by ca and
// less than half its validity old.
func (e *Engine) fresh(c *crlEntry, ca *caBundle, now time.Time) bool {
	if c == nil || c.Issuer != ca.serial {
		return false
	}
	half := (c.NextUpdate - c.ThisUpdate) / 2
	return now.Unix() < c.ThisUpdate+half
}

// currentCRL returns a fresh CRL of ca, building and storing a new one
// when the stored one is missing, stale or signed by another CA.
func (e *Engine) currentCRL(ctx context.Context, ca *caBundle) (*crlEntry, error) {
	c, err := e.getCRL(ctx)
	if err != nil {
		return nil, err
	}
	if e.fresh(c, ca, e.now()) {
		return c, nil
	}
	e.crlMu.Lock()
	defer e.crlMu.Unlock()
	if c, err = e.getCRL(ctx); err != nil {
		return nil, err
	}
	if e.fresh(c, ca, e.now()) {
		return c, nil
	}
	if c, err = e.buildCRL(ctx, ca, nil, nil); err != nil {
		return nil, err
	}
	raw, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("pki: encode CRL: %w", err)
	}
	if err := e.storage.Put(ctx, crlKey, raw); err != nil {
		return nil, fmt.Errorf("pki: store CRL: %w", err)
	}
	return c, nil
}

// buildCRL makes a new CRL of ca from the stored revocations plus extra
// (not yet stored; nil for none), numbered one above the stored CRL. It
// lists the unexpired certificates of ca that were revoked. The caller
// holds crlMu.
func (e *Engine) buildCRL(ctx context.Context, ca *caBundle, extraSerial *big.Int, extra *revokedEntry) (*crlEntry, error) {
	prev, err := e.getCRL(ctx)
	if err != nil {
		return nil, err
	}
	number := int64(1)
	if prev != nil {
		number = prev.Number + 1
	}
	now := e.now().UTC().Truncate(time.Second)
	keys, err := e.storage.List(ctx, revokedPrefix)
	if err != nil {
		return nil, fmt.Errorf("pki: list revocations: %w", err)
	}
	var entries []x509.RevocationListEntry
	add := func(serial *big.Int, r *revokedEntry) {
		if r.Issuer == ca.serial && r.NotAfter > now.Unix() {
			entries = append(entries, x509.RevocationListEntry{SerialNumber: serial, RevocationTime: time.Unix(r.RevocationTime, 0).UTC()})
		}
	}
	for _, k := range keys {
		if strings.HasSuffix(k, "/") {
			continue
		}
		serial, err := parseSerial(k)
		if err != nil {
			return nil, fmt.Errorf("pki: revocation key %q: %w", k, err)
		}
		if extraSerial != nil && serial.Cmp(extraSerial) == 0 {
			continue
		}
		raw, err := logical.GetOptional(ctx, e.storage, revokedPrefix+k)
		if err != nil {
			return nil, fmt.Errorf("pki: read revocation %s: %w", k, err)
		}
		if raw == nil {
			continue
		}
		var r revokedEntry
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("pki: decode revocation %s: %w", k, err)
		}
		add(serial, &r)
	}
	if extra != nil {
		add(extraSerial, extra)
	}
	slices.SortFunc(entries, func(a, b x509.RevocationListEntry) int { return a.SerialNumber.Cmp(b.SerialNumber) })
	next := now.Add(e.crlValidity)
	if next.After(ca.cert.NotAfter) {
		next = ca.cert.NotAfter
	}
	der, err := x509.CreateRevocationList(e.rand, &x509.RevocationList{
		Number:                    big.NewInt(number),
		ThisUpdate:                now,
		NextUpdate:                next,
		RevokedCertificateEntries: entries,
	}, ca.cert, ca.signer)
	if err != nil {
		return nil, fmt.Errorf("pki: sign CRL: %w", err)
	}
	return &crlEntry{DER: der, Number: number, Issuer: ca.serial, ThisUpdate: now.Unix(), NextUpdate: next.Unix()}, nil
}

// readCRL serves crl (DER) and crl/pem as raw bodies.
func (e *Engine) readCRL(ctx context.Context, asPEM bool) (*logical.Response, error) {
	ca, err := e.loadCA(ctx)
	if err != nil {
		return nil, err
	}
	if ca == nil {
		return nil, fmt.Errorf("pki: no CA: %w", logical.ErrNotFound)
	}
	c, err := e.currentCRL(ctx, ca)
	if err != nil {
		return nil, err
	}
	if asPEM {
		return &logical.Response{Raw: pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: c.DER}), RawContentType: "application/x-pem-file", StatusCode: 200}, nil
	}
	return &logical.Response{Raw: c.DER, RawContentType: "application/pkix-crl", StatusCode: 200}, nil
}
