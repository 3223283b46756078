// Package version holds SecretHub's version, shared by the core and the
// agent without either importing the other.
package version

// Version is SecretHub's version.
const Version = "0.1.0-dev"
