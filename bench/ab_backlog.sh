#!/usr/bin/env bash
# Usage: bash bench/ab_backlog.sh A_PG_BIN B_PG_BIN    (as root; about 3 minutes)
#
# Two builds of shopping_upload drain the same backlog, in turn (A B, then
# B A, ...), against one nginx that answers like WeChat at once: uploads per
# second and the worker's CPU per upload of each run, and the ratios A / B
# pair by pair (pairing keeps a ratio fair when the machine's speed drifts).
# A_PG_BIN and B_PG_BIN are PostgreSQL bin folders (/usr/lib/postgresql/NN/bin
# or a relocated copy) with a build of the extension installed (make install
# PG_CONFIG=.../pg_config); any version from 1.0 on.  A benchmark: it prints
# figures; it exits 1 only when a run does not drain (its figures would not
# count).
#
# Environment:
#   BACKLOG=20000     orders queued in one transaction for each run
#   PAIRS=5           runs of each build (A B, B A, A B, ...)
#   TIMEOUT=150       seconds a run may take to drain
#   NGINX_WORKERS=    nginx worker_processes; default: the number of cores
#   A_CONF="..." B_CONF="..."   lines added to that cluster's postgresql.conf
#   A_LEGACY_SECRET=1 B_LEGACY_SECRET=1   that build predates secret_file (1.0):
#                     its secret goes in shopping_upload.secret instead
#
# Method.  As bench/worker.sh part 1: two throwaway clusters (one per build)
# run as the "postgres" OS user in a mktemp -d folder (Unix sockets there,
# listen_addresses = ''), each with the worker serving database "bench",
# shared_buffers = 1GB, verify_delay = 0, durability settings at their
# defaults, and BACKLOG orders of 3 items (bench/orders.sql).  A run VACUUMs
# and ANALYZEs order_state and CHECKPOINTs that cluster, then calls
# bench.backlog() (bench/backlog.sql): the orders queued in one transaction,
# then polled every 50 ms until none is left to upload.  Seconds from COMMIT;
# the worker's CPU from /proc (user + system).  The other cluster is idle
# meanwhile.  Both clusters, nginx and the folder are removed on exit.
set -euo pipefail

case ${1:-} in
	-h | --help)
		awk 'NR > 1 { if (/^# Method\./) exit; print }' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
esac
if [ $# != 2 ]; then
	echo "usage: bash bench/ab_backlog.sh A_PG_BIN B_PG_BIN   (-h: the settings)" >&2
	exit 2
fi
declare -A BIN=([A]=$1 [B]=$2)
BACKLOG=${BACKLOG:-20000}
PAIRS=${PAIRS:-5}
TIMEOUT=${TIMEOUT:-150}
CORES=$(nproc)
NGINX_WORKERS=${NGINX_WORKERS:-$CORES}
for v in BACKLOG PAIRS TIMEOUT NGINX_WORKERS; do
	[[ ${!v} =~ ^[1-9][0-9]{0,6}$ ]] || { echo "ab_backlog.sh: $v must be a positive integer" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "ab_backlog.sh: run as root (the clusters run as the postgres OS user)" >&2; exit 1; }
here=$(cd "$(dirname "$0")/.." && pwd)
for side in A B; do
	for prog in initdb pg_ctl psql pg_config; do
		[ -x "${BIN[$side]}/$prog" ] || { echo "ab_backlog.sh: ${BIN[$side]}/$prog not found ($side)" >&2; exit 1; }
	done
	[ -f "$("${BIN[$side]}/pg_config" --pkglibdir)/shopping_upload.so" ] ||
		{ echo "ab_backlog.sh: shopping_upload is not installed for ${BIN[$side]} ($side)" >&2; exit 1; }
done
command -v nginx >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light >/dev/null

start_seconds=$SECONDS
say() { printf '[%3ds] %s\n' $((SECONDS - start_seconds)) "$*"; }
as_pg() { runuser -u postgres -- "$@"; }
work=
nginx_pid=
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	[ -n "$nginx_pid" ] && kill -TERM "$nginx_pid" 2>/dev/null || true
	if [ -n "$work" ] && [ -d "$work" ]; then
		for side in A B; do
			[ -f "$work/$side/postmaster.pid" ] &&
				{ as_pg "${BIN[$side]}/pg_ctl" -D "$work/$side" -m immediate -w stop >/dev/null 2>&1 || true; }
		done
		[ "$rc" = 0 ] || for side in A B; do
			[ -f "$work/$side.log" ] && { echo "ab_backlog.sh: end of $side's server log:" >&2; tail -n 15 "$work/$side.log" >&2; }
		done
		rm -rf "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
work=$(mktemp -d /tmp/su-abbench.XXXXXX)
chmod 755 "$work"
chown postgres "$work"
cd "$work"

# nginx: the token and the upload, answered at once
port=$(( 20000 + RANDOM % 40000 ))
mkdir "$work/nginx"
cat >"$work/nginx/nginx.conf" <<NGINX
user nobody nogroup;
worker_processes $NGINX_WORKERS;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	default_type application/json;
	keepalive_requests 1000000;
	keepalive_timeout 600s;
	client_body_temp_path $work/nginx/client_body;
	proxy_temp_path $work/nginx/proxy;
	fastcgi_temp_path $work/nginx/fastcgi;
	uwsgi_temp_path $work/nginx/uwsgi;
	scgi_temp_path $work/nginx/scgi;
	server {
		listen 127.0.0.1:$port backlog=4096;
		location = /cgi-bin/stable_token { return 200 '{"access_token":"benchtoken","expires_in":7200}'; }
		location = /user-order/orders { return 200 '{"errcode":0,"errmsg":"ok"}'; }
		location / { return 404; }
	}
}
NGINX
nginx -e "$work/nginx/error.log" -p "$work/nginx" -c "$work/nginx/nginx.conf"
for _ in $(seq 50); do [ -s "$work/nginx/nginx.pid" ] && break; sleep 0.1; done
nginx_pid=$(cat "$work/nginx/nginx.pid")

printf 'benchsecret\n' >"$work/app_secret"
chmod 600 "$work/app_secret"
chown postgres "$work/app_secret"
q() { as_pg "${BIN[$1]}/psql" -h "$work" -p "${PORT[$1]}" -U postgres -d bench -X -q -v ON_ERROR_STOP=1 -At -F '|' -c "$2" </dev/null; }
declare -A PORT=([A]=5432 [B]=5433) VERSION WPID
for side in A B; do
	as_pg "${BIN[$side]}/initdb" -D "$work/$side" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
	legacy_var=${side}_LEGACY_SECRET conf_var=${side}_CONF
	cat >>"$work/$side/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$work'
port = ${PORT[$side]}
shared_preload_libraries = 'shopping_upload'
shopping_upload.databases = 'bench'
shopping_upload.database_name = 'bench'	# before 1.2 (each build drops the one it lacks, with a warning)
shopping_upload.api_base_url = 'http://127.0.0.1:$port'
shopping_upload.appid = 'wxtestappid'
$([ -n "${!legacy_var:-}" ] && echo "shopping_upload.secret = 'benchsecret'" || echo "shopping_upload.secret_file = '$work/app_secret'")
shopping_upload.allow_insecure_http = on
shopping_upload.verify_delay = 0
timezone = 'Asia/Shanghai'
shared_buffers = 1GB
max_wal_size = 4GB
${!conf_var:-}
CONF
	as_pg "${BIN[$side]}/pg_ctl" -D "$work/$side" -l "$work/$side.log" -w -t 60 start >/dev/null
	as_pg "${BIN[$side]}/psql" -h "$work" -p "${PORT[$side]}" -U postgres -d postgres -X -q -c 'CREATE DATABASE bench' </dev/null
	as_pg "${BIN[$side]}/psql" -h "$work" -p "${PORT[$side]}" -U postgres -d bench -X -q -v ON_ERROR_STOP=1 \
		-c 'SET client_min_messages = warning' -c 'CREATE EXTENSION shopping_upload' -c 'CREATE SCHEMA bench' \
		-f "$here/bench/backlog.sql" -v n="$BACKLOG" -v first=1 -f "$here/bench/orders.sql" -c 'VACUUM ANALYZE' </dev/null
	VERSION[$side]=$(q "$side" "SELECT extversion FROM pg_extension WHERE extname = 'shopping_upload'")
	for _ in $(seq 100); do
		WPID[$side]=$(q "$side" "SELECT pid FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker' LIMIT 1")
		[ -n "${WPID[$side]}" ] && break
		sleep 0.1
	done
	[ -n "${WPID[$side]}" ] || { echo "ab_backlog.sh: no worker in $side" >&2; exit 1; }
	IFS='|' read -r _ left _ <<<"$(q "$side" 'CALL bench.backlog(1, 200, 30)')"
	[ "$left" = 0 ] || { echo "ab_backlog.sh: $side's warm-up did not drain" >&2; exit 1; }
	say "$side: $("${BIN[$side]}/postgres" --version), shopping_upload ${VERSION[$side]}, worker pid ${WPID[$side]}; $BACKLOG orders made, 200 uploaded as a warm-up"
done

cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
clk_tck=$(getconf CLK_TCK)
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
declare -A RATE CPU
run() {							# run SIDE PAIR
	local side=$1 i=$2 c0 c1 secs left stuck
	q "$side" 'VACUUM ANALYZE shopping_upload.order_state' >/dev/null
	q "$side" 'CHECKPOINT' >/dev/null
	c0=$(cpu_ticks "${WPID[$side]}")
	IFS='|' read -r secs left stuck _ <<<"$(q "$side" "CALL bench.backlog(1, $BACKLOG, $TIMEOUT)")"
	c1=$(cpu_ticks "${WPID[$side]}")
	[ "$left" = 0 ] || { echo "ab_backlog.sh: $side's run $i did not drain: $left left ($stuck stuck)" >&2; exit 1; }
	RATE[$side$i]=$(calc "$BACKLOG / $secs")
	CPU[$side$i]=$(calc "($c1 - $c0) * 1e6 / $clk_tck / $BACKLOG")
	say "pair $i, $side: $(printf '%.2f' "$secs") s -> $(printf '%.0f' "${RATE[$side$i]}") orders/s; worker CPU $(printf '%.1f' "${CPU[$side$i]}") µs/upload"
}
for i in $(seq "$PAIRS"); do
	if [ $((i % 2)) = 1 ]; then run A "$i"; run B "$i"; else run B "$i"; run A "$i"; fi
done

# min / median / max of the arguments
stats() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.3f %.3f %.3f\n", v[1], m, v[NR] }'; }
ra=() rb=() ca=() cb=() rr=() cr=()
for i in $(seq "$PAIRS"); do
	ra+=("${RATE[A$i]}") rb+=("${RATE[B$i]}") ca+=("${CPU[A$i]}") cb+=("${CPU[B$i]}")
	rr+=("$(calc "${RATE[A$i]} / ${RATE[B$i]}")") cr+=("$(calc "${CPU[A$i]} / ${CPU[B$i]}")")
done
echo
echo "A: ${BIN[A]} (shopping_upload ${VERSION[A]});  B: ${BIN[B]} (shopping_upload ${VERSION[B]})"
echo "backlog of $BACKLOG orders, $PAIRS runs each, interleaved; min / median / max"
printf '  %-34s %s\n' "A uploads/s" "$(stats "${ra[@]}")"
printf '  %-34s %s\n' "B uploads/s" "$(stats "${rb[@]}")"
printf '  %-34s %s\n' "A worker CPU µs/upload" "$(stats "${ca[@]}")"
printf '  %-34s %s\n' "B worker CPU µs/upload" "$(stats "${cb[@]}")"
printf '  %-34s %s   (per pair: %s)\n' "ratio A / B, uploads/s" "$(stats "${rr[@]}")" "${rr[*]}"
printf '  %-34s %s   (per pair: %s)\n' "ratio A / B, CPU per upload" "$(stats "${cr[@]}")" "${cr[*]}"
