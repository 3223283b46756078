package awssts

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/logical/field"
)

const (
	maxStringLen = 1024
	maxTTL       = 10 * 8766 * time.Hour
)

// rootConfig is config/root as stored. SecretKey stays in the barrier.
type rootConfig struct {
	AccessKey   string `json:"access_key"`
	SecretKey   string `json:"secret_key"`
	Region      string `json:"region"`
	IAMEndpoint string `json:"iam_endpoint,omitempty"`
	STSEndpoint string `json:"sts_endpoint,omitempty"`
	MaxRetries  int    `json:"max_retries"`
}

// leaseConfig is config/lease as stored.
type leaseConfig struct {
	Lease    time.Duration `json:"lease"`
	LeaseMax time.Duration `json:"lease_max"`
}

var (
	regionRE    = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d+$`)
	accessKeyRE = regexp.MustCompile(`^[A-Z0-9]{16,128}$`)
)

// parseString reads a one-line string field of at most maxStringLen
// bytes (see field.Text).
func parseString(v any) (string, error) { return field.Text(v, maxStringLen) }

// parseSecret reads a secret string; its value never appears in an error.
func parseSecret(v any) (string, error) {
	s, ok := field.Single(v).(string)
	switch {
	case !ok:
		return "", fmt.Errorf("want a string, got %s", field.TypeName(v))
	case len(s) > maxStringLen:
		return "", fmt.Errorf("longer than %d bytes", maxStringLen)
	case field.HasControl(s) || strings.TrimSpace(s) != s:
		return "", fmt.Errorf("contains a control character or surrounding space")
	}
	return s, nil
}

func parseEndpoint(v any) (string, error) {
	s, err := parseString(v)
	if err != nil || s == "" {
		return s, err
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return "", fmt.Errorf("%q is not an http(s) URL", field.Truncate(s, 64))
	}
	return strings.TrimRight(s, "/"), nil
}

func parseInt(lo, hi int64) func(any) (int64, error) {
	return func(v any) (int64, error) {
		f, err := field.Whole(v)
		if err != nil {
			return 0, err
		}
		if f < float64(lo) || f > float64(hi) {
			return 0, fmt.Errorf("must be from %d to %d", lo, hi)
		}
		return int64(f), nil
	}
}

func parseTTL(v any) (time.Duration, error) {
	return field.Duration(v, maxTTL, parseInt(0, int64(maxTTL/time.Second)))
}

func (e *Engine) writeRoot(ctx context.Context, data map[string]any) (*logical.Response, error) {
	if err := field.CheckFields(data, "access_key", "secret_key", "region", "iam_endpoint", "sts_endpoint", "max_retries"); err != nil {
		return nil, err
	}
	var old rootConfig
	hadOld, err := logical.GetJSON(ctx, e.storage, rootKey, &old)
	if err != nil {
		return nil, err
	}
	c := rootConfig{}
	if c.AccessKey, err = field.GetOr(data, "access_key", parseString, ""); err != nil {
		return nil, err
	}
	if c.AccessKey == "" {
		return nil, logical.Invalid("access_key", "required (this engine does not read credentials from its host's environment)")
	}
	if !accessKeyRE.MatchString(c.AccessKey) {
		return nil, logical.Invalid("access_key", "want 16 to 128 capital letters and digits")
	}
	secret, ok, err := field.GetNonNull(data, "secret_key", parseSecret)
	switch {
	case err != nil:
		return nil, err
	case ok && secret != "":
		c.SecretKey = secret
	case hadOld && old.AccessKey == c.AccessKey:
		c.SecretKey = old.SecretKey // same key, secret not sent again
	default:
		return nil, logical.Invalid("secret_key", "required")
	}
	if c.Region, err = field.GetOr(data, "region", parseString, DefaultRegion); err != nil {
		return nil, err
	}
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if !regionRE.MatchString(c.Region) {
		return nil, logical.Invalid("region", "%q is not an AWS region name", field.Truncate(c.Region, 32))
	}
	if c.IAMEndpoint, err = field.GetOr(data, "iam_endpoint", parseEndpoint, ""); err != nil {
		return nil, err
	}
	if c.STSEndpoint, err = field.GetOr(data, "sts_endpoint", parseEndpoint, ""); err != nil {
		return nil, err
	}
	retries, err := field.GetOr(data, "max_retries", parseInt(-1, 100), -1)
	if err != nil {
		return nil, err
	}
	c.MaxRetries = int(retries)
	return nil, logical.PutJSON(ctx, e.storage, rootKey, &c)
}

func (e *Engine) readRoot(ctx context.Context) (*logical.Response, error) {
	var c rootConfig
	ok, err := logical.GetJSON(ctx, e.storage, rootKey, &c)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("aws: config/root: %w", logical.ErrNotFound)
	}
	return &logical.Response{Data: map[string]any{
		"access_key":   c.AccessKey,
		"region":       c.Region,
		"iam_endpoint": c.IAMEndpoint,
		"sts_endpoint": c.STSEndpoint,
		"max_retries":  c.MaxRetries,
	}}, nil
}

func (e *Engine) writeLease(ctx context.Context, data map[string]any) (*logical.Response, error) {
	if err := field.CheckFields(data, "lease", "lease_max"); err != nil {
		return nil, err
	}
	var l leaseConfig
	var err error
	if l.Lease, err = field.GetOr(data, "lease", parseTTL, 0); err != nil {
		return nil, err
	}
	if l.LeaseMax, err = field.GetOr(data, "lease_max", parseTTL, 0); err != nil {
		return nil, err
	}
	if l.Lease == 0 {
		return nil, logical.Invalid("lease", "required")
	}
	if l.LeaseMax > 0 && l.Lease > l.LeaseMax {
		return nil, logical.Invalid("lease", "%d seconds exceeds lease_max (%d seconds)", seconds(l.Lease), seconds(l.LeaseMax))
	}
	return nil, logical.PutJSON(ctx, e.storage, leaseKey, &l)
}

func (e *Engine) readLease(ctx context.Context) (*logical.Response, error) {
	var l leaseConfig
	ok, err := logical.GetJSON(ctx, e.storage, leaseKey, &l)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("aws: config/lease: %w", logical.ErrNotFound)
	}
	return &logical.Response{Data: map[string]any{
		"lease":     (time.Duration(seconds(l.Lease)) * time.Second).String(),
		"lease_max": (time.Duration(seconds(l.LeaseMax)) * time.Second).String(),
	}}, nil
}

// clients are the AWS clients of config/root, and the endpoints they call
// (for error messages).
type clients struct {
	iam         *iam.Client
	sts         *sts.Client
	iamEndpoint string
	stsEndpoint string
}

// clients builds the AWS clients from config/root alone: static
// credentials, no shared config, no environment, no instance metadata.
func (e *Engine) clients(ctx context.Context) (*clients, error) {
	var c rootConfig
	ok, err := logical.GetJSON(ctx, e.storage, rootKey, &c)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNotConfigured
	}
	cfg := aws.Config{
		Region:      c.Region,
		Credentials: credentials.NewStaticCredentialsProvider(c.AccessKey, c.SecretKey, ""),
		HTTPClient:  e.httpClient,
	}
	if c.MaxRetries >= 0 {
		cfg.RetryMaxAttempts = c.MaxRetries + 1
	}
	out := &clients{
		iamEndpoint: "https://iam.amazonaws.com",
		stsEndpoint: "https://sts." + c.Region + ".amazonaws.com",
	}
	out.iam = iam.NewFromConfig(cfg, func(o *iam.Options) {
		if c.IAMEndpoint != "" {
			o.BaseEndpoint = aws.String(c.IAMEndpoint)
			out.iamEndpoint = c.IAMEndpoint
		}
	})
	out.sts = sts.NewFromConfig(cfg, func(o *sts.Options) {
		if c.STSEndpoint != "" {
			o.BaseEndpoint = aws.String(c.STSEndpoint)
			out.stsEndpoint = c.STSEndpoint
		}
	})
	return out, nil
}
