#!/usr/bin/env bash
# Benchmark parley against Prosody and ejabberd from Debian, one after the
# other on this machine, with the same workloads and the same load tool
# (parley bench), and write the figures into bench/BENCHMARK.md.
#
# Run as root on Debian: bash bench/run.sh
# Everything listens on 127.0.0.1 only; every server is stopped on exit.
#
# Settings (environment):
#   USERS=200 RATE_EACH=5 DURATION=30s   login+chat: clients, msg/s each, time
#   BURST=1000                           SCRAM logins in the login burst
#   IDLE=2000                            idle connections (IDLE=19000 for the
#                                        big run; accounts are then reused)
#   ACCOUNTS=2000                        accounts created on each server
#   HOLD=10s SOURCE_ADDRS=4              idle hold time, 127.0.0.1..N sources
#   SERVERS="parley prosody ejabberd"    which servers, in this order
#   PARLEY_BIN=path                      a parley binary (default: go build)
#   RESULTS=bench/results                where the JSON of each run goes
#   DOC=bench/BENCHMARK.md               where the table goes ("" for none)
#   KEEP=1                               keep the temp dir (configs, logs)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

USERS=${USERS:-200}
RATE_EACH=${RATE_EACH:-5}
DURATION=${DURATION:-30s}
BURST=${BURST:-1000}
IDLE=${IDLE:-2000}
ACCOUNTS=${ACCOUNTS:-2000}
HOLD=${HOLD:-10s}
SOURCE_ADDRS=${SOURCE_ADDRS:-4}
SERVERS=${SERVERS:-parley prosody ejabberd}
RESULTS=${RESULTS:-$here/results}
DOC=${DOC-$here/BENCHMARK.md}
# One workload never runs longer than this, whatever a server does.
STEP_TIMEOUT=${STEP_TIMEOUT:-600}

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (installs packages, runs servers as their users)"
[ "$ACCOUNTS" -ge "$USERS" ] || die "ACCOUNTS ($ACCOUNTS) must be at least USERS ($USERS)"

# Every connection is a descriptor, in the servers as in the load tool.
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt $((IDLE + 200)) ] || die "descriptor limit $(ulimit -n) is too low for IDLE=$IDLE"

work=$(mktemp -d /tmp/parley-bench.XXXXXX)
chmod 755 "$work"
pids=()          # server processes started by this script
ejabberd_dir=""  # set while an ejabberd of ours may be running

cleanup() {
	local rc=$?
	set +e
	stop_servers
	if [ "${KEEP:-}" = 1 ]; then
		log "kept $work"
	else
		rm -rf "$work"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_servers() {
	if [ -n "$ejabberd_dir" ]; then
		as_ejabberd timeout 30 ejabberdctl --config-dir "$ejabberd_dir" --spool "$ejabberd_dir/spool" --logs "$ejabberd_dir/logs" \
			--node "$ejabberd_node" stop >/dev/null 2>&1 || true
		ejabberd_dir=""
	fi
	local p
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	# Listeners last, as they were added: wait for them before any restart.
	for p in "${pids[@]}"; do
		for _ in $(seq 1 150); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$p" 2>/dev/null || true
	done
	pids=()
	return 0
}

# ---- packages -------------------------------------------------------------

install_packages() {
	local need=()
	command -v prosody >/dev/null || need+=(prosody)
	dpkg -s lua-dbi-sqlite3 >/dev/null 2>&1 || need+=(lua-dbi-sqlite3)
	command -v ejabberdctl >/dev/null || need+=(ejabberd)
	[ ${#need[@]} -eq 0 ] && return
	if ! apt-cache policy "${need[@]}" | grep -q 'Candidate: [0-9]'; then
		log "apt-get update"
		timeout 300 apt-get update -qq
	fi
	apt-cache policy "${need[@]}" | grep -E '^[a-z]|Candidate' >&2
	# Debian starts services on install; ours are started by hand below.
	local made_policy=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		made_policy=1
	fi
	log "apt-get install ${need[*]}"
	DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "${need[@]}" >&2
	[ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
	return 0
}

# ---- helpers ----------------------------------------------------------------

port_free() { [ -z "$(ss -Htln "sport = :$1")" ]; }

free_port() {
	local p=$1
	for _ in $(seq 1 100); do
		if port_free "$p"; then
			echo "$p"
			return
		fi
		p=$((p + 1))
	done
	die "no free port from $1"
}

# listener_pid PORT: the process that listens on 127.0.0.1:PORT.
listener_pid() {
	ss -Htlnp "sport = :$1" | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -1
}

# wait_listen PORT SECONDS LOG: until something listens on PORT, or fail
# early when the server just started has exited.
wait_listen() {
	local deadline=$((SECONDS + $2))
	while [ "$SECONDS" -lt "$deadline" ]; do
		local l
		l=$(listener_pid "$1")
		if [ -n "$l" ]; then
			# The listener may be a child of what was started (runuser,
			# su): stop_servers waits for it too.
			pids+=("$l")
			return 0
		fi
		if ! kill -0 "${pids[-1]}" 2>/dev/null; then
			tail -30 "$3" >&2
			die "the server exited before listening on port $1"
		fi
		sleep 0.2
	done
	tail -30 "$3" >&2
	die "nothing listens on port $1 after $2 s"
}

bench() {
	timeout "$STEP_TIMEOUT" "$parley_bin" bench --server "127.0.0.1:$port" "$@"
}

# ---- parley -------------------------------------------------------------------

parley_conf() {
	local d=$work/parley
	mkdir -p "$d"
	# Defaults but for where it listens and keeps its data.
	cat >"$d/parley.toml" <<-EOF
	data_dir = "$d/data"
	[listen]
	c2s = "127.0.0.1:$port"
	c2s_direct_tls = ""
	[registration]
	open = true
	per_address_per_hour = 0
	[limits]
	# The load tool is thousands of clients on a few loopback addresses.
	preauth_connections_per_address = 0
	EOF
}

parley_start() {
	"$parley_bin" serve --config "$work/parley/parley.toml" >>"$work/parley/parley.log" 2>&1 &
	pids+=($!)
	wait_listen "$port" 30 "$work/parley/parley.log"
}

parley_accounts() {
	# In-band registration once parley has it; until then the admin command.
	local n
	n=$(bench --mode register --users "$ACCOUNTS" --quiet 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["registrations"]["ok"])' || echo 0)
	[ "$n" = "$ACCOUNTS" ] && return
	log "parley: no in-band registration; parley user add x$ACCOUNTS"
	seq 1 "$ACCOUNTS" | timeout 900 xargs -P 4 -I{} "$parley_bin" user add "user{}@localhost" --password "pass{}" \
		--config "$work/parley/parley.toml" >/dev/null
}

# ---- Prosody ------------------------------------------------------------------

prosody_conf() {
	local d=$work/prosody
	mkdir -p "$d/data"
	cp "$work/localhost.crt" "$work/localhost.key" "$d/"
	cat >"$d/prosody.cfg.lua" <<-EOF
	-- Debian's default module set, without s2s, invites, admin and the
	-- per-connection bandwidth limit, plus archiving on the SQLite store.
	admins = { }
	modules_enabled = {
		"disco"; "roster"; "saslauth"; "tls"; "blocklist"; "bookmarks"; "carbons";
		"pep"; "private"; "smacks"; "vcard4"; "vcard_legacy"; "csi_simple";
		"ping"; "register"; "time"; "uptime"; "version"; "posix"; "mam";
	}
	data_path = "$d/data"
	pidfile = "$d/prosody.pid"
	certificates = "$d"
	allow_registration = true
	registration_throttle_max = 1000000
	min_seconds_between_registrations = 0
	c2s_require_encryption = true
	c2s_ports = { $port }
	c2s_interfaces = { "127.0.0.1" }
	c2s_direct_tls_ports = { }
	legacy_ssl_ports = { }
	s2s_ports = { }
	s2s_direct_tls_ports = { }
	component_ports = { }
	http_ports = { }
	https_ports = { }
	authentication = "internal_hashed"
	storage = "sql"
	sql = { driver = "SQLite3", database = "prosody.sqlite" }
	archive_expires_after = "1w"
	default_archive_policy = true
	log = { warn = "$d/prosody.log" }
	VirtualHost "localhost"
		ssl = { certificate = "$d/localhost.crt", key = "$d/localhost.key" }
	EOF
	chown -R prosody:prosody "$d"
}

prosody_start() {
	# Prosody refuses to run as root. setpriv rather than runuser or su:
	# their PAM session would cut the descriptor limit back to 1024.
	setpriv --reuid=prosody --regid=prosody --init-groups env HOME=/var/lib/prosody prosody --config "$work/prosody/prosody.cfg.lua" -F >>"$work/prosody/out.log" 2>&1 &
	pids+=($!)
	wait_listen "$port" 30 "$work/prosody/out.log"
}

prosody_accounts() {
	bench --mode register --users "$ACCOUNTS" --concurrency 10 --quiet >"$work/prosody/register.json"
}

# ---- ejabberd -----------------------------------------------------------------

ejabberd_node=ejabberdbench@localhost

as_ejabberd() {
	setpriv --reuid=ejabberd --regid=ejabberd --init-groups env HOME=/var/lib/ejabberd "$@"
}

ejabberd_conf() {
	local d=$work/ejabberd
	mkdir -p "$d/spool" "$d/logs"
	cat "$work/localhost.crt" "$work/localhost.key" >"$d/localhost.pem"
	cp /etc/ejabberd/inetrc "$d/inetrc"
	cat >"$d/ejabberdctl.cfg" <<-EOF
	ERLANG_NODE=$ejabberd_node
	ERL_MAX_PORTS=65536
	ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0"
	EOF
	# Debian's defaults without s2s, HTTP, STUN and MQTT listeners, MUC,
	# fail2ban and the traffic shaper, plus in-band registration and archiving of every message (mod_mam on
	# Mnesia, ejabberd's default store).
	cat >"$d/ejabberd.yml" <<-EOF
	loglevel: warning
	log_rotate_count: 0
	hosts:
	  - localhost
	certfiles:
	  - "$d/localhost.pem"
	c2s_protocol_options:
	  - "no_sslv3"
	  - "no_tlsv1"
	  - "no_tlsv1_1"
	  - "no_compression"
	listen:
	  -
	    port: $port
	    ip: "127.0.0.1"
	    module: ejabberd_c2s
	    # The default backlog of 5 drops connections in a login burst,
	    # which then wait a second for the retransmitted SYN.
	    backlog: 1024
	    max_stanza_size: 262144
	    shaper: none
	    access: c2s
	    starttls_required: true
	disable_sasl_mechanisms:
	  - "digest-md5"
	  - "X-OAUTH2"
	auth_password_format: scram
	registration_timeout: infinity
	acl:
	  local:
	    user_regexp: ""
	  loopback:
	    ip:
	      - 127.0.0.0/8
	access_rules:
	  local:
	    allow: local
	  c2s:
	    allow: all
	  register:
	    allow: all
	shaper_rules:
	  max_user_sessions: 100
	  max_user_offline_messages: 100
	modules:
	  mod_adhoc: {}
	  mod_avatar: {}
	  mod_blocking: {}
	  mod_caps: {}
	  mod_carboncopy: {}
	  mod_client_state: {}
	  mod_disco: {}
	  mod_last: {}
	  mod_mam:
	    default: always
	  mod_offline:
	    access_max_user_messages: max_user_offline_messages
	  mod_ping: {}
	  mod_privacy: {}
	  mod_private: {}
	  mod_pubsub:
	    plugins:
	      - flat
	      - pep
	  mod_push: {}
	  mod_push_keepalive: {}
	  mod_register:
	    access: register
	    ip_access: all
	  mod_roster:
	    versioning: true
	  mod_stream_mgmt:
	    resend_on_timeout: if_offline
	  mod_vcard:
	    search: false
	  mod_vcard_xupdate: {}
	  mod_version: {}
	EOF
	chown -R ejabberd:ejabberd "$d"
}

ejabberd_start() {
	local d=$work/ejabberd
	ejabberd_dir=$d
	# As the ejabberd user already, so that ejabberdctl does not su (whose
	# PAM session would cut the descriptor limit back to 1024).
	as_ejabberd ejabberdctl --config-dir "$d" --spool "$d/spool" --logs "$d/logs" --node "$ejabberd_node" \
		foreground >>"$d/out.log" 2>&1 &
	pids+=($!)
	wait_listen "$port" 90 "$d/out.log"
}

ejabberd_accounts() {
	bench --mode register --users "$ACCOUNTS" --concurrency 10 --quiet >"$work/ejabberd/register.json"
}

# ---- workloads -----------------------------------------------------------------

# run_one SERVER NAME ARGS...: a fresh server process, one workload, its JSON.
run_one() {
	local s=$1 name=$2
	shift 2
	"${s}_start"
	local pid
	pid=$(listener_pid "$port")
	log "$s: $name (server pid $pid)"
	if ! bench --server-pid "$pid" --quiet "$@" >"$RESULTS/$s-$name.json" 2>"$work/$s-$name.err"; then
		tail -5 "$work/$s-$name.err" >&2
		log "$s: $name failed"
	fi
	python3 - "$RESULTS/$s-$name.json" <<-'EOF' >&2 || true
	import json, sys
	r = json.load(open(sys.argv[1]))
	l = r.get("logins") or {}
	print("   logins %s ok %s failed %.0f/s%s" % (l.get("ok"), l.get("failed"), l.get("per_s", 0),
	      ("  first error: " + l["first_error"]) if l.get("first_error") else ""))
	if r.get("chat"):
	    c = r["chat"]
	    print("   sent %d delivered %d lost %d p50 %.1f ms p99 %.1f ms" % (c["sent"], c["delivered"], c["lost"], c["latency_p50_ms"], c["latency_p99_ms"]))
	if r.get("server"):
	    s = r["server"]
	    print("   server rss/conn %.1f KiB cpu/login %.0f us cpu/msg %.0f us" % (s["rss_per_conn_kib"], s["cpu_per_login_us"], s.get("cpu_per_message_us", 0)))
	EOF
	stop_servers
	ejabberd_dir=""
}

run_server() {
	local s=$1
	port=$(free_port "$2")
	log "$s on 127.0.0.1:$port"
	"${s}_conf"
	"${s}_start"
	"${s}_accounts"
	stop_servers
	run_one "$s" chat --mode login+chat --users "$USERS" --rate $((USERS * RATE_EACH)) --duration "$DURATION" --mech PLAIN
	run_one "$s" burst --mode login --users "$((BURST < ACCOUNTS ? BURST : ACCOUNTS))" --connections "$BURST" --mech SCRAM-SHA-1 --concurrency 50
	run_one "$s" idle --mode idle --users "$((IDLE < ACCOUNTS ? IDLE : ACCOUNTS))" --connections "$IDLE" --source-addrs "$SOURCE_ADDRS" \
		--hold "$HOLD" --mech PLAIN --concurrency 50
}

# ---- main -----------------------------------------------------------------------

install_packages
if [ -n "${PARLEY_BIN:-}" ]; then
	parley_bin=$PARLEY_BIN
else
	log "building parley"
	(cd "$root" && go build -o "$work/parley-bin" ./cmd/parley)
	parley_bin=$work/parley-bin
fi
"$parley_bin" bench --help >/dev/null 2>&1 || die "$parley_bin has no bench command"

# One self-signed ECDSA P-256 certificate, the kind parley makes for itself.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
	-subj /CN=localhost -addext subjectAltName=DNS:localhost \
	-keyout "$work/localhost.key" -out "$work/localhost.crt" 2>/dev/null

mkdir -p "$RESULTS"
base=35222
for s in $SERVERS; do
	case $s in
	parley | prosody | ejabberd) run_server "$s" "$base" ;;
	*) die "unknown server $s" ;;
	esac
	base=$((base + 10))
done

# Versions and machine, for the document.
{
	echo "date=$(date -u +%Y-%m-%d)"
	echo "parley=$("$parley_bin" version | awk '{print $2}') ($(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown))"
	echo "prosody=$(dpkg-query -W -f '${Version}' prosody 2>/dev/null)"
	echo "ejabberd=$(dpkg-query -W -f '${Version}' ejabberd 2>/dev/null)"
	echo "cpu=$(nproc) x $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
	echo "memory=$(free -g | awk '/^Mem:/{print $2}') GiB"
	echo "os=$(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
	echo "settings=USERS=$USERS RATE_EACH=$RATE_EACH DURATION=$DURATION BURST=$BURST IDLE=$IDLE ACCOUNTS=$ACCOUNTS HOLD=$HOLD SOURCE_ADDRS=$SOURCE_ADDRS"
} >"$RESULTS/env.txt"

if [ -n "$DOC" ]; then
	python3 "$here/table.py" "$RESULTS" "$DOC"
	log "table written to $DOC"
fi
