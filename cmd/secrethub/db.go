package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/secrethub/secrethub/core/client"
)

func newDBCmd() *cobra.Command {
	var mount string
	cmd := newClientCmd("db", "Issue database credentials (PostgreSQL)",
		`Manage the database engine mounted at -mount (default "database"): connection
configs that log in to a PostgreSQL server as an admin user, roles whose SQL
creates short-lived login roles, and credentials issued from them with a
lease (renewed or revoked with "secrethub lease"). Paths and bodies follow
Vault's database secrets engine; see docs/database.md.

Mount the engine first, through the API (or the Vault CLI/client):
  PUT /v1/sys/mounts/database  {"type": "database"}`,
		func(cf *clientFlags) []*cobra.Command {
			p := func(parts ...string) string { return strings.Trim(mount, "/") + "/" + strings.Join(parts, "/") }
			return []*cobra.Command{dbConfigCmd(cf, p), dbRoleCmd(cf, p), dbCredsCmd(cf, p), dbRotateRootCmd(cf, p)}
		})
	cmd.PersistentFlags().StringVar(&mount, "mount", "database", "mount path of the database engine")
	return cmd
}

func dbConfigCmd(cf *clientFlags, p func(...string) string) *cobra.Command {
	var connURL, username, passwordFile, password, plugin string
	var allowed []string
	var verify bool
	var maxOpen int
	cmd := &cobra.Command{
		Use:   "config NAME -connection-url URL -username USER (-password-file FILE | -password -)",
		Short: "Create or update a connection config (the admin password is stored encrypted, never shown)",
		Long: `Write config/NAME: how the engine logs in to a PostgreSQL server.

The connection URL names the server and database, with {{username}} and
{{password}} where the admin user and password go, for example
  postgresql://{{username}}:{{password}}@db.internal:5432/app?sslmode=verify-full
The password is read from -password-file, or from standard input with
"-password -"; it is never taken from the command line. With -verify (the
default) the server connects and pings before it stores the config.
Only the roles in -allowed-roles (or "*" for all) may use the config.`,
		Args: cobra.ExactArgs(1),
		RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
			body := map[string]any{"plugin_name": plugin, "verify_connection": verify}
			if connURL != "" {
				body["connection_url"] = connURL
			}
			if username != "" {
				body["username"] = username
			}
			if allowed != nil {
				body["allowed_roles"] = allowed
			}
			if maxOpen > 0 {
				body["max_open_connections"] = maxOpen
			}
			pw, err := readPassword(cmd.InOrStdin(), password, passwordFile)
			if err != nil {
				return err
			}
			if pw != "" {
				body["password"] = pw
			}
			if _, err := c.Write(cmd.Context(), p("config", args[0]), body); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Success! Wrote database config %s.\n", args[0])
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&plugin, "plugin-name", "postgresql-database-plugin", "database plugin (only PostgreSQL)")
	f.StringVar(&connURL, "connection-url", "", "server URL with {{username}} and {{password}} placeholders")
	f.StringVar(&username, "username", "", "admin user the engine logs in as")
	f.StringVar(&passwordFile, "password-file", "", "file holding the admin password")
	f.StringVar(&password, "password", "", `"-" to read the admin password from standard input (nothing else is accepted)`)
	f.StringSliceVar(&allowed, "allowed-roles", nil, `roles that may use this config ("*" for all)`)
	f.BoolVar(&verify, "verify", true, "connect and ping before storing")
	f.IntVar(&maxOpen, "max-open-connections", 0, "pool size (default 4)")
	return cmd
}

// readPassword reads a password from a file, or stdin when flag is "-".
// A password on the command line is refused: it would be in the shell
// history and the process list.
func readPassword(stdin io.Reader, flag, file string) (string, error) {
	var b []byte
	var err error
	switch {
	case flag != "" && flag != "-":
		return "", errors.New(`-password: only "-" (read standard input) is accepted; use -password-file or "-password -"`)
	case flag == "-" && file != "":
		return "", errors.New("-password - and -password-file: give one")
	case flag == "-":
		b, err = io.ReadAll(io.LimitReader(stdin, 4096))
	case file != "":
		b, err = os.ReadFile(file)
	default:
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the password: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

func dbRoleCmd(cf *clientFlags, p func(...string) string) *cobra.Command {
	var dbName string
	var creation, revocation, renew, rollback []string
	var ttl, maxTTL time.Duration
	cmd := &cobra.Command{
		Use:   "role NAME -db-name CONFIG [-creation-statements SQL|@file.sql] [-default-ttl 1h] [-max-ttl 24h]",
		Short: "Create or update a role: the SQL that makes its credentials",
		Long: `Write roles/NAME. Statements are SQL templates with {{name}}, {{password}}
and {{expiration}}; give them inline or as @file.sql (a file may hold several
statements separated by ";"). Without -creation-statements the engine runs
  CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';
Without -revocation-statements it disables the login, ends the role's
sessions, reassigns what it owns to the admin user, and drops it.`,
		Args: cobra.ExactArgs(1),
		RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
			if dbName == "" {
				return errors.New("-db-name: required")
			}
			body := map[string]any{"db_name": dbName}
			for field, v := range map[string][]string{
				"creation_statements": creation, "revocation_statements": revocation,
				"renew_statements": renew, "rollback_statements": rollback,
			} {
				if len(v) == 0 {
					continue
				}
				stmts, err := readStatements(v)
				if err != nil {
					return fmt.Errorf("-%s: %w", strings.ReplaceAll(field, "_", "-"), err)
				}
				body[field] = stmts
			}
			if ttl > 0 {
				body["default_ttl"] = ttl.String()
			}
			if maxTTL > 0 {
				body["max_ttl"] = maxTTL.String()
			}
			if _, err := c.Write(cmd.Context(), p("roles", args[0]), body); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Success! Wrote database role %s.\n", args[0])
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&dbName, "db-name", "", "the connection config this role uses (required)")
	f.StringArrayVar(&creation, "creation-statements", nil, "SQL, or @file.sql; repeatable")
	f.StringArrayVar(&revocation, "revocation-statements", nil, "SQL, or @file.sql; repeatable")
	f.StringArrayVar(&renew, "renew-statements", nil, "SQL, or @file.sql; repeatable")
	f.StringArrayVar(&rollback, "rollback-statements", nil, "SQL run when creation fails; repeatable")
	f.DurationVar(&ttl, "default-ttl", 0, "lease of each credential (default: the engine's, 1h)")
	f.DurationVar(&maxTTL, "max-ttl", 0, "longest a credential may be renewed to (default: the engine's, 24h)")
	return cmd
}

// readStatements reads @file arguments.
func readStatements(args []string) ([]string, error) {
	out := make([]string, 0, len(args))
	for _, a := range args {
		if name, ok := strings.CutPrefix(a, "@"); ok {
			b, err := os.ReadFile(name)
			if err != nil {
				return nil, err
			}
			a = string(b)
		}
		out = append(out, a)
	}
	return out, nil
}

func dbCredsCmd(cf *clientFlags, p func(...string) string) *cobra.Command {
	return &cobra.Command{
		Use:   "creds ROLE",
		Short: "Issue a credential: a new database user and password, with a lease",
		Long: `Read creds/ROLE: the engine creates a database user for the role and returns
its username and password (shown once, never stored) with a lease id. Renew
or revoke the lease with "secrethub lease renew|revoke LEASE_ID"; the user is
dropped when the lease ends.`,
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

func dbRotateRootCmd(cf *clientFlags, p func(...string) string) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate-root NAME",
		Short: "Give a config's admin user a new password that only SecretHub knows",
		Long: `Write rotate-root/NAME: the engine generates a password, sets it on the
server for the config's admin user (ALTER ROLE ... PASSWORD), stores it and
reconnects. Nobody else learns it; the old password stops working.`,
		Args: cobra.ExactArgs(1),
		RunE: runClient(cf, func(cmd *cobra.Command, args []string, c *client.Client) error {
			if _, err := c.Write(cmd.Context(), p("rotate-root", args[0]), map[string]any{}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Success! Rotated the admin password of database config %s.\n", args[0])
			return nil
		}),
	}
}
