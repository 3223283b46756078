package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/secrethub/secrethub/core/server"
)

func newServerCmd() *cobra.Command {
	var (
		configFile   string
		dev          bool
		devRootToken string
		flags        server.Config
	)
	cmd := &cobra.Command{
		Use:   "server [-dev] [-config file]",
		Short: "Run the SecretHub core",
		Long: `Run the SecretHub core server.

Configuration comes from a YAML or JSON file (-config), then environment
variables, then flags, each overriding the one before:

  listen_address     SECRETHUB_LISTEN_ADDRESS   -listen-address   (default 127.0.0.1:4000)
  tls_cert_file      SECRETHUB_TLS_CERT_FILE    -tls-cert-file
  tls_key_file       SECRETHUB_TLS_KEY_FILE     -tls-key-file
  storage.type       SECRETHUB_STORAGE_TYPE     -storage          postgres | file | inmem
  storage.database_url  DATABASE_URL                               (implies postgres)
  storage.path       SECRETHUB_STORAGE_PATH     -storage-path     bbolt file for "file"
  max_request_bytes  SECRETHUB_MAX_REQUEST_BYTES                   (default 1048576)
  log_level          SECRETHUB_LOG_LEVEL        -log-level        debug | info | warn | error
  agent_listen_address  SECRETHUB_AGENT_LISTEN_ADDRESS  -agent-listen-address  (mTLS for agents)
  agent_server_names    names agents reach the agent listener by (its certificate's SANs)

TLS is required when listening off loopback. A server on persistent storage
starts sealed: initialize it once with "secrethub sys init", then unseal it
after every start with "secrethub sys unseal".

With -dev the server keeps everything in memory, initializes and unseals
itself, prints its root token and unseal key, and listens on 127.0.0.1:4000.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg server.Config
			if configFile != "" {
				var err error
				if cfg, err = server.LoadFile(configFile); err != nil {
					return err
				}
			}
			if err := cfg.ApplyEnv(os.LookupEnv); err != nil {
				return err
			}
			f := cmd.Flags()
			for name, dst := range map[string]*string{
				"listen-address": &cfg.ListenAddress, "tls-cert-file": &cfg.TLSCertFile,
				"tls-key-file": &cfg.TLSKeyFile, "storage": &cfg.Storage.Type,
				"storage-path": &cfg.Storage.Path, "log-level": &cfg.LogLevel,
				"agent-listen-address": &cfg.AgentListenAddress,
			} {
				if f.Changed(name) {
					v, _ := f.GetString(name)
					*dst = v
				}
			}
			return server.Run(cmd.Context(), server.Options{
				Config: cfg, Dev: dev, DevRootToken: devRootToken, Stdout: cmd.OutOrStdout(),
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "configuration file (YAML or JSON)")
	f.BoolVar(&dev, "dev", false, "run an in-memory dev server, initialized and unsealed (never in production)")
	f.StringVar(&devRootToken, "dev-root-token-id", "", "in dev mode, use this root token instead of a random one")
	f.StringVar(&flags.ListenAddress, "listen-address", "", "host:port to listen on (default 127.0.0.1:4000)")
	f.StringVar(&flags.TLSCertFile, "tls-cert-file", "", "PEM certificate for the listener")
	f.StringVar(&flags.TLSKeyFile, "tls-key-file", "", "PEM private key for the listener")
	f.StringVar(&flags.Storage.Type, "storage", "", "storage backend: postgres, file or inmem")
	f.StringVar(&flags.Storage.Path, "storage-path", "", "bbolt file for file storage")
	f.StringVar(&flags.LogLevel, "log-level", "", "debug, info, warn or error (default info)")
	f.StringVar(&flags.AgentListenAddress, "agent-listen-address", "", "host:port for agents' mTLS connections (certificates from the agent CA)")
	return cmd
}
