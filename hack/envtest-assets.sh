#!/usr/bin/env bash
# envtest-assets.sh provides the control plane that controller-runtime's
# envtest starts in tests: a kube-apiserver and an etcd binary in one
# directory, the layout KUBEBUILDER_ASSETS points at.
#
# The usual download of prebuilt envtest binaries cannot work here, so both
# are built from the Go module proxy (see docs/decisions/0009-envtest-assets.md):
#
#   kube-apiserver  a throwaway wrapper module in a temporary directory
#                   requires k8s.io/kubernetes vKUBE_VERSION and replaces every
#                   k8s.io/* staging module that Kubernetes' own go.mod points
#                   at ./staging with the published v0.MINOR.PATCH release;
#                   then `go build k8s.io/kubernetes/cmd/kube-apiserver`.
#   etcd            a wrapper module requiring go.etcd.io/etcd/server/v3
#                   vETCD_VERSION; then `go build go.etcd.io/etcd/server/v3`.
#
# Both land in ENVTEST_ASSETS_DIR (default
# ${XDG_CACHE_HOME:-$HOME/.cache}/secrethub/envtest-KUBE_VERSION), outside the
# clone, so only the first run on a machine pays the build (about 25 minutes
# on two busy cores, a few hundred MB of module downloads). A binary is built under a temporary name and
# renamed into place, so an interrupted build never leaves a broken one. A
# binary that is present and answers --version with the wanted version is
# kept: a second run does nothing and needs no network.
#
# Environment: KUBE_VERSION (default 1.37.2), ETCD_VERSION (default 3.7.3),
# ENVTEST_ASSETS_DIR. The last line printed is the assets directory, to be
# exported as KUBEBUILDER_ASSETS.
set -euo pipefail

kube_version=${KUBE_VERSION:-1.37.2}
kube_version=${kube_version#v}
etcd_version=${ETCD_VERSION:-3.7.3}
etcd_version=${etcd_version#v}
assets=${ENVTEST_ASSETS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/secrethub/envtest-$kube_version}

IFS=. read -r kube_major kube_minor kube_patch <<<"$kube_version"
if [[ -z $kube_major || -z $kube_minor || -z $kube_patch ]]; then
	echo "envtest-assets: KUBE_VERSION must be MAJOR.MINOR.PATCH, got $kube_version" >&2
	exit 2
fi
# The staging modules (k8s.io/api, k8s.io/apiserver, ...) are published as
# v0.MINOR.PATCH for Kubernetes v1.MINOR.PATCH.
staging_version=v0.$kube_minor.$kube_patch

log() { echo "envtest-assets: $*" >&2; }

# have NAME WANT: the binary is present, runs, and its --version output
# contains WANT.
have() {
	local bin=$assets/$1 out
	[[ -x $bin ]] || return 1
	out=$("$bin" --version 2>&1) || return 1
	[[ $out == *"$2"* ]]
}

kube_ok() { have kube-apiserver "Kubernetes v$kube_version"; }
etcd_ok() { have etcd "etcd Version: $etcd_version"; }

if kube_ok && etcd_ok; then
	echo "$assets"
	exit 0
fi

command -v go >/dev/null || { log "go is not on PATH"; exit 1; }
mkdir -p "$assets"
work=$(mktemp -d "${TMPDIR:-/tmp}/secrethub-envtest.XXXXXX")
cleanup() { rm -rf "$work"; rm -f "$assets"/.*.tmp."$$"; }
trap cleanup EXIT

# The wrapper modules resolve their requirements themselves (-mod=mod), use
# this Go toolchain only, and ignore any go.work around the caller.
export GOFLAGS=-mod=mod GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0

# build_into NAME DIR PKG [go build flags...]: builds PKG inside the wrapper
# module DIR and renames the result into the assets directory.
build_into() {
	local name=$1 dir=$2 pkg=$3 tmp
	shift 3
	tmp=$assets/.$name.tmp.$$
	log "building $name ($pkg) ..."
	local start=$SECONDS
	(cd "$dir" && go build -trimpath "$@" -o "$tmp" "$pkg")
	mv -f "$tmp" "$assets/$name"
	log "built $name in $((SECONDS - start))s"
}

if ! kube_ok; then
	mod=$work/kube-apiserver
	mkdir -p "$mod"
	log "resolving k8s.io/kubernetes v$kube_version"
	gomod=$(cd "$mod" && go mod download -json "k8s.io/kubernetes@v$kube_version" |
		sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
	[[ -f $gomod ]] || { log "could not download k8s.io/kubernetes v$kube_version's go.mod"; exit 1; }
	# Every `k8s.io/x => ./staging/src/k8s.io/x` of Kubernetes' go.mod
	# becomes `k8s.io/x => k8s.io/x v0.MINOR.PATCH`.
	mapfile -t staging < <(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p' "$gomod")
	[[ ${#staging[@]} -gt 0 ]] || { log "no staging replaces found in $gomod"; exit 1; }
	go_line=$(grep -m1 '^go ' "$gomod")
	godebug_line=$(grep -m1 '^godebug ' "$gomod" || true)
	{
		echo "module secrethub.local/envtest-kube-apiserver"
		echo
		echo "$go_line"
		[[ -n $godebug_line ]] && echo "$godebug_line"
		echo
		echo "require k8s.io/kubernetes v$kube_version"
		echo
		echo "replace ("
		for m in "${staging[@]}"; do
			echo "	$m => $m $staging_version"
		done
		echo ")"
	} >"$mod/go.mod"
	log "${#staging[@]} staging modules replaced with $staging_version"
	# The version that kube-apiserver --version and /version report, set the
	# way Kubernetes' own build (hack/lib/version.sh) sets it.
	ldflags="-s -w"
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X $pkg.gitVersion=v$kube_version -X $pkg.gitMajor=$kube_major"
		ldflags+=" -X $pkg.gitMinor=$kube_minor -X $pkg.gitTreeState=clean"
	done
	build_into kube-apiserver "$mod" k8s.io/kubernetes/cmd/kube-apiserver -ldflags "$ldflags"
	kube_ok || { log "the built kube-apiserver does not report v$kube_version"; exit 1; }
fi

if ! etcd_ok; then
	mod=$work/etcd
	mkdir -p "$mod"
	cat >"$mod/go.mod" <<-EOF
		module secrethub.local/envtest-etcd

		go 1.26.0

		require go.etcd.io/etcd/server/v3 v$etcd_version
	EOF
	build_into etcd "$mod" go.etcd.io/etcd/server/v3 -ldflags "-s -w"
	etcd_ok || { log "the built etcd does not report $etcd_version"; exit 1; }
fi

du -sh "$assets" >&2
echo "$assets"
