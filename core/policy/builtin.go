package policy

import "fmt"

// DefaultPolicyDocument is the built-in default policy, which the core
// attaches to every token that is not root: a token may look itself up,
// renew and revoke itself, ask what it may do, get an agent client
// certificate for itself, and renew or look up a lease by its ID. A
// stored policy named default replaces it.
const DefaultPolicyDocument = `# The built-in default policy, attached to every token that is not root.
name: default
rules:
  - path: auth/token/lookup-self
    capabilities: [read]
  - path: auth/token/renew-self
    capabilities: [update]
  - path: auth/token/revoke-self
    capabilities: [update]
  - path: sys/capabilities-self
    capabilities: [update]
  - path: sys/policies/explain-self
    capabilities: [update]
  - path: sys/agent/certificate
    capabilities: [update]
  # As in Vault: renew a lease, or look one up, by its lease ID (which the
  # holder of the credential has); listing and revoking leases need more.
  - path: sys/leases/renew
    capabilities: [update]
  - path: sys/leases/renew/**
    capabilities: [update]
  - path: sys/renew
    capabilities: [update]
  - path: sys/renew/**
    capabilities: [update]
  - path: sys/leases/lookup
    capabilities: [update]
`

// DefaultPolicy returns the built-in default policy, parsed from
// DefaultPolicyDocument. Each call returns a new value.
func DefaultPolicy() *Policy {
	p, err := Parse(DefaultPolicyName, []byte(DefaultPolicyDocument))
	if err != nil {
		// DefaultPolicyDocument is a constant, and a test parses it.
		panic(fmt.Sprintf("policy: built-in default policy does not parse: %v", err))
	}
	return p
}

// RootPolicy returns the built-in root policy: it has no rules, and an ACL
// holding it allows everything, including sudo, whatever its other
// policies say. Only this function makes a policy root; a Policy named
// root built otherwise is an ordinary (empty) policy.
func RootPolicy() *Policy {
	return &Policy{Name: RootPolicyName, root: true}
}
