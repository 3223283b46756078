package kubernetes

import (
	"context"
	"errors"
	"fmt"

	authv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	"k8s.io/client-go/rest"
)

// userAgent names the engine to the API server.
const userAgent = "secrethub-kubernetes-auth"

// review asks the API server of cfg whether jwt is valid, for audience
// when it is not empty. A *LoginError means the token was refused in a
// way that is the caller's; an *UpstreamError that the review could not
// be done.
func (e *Engine) review(ctx context.Context, cfg *configEntry, jwt, audience string) (*authv1.TokenReviewStatus, error) {
	upstream := func(format string, args ...any) error {
		return &UpstreamError{Host: cfg.Host, Reason: fmt.Sprintf(format, args...)}
	}
	ca, bearer := cfg.CACert, cfg.TokenReviewerJWT
	if !cfg.DisableLocalCAJWT {
		// Read at each login: a projected token is rotated by the kubelet.
		var err error
		if ca == "" {
			if ca, err = readLocal(e.localCA); err != nil {
				return nil, upstream("read the local CA certificate %s: %v", e.localCA, err)
			}
		}
		if bearer == "" {
			if bearer, err = readLocal(e.localToken); err != nil {
				return nil, upstream("read the local service account token %s: %v", e.localToken, err)
			}
		}
	}
	selfReview := bearer == ""
	if selfReview {
		// As Vault does: without a reviewer token, the login's own token
		// authenticates the review (its service account then needs
		// system:auth-delegator).
		bearer = jwt
	}
	rc := &rest.Config{
		Host:            cfg.Host,
		BearerToken:     bearer,
		Timeout:         e.timeout,
		QPS:             -1, // no client-side throttling: the rate limits are the engine's
		UserAgent:       userAgent,
		WarningHandler:  rest.NoWarnings{},
		TLSClientConfig: rest.TLSClientConfig{CAData: []byte(ca)},
	}
	client, err := authclient.NewForConfig(rc)
	if err != nil {
		return nil, upstream("client: %v", err)
	}
	tr := &authv1.TokenReview{Spec: authv1.TokenReviewSpec{Token: jwt}}
	if audience != "" {
		tr.Spec.Audiences = []string{audience}
	}
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	out, err := client.TokenReviews().Create(ctx, tr, metav1.CreateOptions{})
	var status apierrors.APIStatus
	switch {
	case err == nil:
		return &out.Status, nil
	case selfReview && apierrors.IsUnauthorized(err):
		// The login token, used as the bearer, is not valid at all.
		return nil, &LoginError{Reason: "the API server refused the token (401 Unauthorized)"}
	case apierrors.IsUnauthorized(err):
		return nil, upstream("the API server refused token_reviewer_jwt (401 Unauthorized): it is invalid or expired; write a fresh one to config")
	case selfReview && apierrors.IsForbidden(err):
		return nil, upstream("no token_reviewer_jwt is configured, so the login's own token made the review, and its service account may not create tokenreviews (403 Forbidden): set token_reviewer_jwt, or bind the service account to ClusterRole system:auth-delegator: %s",
			statusMessage(err))
	case apierrors.IsForbidden(err):
		return nil, upstream("the reviewer may not create tokenreviews (403 Forbidden): bind the service account of token_reviewer_jwt to ClusterRole system:auth-delegator: %s",
			statusMessage(err))
	case errors.As(err, &status):
		return nil, upstream("the API server answered %d: %s", status.Status().Code, statusMessage(err))
	case ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded):
		return nil, upstream("no answer within %s", e.timeout)
	}
	return nil, upstream("%v", err)
}

// statusMessage is the message of an API error, bounded.
func statusMessage(err error) string {
	msg := err.Error()
	var status apierrors.APIStatus
	if errors.As(err, &status) && status.Status().Message != "" {
		msg = status.Status().Message
	}
	if len(msg) > 512 {
		msg = msg[:512]
	}
	return msg
}
