package wire

// The agent protocol: JSON text messages over one WebSocket per agent at
// /v1/agent/connect on the core's mTLS agent listener. docs/agent-protocol.md
// describes it; these are its messages.

// AgentSubprotocol is the WebSocket subprotocol (Sec-WebSocket-Protocol)
// of this version of the agent protocol. A core refuses an upgrade that
// does not offer it.
const AgentSubprotocol = "secrethub.agent.v1"

// AgentConnectPath is the URL path of the agent WebSocket.
const AgentConnectPath = "/v1/agent/connect"

// Message types sent by the agent.
const (
	// AgentHello is the agent's first message: who it is and how often it
	// pings. The core answers AgentWelcome.
	AgentHello = "hello"
	// AgentRead reads a secret (Path) like GET /v1/<path>, authorized
	// against the agent's policies, and watches it: the core answers
	// AgentSecret (or AgentError) and, until the connection ends or
	// AgentUnwatch, pushes AgentChanged when the path is written.
	AgentRead = "read"
	// AgentUnwatch stops pushes for Path. Answered by AgentOK.
	AgentUnwatch = "unwatch"
	// AgentRenewToken renews the token the agent's certificate names, by
	// Increment seconds (0: the token's default). Answered by AgentToken.
	AgentRenewToken = "renew_token"
	// AgentRenewLease renews the lease LeaseID (a dynamic credential the
	// agent read) by Increment seconds (0: the lease's TTL), through
	// sys/leases/renew. Answered by AgentLease.
	AgentRenewLease = "renew_lease"
	// AgentRevokeLease revokes the lease LeaseID through
	// sys/leases/revoke. Answered by AgentOK.
	AgentRevokeLease = "revoke_lease"
)

// Message types sent by the core.
const (
	// AgentWelcome answers AgentHello.
	AgentWelcome = "welcome"
	// AgentSecret answers AgentRead with the same Response body a REST
	// read returns.
	AgentSecret = "secret"
	// AgentOK answers a request that returns nothing.
	AgentOK = "ok"
	// AgentToken answers AgentRenewToken.
	AgentToken = "token"
	// AgentLease answers AgentRenewLease.
	AgentLease = "lease"
	// AgentError answers a request that failed (ID set) or tells why the
	// core is about to close the connection (ID empty).
	AgentError = "error"
	// AgentChanged is pushed, without an ID, when a watched path was
	// written or deleted. The agent reads it again to get the new value.
	AgentChanged = "changed"
)

// AgentMessage is every message of the agent protocol, in both
// directions. Type says which fields are meaningful.
type AgentMessage struct {
	// Type is one of the Agent* message types.
	Type string `json:"type"`
	// ID is chosen by the agent for each request and echoed in the core's
	// answer. Pushes and connection errors carry none.
	ID string `json:"id,omitempty"`
	// Path is an API path below /v1/, like "secrets/app/db" (read,
	// unwatch, secret, error, changed).
	Path string `json:"path,omitempty"`

	// Hello: the agent's name, its version and its heartbeat interval in
	// seconds (the core closes a connection silent for 2× that).
	Name             string `json:"name,omitempty"`
	Version          string `json:"version,omitempty"`
	HeartbeatSeconds int    `json:"heartbeat_seconds,omitempty"`

	// Welcome: the connection's id in sys/agents, the identity the core
	// takes the agent for, and its token's remaining time to live (also
	// answered by token).
	AgentID         string `json:"agent_id,omitempty"`
	Identity        string `json:"identity,omitempty"`
	TokenTTLSeconds int64  `json:"token_ttl_seconds,omitempty"`
	TokenRenewable  bool   `json:"token_renewable,omitempty"`

	// Renew token or lease: the increment asked for, in seconds.
	Increment int64 `json:"increment,omitempty"`

	// Renew or revoke lease, and lease: the lease, its remaining duration
	// in seconds after the renewal, and whether it may be renewed again.
	LeaseID              string `json:"lease_id,omitempty"`
	LeaseDurationSeconds int64  `json:"lease_duration,omitempty"`
	LeaseRenewable       bool   `json:"lease_renewable,omitempty"`

	// Secret: the REST read's body.
	Response *Response `json:"response,omitempty"`

	// Changed: the operation that changed the path ("write" or "delete")
	// and, when the engine reports one, the new version.
	Operation  string `json:"operation,omitempty"`
	NewVersion int64  `json:"new_version,omitempty"`

	// Error: the HTTP status the same REST request would have had, and the
	// message (never a secret value).
	Code  int    `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
}

// AgentInfo is one connected agent in sys/agents.
type AgentInfo struct {
	ID             string   `json:"id"`
	Name           string   `json:"name"`
	Identity       string   `json:"identity"`
	Address        string   `json:"address"`
	Version        string   `json:"version"`
	ConnectedSince string   `json:"connected_since"`
	LastHeartbeat  string   `json:"last_heartbeat"`
	Watched        []string `json:"watched"`
}
