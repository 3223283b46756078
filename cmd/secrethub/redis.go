package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/secrethub/secrethub/core/client"
)

func newRedisCmd() *cobra.Command {
	var mount string
	cmd := newClientCmd("redis", "Issue Redis credentials (ACL users)",
		`Manage the Redis engine mounted at -mount (default "redis"): its connection
to a Redis server as an admin user, roles (key patterns, channel patterns,
commands and categories), and credentials issued from them: ACL users with
a lease (renewed or revoked with "secrethub lease"), deleted when the lease
ends. See docs/redis.md.

Mount the engine first, through the API (or the Vault CLI/client):
  PUT /v1/sys/mounts/redis  {"type": "redis"}`,
		func(cf *clientFlags) []*cobra.Command {
			p := func(parts ...string) string { return strings.Trim(mount, "/") + "/" + strings.Join(parts, "/") }
			return []*cobra.Command{redisConfigCmd(cf, p), redisRoleCmd(cf, p), redisCredsCmd(cf, p)}
		})
	cmd.PersistentFlags().StringVar(&mount, "mount", "redis", "mount path of the Redis engine")
	return cmd
}

func redisConfigCmd(cf *clientFlags, p func(...string) string) *cobra.Command {
	var address, username, passwordFile, password, caFile string
	var tls, insecureTLS, verify bool
	cmd := &cobra.Command{
		Use:   "config -address HOST:PORT [-username USER] [-password-file FILE | -password -] [-tls]",
		Short: "Set the connection to Redis (the admin password is stored encrypted, never shown)",
		Long: `Write config: the Redis server and the admin user the engine connects as
(it needs the acl command). The password is read from -password-file, or
from standard input with "-password -"; it is never taken from the command
line. Without a password, a rewrite keeps the stored one. With -verify (the
default) the server pings Redis before it stores the config.`,
		Args: cobra.NoArgs,
		RunE: runClient(cf, func(cmd *cobra.Command, _ []string, c *client.Client) error {
			body := map[string]any{"address": address, "tls": tls, "insecure_tls": insecureTLS, "verify_connection": verify}
			if username != "" {
				body["username"] = username
			}
			if caFile != "" {
				pem, err := readStatements([]string{"@" + caFile})
				if err != nil {
					return fmt.Errorf("-ca-cert: %w", err)
				}
				body["ca_cert"] = pem[0]
			}
			pw, err := readPassword(cmd.InOrStdin(), password, passwordFile)
			if err != nil {
				return err
			}
			if pw != "" {
				body["password"] = pw
			}
			if _, err := c.Write(cmd.Context(), p("config"), body); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Success! Wrote the Redis connection.")
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&address, "address", "127.0.0.1:6379", "Redis server, host:port")
	f.StringVar(&username, "username", "", "admin user the engine connects as (default: Redis's default user)")
	f.StringVar(&passwordFile, "password-file", "", "file holding the admin password")
	f.StringVar(&password, "password", "", `"-" to read the admin password from standard input (nothing else is accepted)`)
	f.BoolVar(&tls, "tls", false, "connect with TLS")
	f.BoolVar(&insecureTLS, "insecure-tls", false, "with -tls, do not verify the server's certificate")
	f.StringVar(&caFile, "ca-cert", "", "PEM file of the CA that signed the server's certificate (with -tls)")
	f.BoolVar(&verify, "verify", true, "ping Redis before storing")
	return cmd
}

func redisRoleCmd(cf *clientFlags, p func(...string) string) *cobra.Command {
	var keys, channels, commands []string
	var ttl, maxTTL time.Duration
	cmd := &cobra.Command{
		Use:   "role NAME -commands +@read,-@dangerous [-keys 'app:*'] [-channels 'events:*'] [-default-ttl 1h] [-max-ttl 24h]",
		Short: "Create or update a role: what its users may do",
		Long: `Write roles/NAME. -keys are key glob patterns (app:* means ~app:*; %R~ and
%W~ prefixes give read-only or write-only access), -channels pub/sub channel
patterns, -commands ACL command rules: +@category, -@category, +command,
-command. Users start from nothing: they get only what the role lists.`,
		Args: cobra.ExactArgs(1),
		RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
			body := map[string]any{"key_patterns": keys, "channel_patterns": channels, "commands": commands}
			if ttl > 0 {
				body["default_ttl"] = ttl.String()
			}
			if maxTTL > 0 {
				body["max_ttl"] = maxTTL.String()
			}
			if _, err := c.Write(cmd.Context(), p("roles", args[0]), body); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Success! Wrote Redis role %s.\n", args[0])
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringSliceVar(&keys, "keys", nil, "key patterns; repeatable or comma-separated")
	f.StringSliceVar(&channels, "channels", nil, "pub/sub channel patterns; repeatable or comma-separated")
	f.StringSliceVar(&commands, "commands", nil, "command rules (+@read, -@dangerous, +get); repeatable or comma-separated")
	f.DurationVar(&ttl, "default-ttl", 0, "lease of each credential (default: the engine's, 1h)")
	f.DurationVar(&maxTTL, "max-ttl", 0, "longest a credential may be renewed to (default: the core's)")
	return cmd
}

func redisCredsCmd(cf *clientFlags, p func(...string) string) *cobra.Command {
	return &cobra.Command{
		Use:   "creds ROLE",
		Short: "Issue a credential: a new Redis user and password, with a lease",
		Long: `Read creds/ROLE: the engine creates a Redis ACL user for the role and returns
its username and password (shown once, never stored) with a lease id. Renew
or revoke the lease with "secrethub lease renew|revoke LEASE_ID"; the user is
deleted, and its connections closed, when the lease ends.`,
		Args: cobra.ExactArgs(1),
		RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
			resp, err := c.Read(cmd.Context(), p("creds", args[0]), nil)
			if err != nil {
				return err
			}
			if cf.format != "json" && resp.LeaseID != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "lease_id         %s\nlease_duration   %ds\nlease_renewable  %v\n", resp.LeaseID, resp.LeaseDuration, resp.Renewable)
			}
			return printResponse(cmd.OutOrStdout(), cf.format, resp)
		}),
	}
}
