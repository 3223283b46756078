package awssts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"

	"github.com/secrethub/secrethub/core/logical"
	"github.com/secrethub/secrethub/core/logical/field"
)

// NamePrefix starts the names of the IAM users and STS sessions this
// engine makes: secrethub-<role>-...
const NamePrefix = "secrethub-"

// PolicyName is the name of the inline policy put on an iam_user user.
const PolicyName = "secrethub-role-policy"

const lowerDigits = "abcdefghijklmnopqrstuvwxyz0123456789"

var sessionNameRE = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)

// awsError is a failed call to AWS: the service's endpoint, what the
// engine was doing, and AWS's reason. A refusal by AWS of the request
// itself (bad credentials, access denied, a malformed policy: a client
// fault) is also an InvalidRequestError, so the caller is told why (400),
// as Vault does.
type awsError struct {
	endpoint, op string
	err          error
}

func (e *awsError) Error() string {
	return fmt.Sprintf("aws at %s: %s: %v", e.endpoint, e.op, e.err)
}

func (e *awsError) Unwrap() []error {
	out := []error{ErrAWS, e.err}
	var apiErr smithy.APIError
	if errors.As(e.err, &apiErr) && apiErr.ErrorFault() != smithy.FaultServer {
		out = append(out, &logical.InvalidRequestError{Reason: e.Error()})
	}
	return out
}

func isNoSuchEntity(err error) bool {
	var nse *iamtypes.NoSuchEntityException
	var apiErr smithy.APIError
	return errors.As(err, &nse) || (errors.As(err, &apiErr) && apiErr.ErrorCode() == "NoSuchEntity")
}

func randomString(r io.Reader, n int) (string, error) {
	limit := 256 - 256%len(lowerDigits)
	out := make([]byte, 0, n)
	buf := make([]byte, 2*n)
	for len(out) < n {
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("aws: random source: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, lowerDigits[int(b)%len(lowerDigits)])
			}
		}
	}
	return string(out), nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func (e *Engine) issue(ctx context.Context, name string, stsPath bool, data map[string]any) (*logical.Response, error) {
	if err := field.CheckFields(data, "ttl", "role_arn", "role_session_name"); err != nil {
		return nil, err
	}
	r, err := e.getRole(ctx, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, logical.Invalid("role", "unknown role %q", name)
	}
	if stsPath && r.CredentialType != TypeAssumedRole {
		return nil, logical.Invalid("role", "role %q makes %s credentials; sts/ is for assumed_role roles: use creds/%s", name, r.CredentialType, name)
	}
	c, err := e.clients(ctx)
	if err != nil {
		return nil, err
	}
	if r.CredentialType == TypeAssumedRole {
		return e.assumeRole(ctx, c, name, r, data)
	}
	if err := field.CheckFields(data); err != nil {
		return nil, logical.Invalid(field.Unknown(data)[0], "only for assumed_role roles")
	}
	return e.createUser(ctx, c, name, r)
}

func (e *Engine) assumeRole(ctx context.Context, c *clients, name string, r *roleEntry, data map[string]any) (*logical.Response, error) {
	roleARN, err := field.GetOr(data, "role_arn", parseString, "")
	if err != nil {
		return nil, err
	}
	switch {
	case roleARN == "" && len(r.RoleARNs) == 1:
		roleARN = r.RoleARNs[0]
	case roleARN == "":
		return nil, logical.Invalid("role_arn", "role %q has several role_arns: name one", name)
	default:
		found := false
		for _, a := range r.RoleARNs {
			found = found || a == roleARN
		}
		if !found {
			return nil, logical.Invalid("role_arn", "%q is not one of role %q's role_arns", field.Truncate(roleARN, 128), name)
		}
	}
	ttl, err := field.GetOr(data, "ttl", parseSTSTTL, 0)
	if err != nil {
		return nil, err
	}
	if ttl == 0 {
		ttl = r.DefaultSTSTTL
	}
	if ttl == 0 {
		ttl = DefaultSTSTTL
		if r.MaxSTSTTL > 0 && ttl > r.MaxSTSTTL {
			ttl = r.MaxSTSTTL
		}
	}
	if r.MaxSTSTTL > 0 && ttl > r.MaxSTSTTL {
		return nil, logical.Invalid("ttl", "%d seconds exceeds the role's max_sts_ttl (%d seconds)", seconds(ttl), seconds(r.MaxSTSTTL))
	}
	session, err := field.GetOr(data, "role_session_name", parseString, "")
	if err != nil {
		return nil, err
	}
	if session == "" {
		suffix, err := randomString(e.rand, 16)
		if err != nil {
			return nil, err
		}
		session = NamePrefix + truncate(name, 64-len(NamePrefix)-17) + "-" + suffix
	} else if !sessionNameRE.MatchString(session) {
		return nil, logical.Invalid("role_session_name", "2 to 64 letters, digits or +=,.@_-")
	}
	in := &sts.AssumeRoleInput{
		RoleArn:         aws.String(roleARN),
		RoleSessionName: aws.String(session),
		DurationSeconds: aws.Int32(int32(seconds(ttl))),
	}
	if r.PolicyDocument != "" {
		in.Policy = aws.String(r.PolicyDocument)
	}
	for _, a := range r.PolicyARNs {
		in.PolicyArns = append(in.PolicyArns, ststypes.PolicyDescriptorType{Arn: aws.String(a)})
	}
	out, err := c.sts.AssumeRole(ctx, in)
	if err != nil {
		return nil, &awsError{endpoint: c.stsEndpoint, op: "assume role " + roleARN, err: err}
	}
	cr := out.Credentials
	if cr == nil || cr.AccessKeyId == nil || cr.SecretAccessKey == nil || cr.SessionToken == nil {
		return nil, &awsError{endpoint: c.stsEndpoint, op: "assume role " + roleARN, err: errors.New("the answer holds no credentials")}
	}
	lease := ttl
	if cr.Expiration != nil {
		if left := cr.Expiration.Sub(e.now()).Round(time.Second); left > 0 && left < lease {
			lease = left
		}
	}
	resp := map[string]any{
		"access_key":     *cr.AccessKeyId,
		"secret_key":     *cr.SecretAccessKey,
		"session_token":  *cr.SessionToken,
		"security_token": *cr.SessionToken,
		"ttl":            seconds(lease),
	}
	if out.AssumedRoleUser != nil && out.AssumedRoleUser.Arn != nil {
		resp["arn"] = *out.AssumedRoleUser.Arn
	}
	return &logical.Response{
		Data: resp,
		Secret: &logical.Secret{
			TTL:       lease,
			MaxTTL:    lease,
			Renewable: false,
			InternalData: map[string]any{
				"credential_type": TypeAssumedRole, "role": name, "role_arn": roleARN, "session_name": session,
			},
		},
	}, nil
}

func (e *Engine) createUser(ctx context.Context, c *clients, name string, r *roleEntry) (_ *logical.Response, err error) {
	var l leaseConfig
	if _, err := logical.GetJSON(ctx, e.storage, leaseKey, &l); err != nil {
		return nil, err
	}
	if l.Lease == 0 {
		l.Lease = DefaultTTL
	}
	suffix, err := randomString(e.rand, 8)
	if err != nil {
		return nil, err
	}
	user := NamePrefix + truncate(name, 24) + "-" + strconv.FormatInt(e.now().Unix(), 10) + "-" + suffix
	out, err := c.iam.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(user), Path: aws.String(r.UserPath)})
	if err != nil {
		return nil, &awsError{endpoint: c.iamEndpoint, op: "create user " + user, err: err}
	}
	defer func() {
		if err == nil {
			return
		}
		// Roll back: a credential is made whole or not at all. The
		// request's context may be done; the cleanup gets its own.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if derr := deleteUser(cctx, c, user); derr != nil {
			err = errors.Join(err, fmt.Errorf("and deleting the half-made user %s failed (delete it by hand): %w", user, derr))
		}
	}()
	if r.PolicyDocument != "" {
		if _, err := c.iam.PutUserPolicy(ctx, &iam.PutUserPolicyInput{
			UserName: aws.String(user), PolicyName: aws.String(PolicyName), PolicyDocument: aws.String(r.PolicyDocument),
		}); err != nil {
			return nil, &awsError{endpoint: c.iamEndpoint, op: "put inline policy on " + user, err: err}
		}
	}
	for _, a := range r.PolicyARNs {
		if _, err := c.iam.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: aws.String(user), PolicyArn: aws.String(a)}); err != nil {
			return nil, &awsError{endpoint: c.iamEndpoint, op: "attach " + a + " to " + user, err: err}
		}
	}
	key, err := c.iam.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(user)})
	if err != nil {
		return nil, &awsError{endpoint: c.iamEndpoint, op: "create access key of " + user, err: err}
	}
	if key.AccessKey == nil || key.AccessKey.AccessKeyId == nil || key.AccessKey.SecretAccessKey == nil {
		return nil, &awsError{endpoint: c.iamEndpoint, op: "create access key of " + user, err: errors.New("the answer holds no key")}
	}
	data := map[string]any{
		"access_key":     *key.AccessKey.AccessKeyId,
		"secret_key":     *key.AccessKey.SecretAccessKey,
		"session_token":  nil,
		"security_token": nil,
		"username":       user,
	}
	if out.User != nil && out.User.Arn != nil {
		data["arn"] = *out.User.Arn
	}
	return &logical.Response{
		Data: data,
		Secret: &logical.Secret{
			TTL:          l.Lease,
			MaxTTL:       l.LeaseMax,
			Renewable:    true,
			InternalData: map[string]any{"credential_type": TypeIAMUser, "role": name, "username": user},
		},
	}, nil
}

// deleteUser deletes an IAM user and what hangs on it: access keys,
// inline and attached policies, group memberships. A user (or part)
// already gone is not an error.
func deleteUser(ctx context.Context, c *clients, user string) error {
	u := aws.String(user)
	wrap := func(op string, err error) error {
		return &awsError{endpoint: c.iamEndpoint, op: op + " of " + user, err: err}
	}
	keys := iam.NewListAccessKeysPaginator(c.iam, &iam.ListAccessKeysInput{UserName: u})
	for keys.HasMorePages() {
		page, err := keys.NextPage(ctx)
		if isNoSuchEntity(err) {
			return nil
		}
		if err != nil {
			return wrap("list access keys", err)
		}
		for _, k := range page.AccessKeyMetadata {
			if _, err := c.iam.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: u, AccessKeyId: k.AccessKeyId}); err != nil && !isNoSuchEntity(err) {
				return wrap("delete access key", err)
			}
		}
	}
	inline := iam.NewListUserPoliciesPaginator(c.iam, &iam.ListUserPoliciesInput{UserName: u})
	for inline.HasMorePages() {
		page, err := inline.NextPage(ctx)
		if isNoSuchEntity(err) {
			return nil
		}
		if err != nil {
			return wrap("list inline policies", err)
		}
		for _, p := range page.PolicyNames {
			if _, err := c.iam.DeleteUserPolicy(ctx, &iam.DeleteUserPolicyInput{UserName: u, PolicyName: aws.String(p)}); err != nil && !isNoSuchEntity(err) {
				return wrap("delete inline policy", err)
			}
		}
	}
	attached := iam.NewListAttachedUserPoliciesPaginator(c.iam, &iam.ListAttachedUserPoliciesInput{UserName: u})
	for attached.HasMorePages() {
		page, err := attached.NextPage(ctx)
		if isNoSuchEntity(err) {
			return nil
		}
		if err != nil {
			return wrap("list attached policies", err)
		}
		for _, p := range page.AttachedPolicies {
			if _, err := c.iam.DetachUserPolicy(ctx, &iam.DetachUserPolicyInput{UserName: u, PolicyArn: p.PolicyArn}); err != nil && !isNoSuchEntity(err) {
				return wrap("detach policy", err)
			}
		}
	}
	groups := iam.NewListGroupsForUserPaginator(c.iam, &iam.ListGroupsForUserInput{UserName: u})
	for groups.HasMorePages() {
		page, err := groups.NextPage(ctx)
		if isNoSuchEntity(err) {
			return nil
		}
		if err != nil {
			return wrap("list groups", err)
		}
		for _, g := range page.Groups {
			if _, err := c.iam.RemoveUserFromGroup(ctx, &iam.RemoveUserFromGroupInput{UserName: u, GroupName: g.GroupName}); err != nil && !isNoSuchEntity(err) {
				return wrap("remove from group", err)
			}
		}
	}
	if _, err := c.iam.DeleteUser(ctx, &iam.DeleteUserInput{UserName: u}); err != nil && !isNoSuchEntity(err) {
		return wrap("delete user", err)
	}
	return nil
}

func leaseInfo(l *logical.SecretLease) (typ, user string, err error) {
	if l == nil {
		return "", "", errors.New("aws: nil lease")
	}
	typ, _ = l.InternalData["credential_type"].(string)
	user, _ = l.InternalData["username"].(string)
	switch {
	case typ == TypeAssumedRole:
		return typ, "", nil
	case typ == TypeIAMUser && strings.HasPrefix(user, NamePrefix):
		return typ, user, nil
	}
	return "", "", fmt.Errorf("aws: lease %s holds no credential of this engine", l.LeaseID)
}

// RevokeSecret deletes an iam_user credential's user (keys, policies,
// then the user); a user already gone counts as revoked. STS credentials
// cannot be revoked before they expire: for them it does nothing, as in
// Vault.
func (e *Engine) RevokeSecret(ctx context.Context, l *logical.SecretLease) error {
	typ, user, err := leaseInfo(l)
	if err != nil || typ == TypeAssumedRole {
		return err
	}
	c, err := e.clients(ctx)
	if err != nil {
		return err
	}
	return deleteUser(ctx, c, user)
}

// RenewSecret extends an iam_user lease, which needs nothing from AWS:
// the user's access key does not expire. STS sessions are not renewable.
func (e *Engine) RenewSecret(_ context.Context, l *logical.SecretLease) error {
	typ, _, err := leaseInfo(l)
	if err == nil && typ == TypeAssumedRole {
		err = errors.New("aws: STS credentials cannot be renewed; ask for new ones")
	}
	return err
}
