#!/usr/bin/env bash
# test-services.sh makes sure the services the tests need are up before they
# run: PostgreSQL, Redis, and moto_server (the AWS stand-in).
#
# PostgreSQL at SECRETHUB_TEST_DATABASE_URL (default
# postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable):
#
#   1. if it answers, there is nothing to do;
#   2. else, if the URL names this machine and a cluster is installed but
#      stopped, start it;
#   3. else, if the URL names this machine and no server is installed,
#      install Debian's postgresql, let local TCP connections in without a
#      password (trust, 127.0.0.1 and ::1 only), and start it;
#
# then wait up to 30 s for it to accept connections. A URL that names
# another host is only checked, never touched.
#
# Redis at SECRETHUB_TEST_REDIS_ADDR (default 127.0.0.1:6379): if it does
# not answer and the address is this machine, start redis-server (installing
# Debian's redis-server if missing) without persistence, bound to loopback.
# Its default user must be able to run ACL commands (a fresh server's can).
#
# moto_server (a pip tool, not packaged by Debian) must be on PATH: it is
# only checked.
#
# The script fails with a message that says what is wrong when a service
# cannot be had.
set -euo pipefail

readonly default_url='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable'
readonly url="${SECRETHUB_TEST_DATABASE_URL:-$default_url}"
readonly wait_seconds=30
readonly redis_addr="${SECRETHUB_TEST_REDIS_ADDR:-127.0.0.1:6379}"

log() { printf 'test-services: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# as_root runs a command as root, through sudo when not root already.
as_root() {
	if [[ $EUID -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		die "need root to run: $* (run as root, or install sudo)"
	fi
}

# redacted prints the URL with any password hidden.
redacted() { sed -E 's#(://[^:/@]*:)[^@]*@#\1***@#; s#(password=)[^ ]*#\1***#' <<<"$url"; }

# url_host prints the host the URL names; empty means a Unix socket.
url_host() {
	local rest
	case $url in
	postgres://* | postgresql://*)
		rest=${url#*://}
		rest=${rest%%[/?]*} # authority: [user[:pw]@]host[:port]
		rest=${rest##*@}
		if [[ $rest == \[* ]]; then
			rest=${rest#\[}
			printf '%s\n' "${rest%%\]*}"
		else
			printf '%s\n' "${rest%%:*}"
		fi
		;;
	*)
		# keyword/value form: host=... (default: the Unix socket)
		if [[ $url =~ (^|[[:space:]])host=([^[:space:]]*) ]]; then
			printf '%s\n' "${BASH_REMATCH[2]}"
		fi
		;;
	esac
}

# url_port prints the port the URL names, 5432 if it names none.
url_port() {
	local rest port=''
	case $url in
	postgres://* | postgresql://*)
		rest=${url#*://}
		rest=${rest%%[/?]*}
		rest=${rest##*@}
		rest=${rest##*\]} # drop an [IPv6] host
		[[ $rest == *:* ]] && port=${rest##*:}
		;;
	*)
		if [[ $url =~ (^|[[:space:]])port=([0-9]+) ]]; then
			port=${BASH_REMATCH[2]}
		fi
		;;
	esac
	printf '%s\n' "${port:-5432}"
}

is_local() {
	case $1 in
	'' | 127.0.0.1 | localhost | ::1 | /*) return 0 ;;
	*) return 1 ;;
	esac
}

# reachable reports whether the server accepts our connection and query.
reachable() {
	command -v psql >/dev/null || return 1
	psql "$url" -XAtqc 'SELECT 1' >/dev/null 2>&1
}

# why prints why psql cannot connect, for error messages.
why() {
	if command -v psql >/dev/null; then
		psql "$url" -XAtqc 'SELECT 1' 2>&1 >/dev/null | head -n 5 || true
	else
		echo "psql is not installed"
	fi
}

wait_ready() {
	local deadline=$((SECONDS + wait_seconds))
	until reachable; do
		if ((SECONDS >= deadline)); then
			return 1
		fi
		sleep 1
	done
}

# pg_version prints the newest PostgreSQL version with a configuration in
# /etc/postgresql, or nothing.
pg_version() {
	if [[ -d /etc/postgresql ]]; then
		ls /etc/postgresql | sort -V | tail -n 1
	fi
}

apt_install() {
	command -v apt-get >/dev/null || die "cannot install $*: no apt-get here; install it yourself (or point the tests at a server with SECRETHUB_TEST_DATABASE_URL / SECRETHUB_TEST_REDIS_ADDR)"
	log "installing $* from Debian"
	as_root apt-get update -q
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

# trust_local lets local TCP connections in without a password. Lines are
# put first in pg_hba.conf, where the first match wins.
trust_local() {
	local hba=$1 tmp
	tmp=$(mktemp)
	{
		echo '# Added by hack/test-services.sh: local test connections need no password.'
		echo 'host all all 127.0.0.1/32 trust'
		echo 'host all all ::1/128 trust'
		cat "$hba"
	} >"$tmp"
	as_root install -m 0640 -o postgres -g postgres "$tmp" "$hba"
	rm -f "$tmp"
}

start_cluster() {
	local version=$1
	log "starting PostgreSQL $version cluster main"
	# Already running (say, but refusing us) is not an error here: the wait
	# below reports what is wrong.
	as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
}

ensure_postgres() {
	local host version installed=false
	if reachable; then
		log "PostgreSQL at $(redacted) is ready"
		return 0
	fi
	host=$(url_host)
	if ! is_local "$host"; then
		command -v psql >/dev/null || apt_install postgresql-client
		reachable && return 0
		die "PostgreSQL at $(redacted) is not reachable: $(why)
The host is not this machine, so this script leaves it alone: start it, or
point SECRETHUB_TEST_DATABASE_URL at a reachable server."
	fi

	version=$(pg_version)
	if [[ -z $version ]] || ! command -v pg_ctlcluster >/dev/null; then
		apt_install postgresql
		installed=true
		version=$(pg_version)
		[[ -n $version ]] || die "installed postgresql, but /etc/postgresql holds no cluster"
	fi
	if [[ ! -d /etc/postgresql/$version/main ]]; then
		log "creating PostgreSQL $version cluster main"
		as_root pg_createcluster "$version" main
		installed=true
	fi
	if [[ $installed == true ]]; then
		trust_local "/etc/postgresql/$version/main/pg_hba.conf"
		# A cluster the package started already must reread pg_hba.conf.
		as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload 2>/dev/null || true
	fi
	start_cluster "$version"

	local port
	port=$(pg_lsclusters -h 2>/dev/null | awk -v v="$version" '$1 == v && $2 == "main" { print $3 }')
	if [[ -n $port && $port != "$(url_port)" ]]; then
		die "PostgreSQL $version cluster main listens on port $port, but $(redacted) names port $(url_port): fix SECRETHUB_TEST_DATABASE_URL"
	fi

	if ! wait_ready; then
		die "PostgreSQL $version at $(redacted) did not accept connections within ${wait_seconds}s: $(why)
Cluster status: $(pg_lsclusters 2>&1 | tail -n +2 || true)
Its log is in /var/log/postgresql/postgresql-$version-main.log. If the server runs
but refuses the connection, let this user in (pg_hba.conf) or set
SECRETHUB_TEST_DATABASE_URL."
	fi
	log "PostgreSQL $version at $(redacted) is ready"
}

redis_host() { printf '%s\n' "${redis_addr%:*}"; }
redis_port() { printf '%s\n' "${redis_addr##*:}"; }

# redis_reachable reports whether Redis answers PING at redis_addr.
redis_reachable() {
	command -v redis-cli >/dev/null || return 1
	[[ $(redis-cli -h "$(redis_host)" -p "$(redis_port)" ping 2>/dev/null) == PONG ]]
}

redis_why() {
	if command -v redis-cli >/dev/null; then
		redis-cli -h "$(redis_host)" -p "$(redis_port)" ping 2>&1 | head -n 3 || true
	else
		echo "redis-cli is not installed"
	fi
}

ensure_redis() {
	if redis_reachable; then
		log "Redis at $redis_addr is ready"
		return 0
	fi
	if ! is_local "$(redis_host)"; then
		die "Redis at $redis_addr is not reachable: $(redis_why)
The host is not this machine, so this script leaves it alone: start it, or
point SECRETHUB_TEST_REDIS_ADDR at a reachable server."
	fi
	command -v redis-server >/dev/null || apt_install redis-server
	command -v redis-cli >/dev/null || apt_install redis-tools
	if redis_reachable; then # the package started it
		log "Redis at $redis_addr is ready"
		return 0
	fi
	log "starting redis-server on 127.0.0.1:$(redis_port)"
	as_root mkdir -p /var/lib/redis /var/log/redis
	as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$(redis_port)" \
		--save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
	local deadline=$((SECONDS + wait_seconds))
	until redis_reachable; do
		if ((SECONDS >= deadline)); then
			die "Redis at $redis_addr did not answer within ${wait_seconds}s: $(redis_why)
Its log is /var/log/redis/ci.log."
		fi
		sleep 1
	done
	log "Redis at $redis_addr is ready"
}

ensure_moto() {
	if ! command -v moto_server >/dev/null; then
		die "moto_server is not on PATH: the AWS engine's tests run against it.
Install it with: pip install 'moto[server]' (it is not packaged by Debian)."
	fi
	log "moto_server is installed ($(command -v moto_server))"
}

main() {
	ensure_postgres
	ensure_redis
	ensure_moto
}

# Run main unless sourced (to try the helpers).
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	main "$@"
fi
