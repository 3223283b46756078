package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/secrethub/secrethub/core/client"
)

func newAWSCmd() *cobra.Command {
	var mount string
	cmd := newClientCmd("aws", "Issue AWS credentials (STS AssumeRole or IAM users)",
		`Manage the AWS engine mounted at -mount (default "aws"): the root
credentials it calls AWS with, roles (assumed_role: STS sessions of IAM
roles; iam_user: IAM users made for a lease), and credentials issued from
them with a lease. See docs/aws.md.

Mount the engine first, through the API (or the Vault CLI/client):
  PUT /v1/sys/mounts/aws  {"type": "aws"}`,
		func(cf *clientFlags) []*cobra.Command {
			p := func(parts ...string) string { return strings.Trim(mount, "/") + "/" + strings.Join(parts, "/") }
			return []*cobra.Command{awsConfigCmd(cf, p), awsRoleCmd(cf, p), awsCredsCmd(cf, p)}
		})
	cmd.PersistentFlags().StringVar(&mount, "mount", "aws", "mount path of the AWS engine")
	return cmd
}

func awsConfigCmd(cf *clientFlags, p func(...string) string) *cobra.Command {
	var accessKey, secretFile, secret, region, iamEndpoint, stsEndpoint string
	var maxRetries int
	cmd := &cobra.Command{
		Use:   "config -access-key AKIA... (-secret-key-file FILE | -secret-key -) [-region us-east-1]",
		Short: "Set the root credentials (the secret key is stored encrypted, never shown)",
		Long: `Write config/root: the access key the engine calls IAM and STS with. The
secret key is read from -secret-key-file, or from standard input with
"-secret-key -"; it is never taken from the command line. -iam-endpoint and
-sts-endpoint replace AWS's endpoints.`,
		Args: cobra.NoArgs,
		RunE: runClient(cf, func(cmd *cobra.Command, _ []string, c *client.Client) error {
			if accessKey == "" {
				return errors.New("-access-key: required")
			}
			body := map[string]any{"access_key": accessKey, "region": region, "max_retries": maxRetries}
			if iamEndpoint != "" {
				body["iam_endpoint"] = iamEndpoint
			}
			if stsEndpoint != "" {
				body["sts_endpoint"] = stsEndpoint
			}
			sk, err := readPassword(cmd.InOrStdin(), secret, secretFile)
			if err != nil {
				return fmt.Errorf("secret key: %w", err)
			}
			if sk != "" {
				body["secret_key"] = sk
			}
			if _, err := c.Write(cmd.Context(), p("config", "root"), body); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Success! Wrote the AWS root credentials.")
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&accessKey, "access-key", "", "access key id (required)")
	f.StringVar(&secretFile, "secret-key-file", "", "file holding the secret access key")
	f.StringVar(&secret, "secret-key", "", `"-" to read the secret access key from standard input (nothing else is accepted)`)
	f.StringVar(&region, "region", "us-east-1", "AWS region")
	f.StringVar(&iamEndpoint, "iam-endpoint", "", "IAM endpoint URL (default AWS's)")
	f.StringVar(&stsEndpoint, "sts-endpoint", "", "STS endpoint URL (default AWS's)")
	f.IntVar(&maxRetries, "max-retries", -1, "retries of a failed call (-1: the SDK's default)")
	return cmd
}

func awsRoleCmd(cf *clientFlags, p func(...string) string) *cobra.Command {
	var credType, policyDoc, userPath string
	var policyARNs, roleARNs []string
	var ttl, maxTTL time.Duration
	cmd := &cobra.Command{
		Use:   "role NAME -credential-type assumed_role|iam_user [-role-arns ARN,...] [-policy-document JSON|@file.json] [-policy-arns ARN,...]",
		Short: "Create or update a role: what kind of credentials it issues, with which policies",
		Long: `Write roles/NAME. assumed_role roles name the IAM roles to assume
(-role-arns) and may narrow the session with -policy-document/-policy-arns;
iam_user roles give each user -policy-document (inline) and -policy-arns
(attached). -default-sts-ttl and -max-sts-ttl bound assumed_role sessions.`,
		Args: cobra.ExactArgs(1),
		RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
			body := map[string]any{"credential_type": credType}
			if policyDoc != "" {
				doc, err := readStatements([]string{policyDoc})
				if err != nil {
					return fmt.Errorf("-policy-document: %w", err)
				}
				body["policy_document"] = doc[0]
			}
			if policyARNs != nil {
				body["policy_arns"] = policyARNs
			}
			if roleARNs != nil {
				body["role_arns"] = roleARNs
			}
			if userPath != "" {
				body["user_path"] = userPath
			}
			if ttl > 0 {
				body["default_sts_ttl"] = ttl.String()
			}
			if maxTTL > 0 {
				body["max_sts_ttl"] = maxTTL.String()
			}
			if _, err := c.Write(cmd.Context(), p("roles", args[0]), body); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Success! Wrote AWS role %s.\n", args[0])
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&credType, "credential-type", "", "assumed_role or iam_user")
	f.StringVar(&policyDoc, "policy-document", "", "IAM policy JSON, or @file.json")
	f.StringSliceVar(&policyARNs, "policy-arns", nil, "managed policy ARNs")
	f.StringSliceVar(&roleARNs, "role-arns", nil, "IAM role ARNs to assume (assumed_role)")
	f.StringVar(&userPath, "user-path", "", "IAM path of the users (iam_user; default /)")
	f.DurationVar(&ttl, "default-sts-ttl", 0, "session duration when the request gives none (assumed_role; default 1h)")
	f.DurationVar(&maxTTL, "max-sts-ttl", 0, "longest session a request may ask (assumed_role)")
	return cmd
}

func awsCredsCmd(cf *clientFlags, p func(...string) string) *cobra.Command {
	var ttl time.Duration
	var roleARN string
	cmd := &cobra.Command{
		Use:   "creds ROLE [-ttl 1h] [-role-arn ARN]",
		Short: "Issue credentials: an STS session or a new IAM user's access key, with a lease",
		Long: `Write creds/ROLE. For an assumed_role role: access_key, secret_key and
session_token of a new STS session (-ttl long; not renewable; STS sessions
cannot be revoked before they expire). For an iam_user role: access_key and
secret_key of a new IAM user, deleted when the lease ends ("secrethub lease
revoke LEASE_ID" ends it early).`,
		Args: cobra.ExactArgs(1),
		RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
			body := map[string]any{}
			if ttl > 0 {
				body["ttl"] = ttl.String()
			}
			if roleARN != "" {
				body["role_arn"] = roleARN
			}
			resp, err := c.Write(cmd.Context(), p("creds", args[0]), body)
			if err != nil {
				return err
			}
			if resp == nil {
				return errors.New("the server answered without credentials")
			}
			if cf.format != "json" && resp.LeaseID != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "lease_id         %s\nlease_duration   %ds\nlease_renewable  %v\n", resp.LeaseID, resp.LeaseDuration, resp.Renewable)
			}
			return printResponse(cmd.OutOrStdout(), cf.format, resp)
		}),
	}
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "session duration (assumed_role)")
	cmd.Flags().StringVar(&roleARN, "role-arn", "", "which of the role's role_arns to assume")
	return cmd
}
