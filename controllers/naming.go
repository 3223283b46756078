package controllers

import (
	"crypto/sha256"
	"encoding/hex"
)

// MaxCoreNameLen is the longest name the operator gives an object in the
// core. It is the tightest of the core's limits it names objects under
// (Redis and AWS role names and mount path segments: 64; policy, database
// and auth role names: 128).
const MaxCoreNameLen = 64

// CorePrefix starts every core name the operator makes, so that an
// operator-managed policy or role is recognisable beside hand-made ones.
const CorePrefix = "k8s_"

// CoreName is the name of the core object for the custom resource
// name in namespace: "k8s_<namespace>_<name>".
//
// Kubernetes namespaces are DNS labels and resource names DNS subdomains:
// neither can contain '_', so the first '_' after the prefix separates the
// namespace from the name and two (namespace, name) pairs never share a
// core name. Every character of either is one the core accepts in policy,
// role and config names (a-z, 0-9, '-', '.'). A name longer than
// MaxCoreNameLen keeps its first characters and ends with '-' and 16 hex
// digits of the SHA-256 of "<namespace>/<name>", which keeps it unique.
func CoreName(namespace, name string) string {
	return shorten(CorePrefix+namespace+"_"+name, namespace+"/"+name)
}

// Segment is name made fit for one mount path segment or an engine role
// name (at most MaxCoreNameLen characters): itself when short enough, else
// shortened as CoreName does.
func Segment(namespace, name string) string {
	return shorten(name, namespace+"/"+name)
}

func shorten(s, key string) string {
	if len(s) <= MaxCoreNameLen {
		return s
	}
	sum := sha256.Sum256([]byte(key))
	h := hex.EncodeToString(sum[:8])
	return s[:MaxCoreNameLen-len(h)-1] + "-" + h
}
