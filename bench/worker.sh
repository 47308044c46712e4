#!/usr/bin/env bash
# Usage: bash bench/worker.sh [-h]     (as root; about 3 minutes)
#
# The upload worker against a local nginx that answers like WeChat at once:
# sustained uploads per second, commit-to-request latency, the cost of the
# queueing trigger on inserts, the worker's memory.  A benchmark, not a test:
# it prints figures, ratios and a summary against targets, no verdict.
#
# Environment (for quick trials; the defaults are the benchmark):
#   BACKLOG=50000   orders in each backlog (part 1, 3 runs; part 4 reads
#                   memory after 2 of them)
#   LAT_SECONDS=20  length of the 200 orders/s run (part 2)
#   TPS_SECONDS=15  length of each insert throughput run (part 3)
#   TPS_ROUNDS=3    rounds of the three insert throughput runs (medians)
#   TIMEOUT=150     seconds a backlog or a drain may take before giving up
#
# Method.  A throwaway cluster runs as the "postgres" OS user in a mktemp -d
# folder (Unix socket there, listen_addresses = ''), with
# shared_preload_libraries = 'shopping_upload', the worker serving database
# "bench", shared_buffers = 1GB, max_wal_size = 4GB, track_commit_timestamp =
# on, durability settings left at their defaults (fsync, synchronous_commit
# on).  nginx (1 worker process, keep-alive for 10^6 requests, access_log off)
# runs with its own configuration in that folder, on 127.0.0.1 only:
#   port A answers POST /cgi-bin/stable_token with
#     {"access_token":"benchtoken","expires_in":7200} and
#     POST /user-order/orders with {"errcode":0,"errmsg":"ok"} (return 200);
#   port B (part 2 only) proxies /user-order/orders to port C, which returns
#     the same answer, and logs "$msec $request_time $request_body" for each
#     request (the body is only known to the log when nginx reads it).
# Everything is stopped and removed on exit, whatever happens.
#
# 1. Uploads per second: BACKLOG orders of 3 items are made with
#    bench/orders.sql (auto_upload off: nothing queued), then queued in one
#    transaction (INSERT INTO order_state ... SELECT FROM orders, upserting as
#    su_queue_order() does, so later runs re-queue them with version + 1;
#    then enqueue(1), which wakes the worker at commit).  Timed inside the
#    server from the return of that COMMIT until
#    count(*) WHERE state <> 'uploaded' is 0, polled every 50 ms; audit must
#    then hold BACKLOG new rows, errcode 0, one per order.  3 runs (VACUUM and
#    CHECKPOINT before each), median printed.  For comparison: wrk -t1
#    -c<max_inflight> -d10s POSTing one 3-item payload (build_payload(1)) to
#    the same nginx, and the ratio uploads/s / wrk requests/s.
# 2. Latency: pgbench -n -R 200 -T LAT_SECONDS -c 4 runs a script that
#    inserts one order (1 sub-order, 3 items) per transaction with plain
#    INSERTs, auto_upload on, the worker pointed at port B.  Arrival of a
#    request at nginx = $msec - $request_time (when nginx read its first
#    byte; millisecond resolution); commit = pg_xact_commit_timestamp(xmin)
#    of the orders row; joined on out_trade_no.  p50, p99, max in ms.
# 3. Insert throughput: the same script, pgbench -n -c 2 -T TPS_SECONDS, with
#    PGOPTIONS='-c shopping_upload.auto_upload=off' (triggers do nothing),
#    triggers on with the worker uploading, and triggers on in a second
#    database with the extension that the worker does not serve (orders are
#    queued, never uploaded; the worker is still woken at each commit).
#    TPS_ROUNDS rounds of the three, interleaved, a CHECKPOINT before each
#    run; median tps, and % slower than "off".
# 4. Memory: /proc/<worker pid>/status RssAnon (private memory; VmRSS also
#    counts the shared buffers it touched) and VmRSS after a 200-order
#    warm-up, before the first backlog, and after the 2nd and 3rd backlogs.
set -euo pipefail

PG_BIN=/usr/lib/postgresql/15/bin
BACKLOG=${BACKLOG:-50000}
LAT_SECONDS=${LAT_SECONDS:-20}
TPS_SECONDS=${TPS_SECONDS:-15}
TPS_ROUNDS=${TPS_ROUNDS:-3}
TIMEOUT=${TIMEOUT:-150}
RUNS=3
LAT_RATE=200
WARMUP=200

case ${1:-} in
	-h | --help)
		sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	'') ;;
	*)
		echo "usage: bash bench/worker.sh [-h]   (settings through BACKLOG, LAT_SECONDS, TPS_SECONDS, TPS_ROUNDS, TIMEOUT)" >&2
		exit 2
		;;
esac
for v in BACKLOG LAT_SECONDS TPS_SECONDS TPS_ROUNDS TIMEOUT; do
	if ! [[ ${!v} =~ ^[1-9][0-9]{0,6}$ ]]; then
		echo "worker.sh: $v must be a positive integer" >&2
		exit 2
	fi
done
if [ "$BACKLOG" -lt "$WARMUP" ]; then
	echo "worker.sh: BACKLOG must be at least $WARMUP" >&2
	exit 2
fi
if [ "$(id -u)" != 0 ]; then
	echo "worker.sh: run as root (the cluster runs as the postgres OS user, nginx as root)" >&2
	exit 1
fi

here=$(cd "$(dirname "$0")/.." && pwd)
orders_sql=$here/bench/orders.sql
[ -r "$orders_sql" ] || { echo "worker.sh: $orders_sql is missing" >&2; exit 1; }
if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null || [ ! -x "$PG_BIN/pgbench" ]; then
	echo "worker.sh: installing nginx-light, wrk, postgresql-contrib" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light wrk postgresql-contrib >/dev/null
fi
for prog in initdb pg_ctl psql pgbench pg_config; do
	[ -x "$PG_BIN/$prog" ] || { echo "worker.sh: $PG_BIN/$prog not found" >&2; exit 1; }
done
if [ ! -f "$("$PG_BIN/pg_config" --pkglibdir)/shopping_upload.so" ] ||
	[ ! -f "$("$PG_BIN/pg_config" --sharedir)/extension/shopping_upload.control" ]; then
	echo "worker.sh: shopping_upload is not installed for $PG_BIN (make install)" >&2
	exit 1
fi
id postgres >/dev/null 2>&1 || { echo "worker.sh: no postgres OS user" >&2; exit 1; }
NGINX=$(command -v nginx)
WRK=$(command -v wrk)

as_pg() { runuser -u postgres -- "$@"; }

start_seconds=$SECONDS
say() { printf '[%3ds] %s\n' $((SECONDS - start_seconds)) "$*"; }

work=
nginx_pid=
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$nginx_pid" ] && kill -0 "$nginx_pid" 2>/dev/null; then
		kill -TERM "$nginx_pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$nginx_pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$nginx_pid" 2>/dev/null || true
	fi
	if [ -n "$work" ] && [ -d "$work" ]; then
		if [ -f "$work/data/postmaster.pid" ]; then
			as_pg "$PG_BIN/pg_ctl" -D "$work/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
				as_pg "$PG_BIN/pg_ctl" -D "$work/data" -m immediate -w stop >/dev/null 2>&1 || true
		fi
		if [ "$rc" != 0 ]; then
			if [ -f "$work/server.log" ]; then
				echo "worker.sh: failed (exit $rc); end of the server log:" >&2
				tail -n 25 "$work/server.log" >&2 || true
			fi
			if [ -s "$work/nginx/error.log" ]; then
				echo "worker.sh: end of the nginx error log:" >&2
				tail -n 10 "$work/nginx/error.log" >&2 || true
			fi
		fi
		rm -rf "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

work=$(mktemp -d /tmp/su-wbench.XXXXXX)
chmod 755 "$work"
chown postgres "$work"
cd "$work"						# a folder the cluster user can read
# many connections in flight: as many files as allowed (65536 if the hard limit allows)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
nofile=$(ulimit -n)

# ---------------------------------------------------------------------------
# nginx
# ---------------------------------------------------------------------------
mkdir "$work/nginx"
taken_ports() { ss -Htln 2>/dev/null | awk '{ n = split($4, a, ":"); print a[n] }'; }
pick_ports() {					# three distinct free ports
	local used p
	used=" $(taken_ports | tr '\n' ' ') "
	PORTS=()
	while [ ${#PORTS[@]} -lt 3 ]; do
		p=$((20000 + RANDOM % 40000))
		case "$used ${PORTS[*]} " in *" $p "*) continue ;; esac
		PORTS+=("$p")
	done
}
write_nginx_conf() {
	local d=$work/nginx
	cat >"$d/nginx.conf" <<NGINX
user nobody nogroup;
worker_processes 1;
worker_rlimit_nofile $nofile;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 16384; }
http {
	access_log off;
	default_type application/json;
	keepalive_requests 1000000;
	keepalive_timeout 600s;
	client_body_buffer_size 256k;	# bodies stay in memory: \$request_body
	client_max_body_size 1m;
	client_body_temp_path $d/client_body;
	proxy_temp_path $d/proxy;
	fastcgi_temp_path $d/fastcgi;
	uwsgi_temp_path $d/uwsgi;
	scgi_temp_path $d/scgi;
	log_format arrival escape=json '\$msec \$request_time \$request_body';

	upstream answer {
		server 127.0.0.1:$PORT_C;
		keepalive 128;
		keepalive_requests 1000000;
	}

	# A: the stand-in WeChat, answering at once
	server {
		listen 127.0.0.1:$PORT_A backlog=4096;
		location = /cgi-bin/stable_token { return 200 '{"access_token":"benchtoken","expires_in":7200}'; }
		location = /user-order/orders { return 200 '{"errcode":0,"errmsg":"ok"}'; }
		location / { return 404; }
	}
	# B: the same, logging when each upload arrived and its body (part 2)
	server {
		listen 127.0.0.1:$PORT_B backlog=4096;
		location = /cgi-bin/stable_token { return 200 '{"access_token":"benchtoken","expires_in":7200}'; }
		location = /user-order/orders {
			access_log $d/arrivals.log arrival;
			proxy_pass http://answer;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
		location / { return 404; }
	}
	# C: B's answer
	server {
		listen 127.0.0.1:$PORT_C backlog=4096;
		location / { return 200 '{"errcode":0,"errmsg":"ok"}'; }
	}
}
NGINX
}
for attempt in 1 2 3 4 5; do
	pick_ports
	PORT_A=${PORTS[0]} PORT_B=${PORTS[1]} PORT_C=${PORTS[2]}
	write_nginx_conf
	if "$NGINX" -e "$work/nginx/error.log" -p "$work/nginx" -c "$work/nginx/nginx.conf" 2>>"$work/nginx/start.log"; then
		for _ in $(seq 50); do [ -s "$work/nginx/nginx.pid" ] && break; sleep 0.1; done
		nginx_pid=$(cat "$work/nginx/nginx.pid" 2>/dev/null || true)
		[ -n "$nginx_pid" ] && break
	fi
	[ "$attempt" = 5 ] && { cat "$work/nginx/start.log" "$work/nginx/error.log" >&2 2>/dev/null; echo "worker.sh: nginx did not start" >&2; exit 1; }
done
api_a=http://127.0.0.1:$PORT_A
api_b=http://127.0.0.1:$PORT_B
answer=$(curl -s -X POST -d '{}' "$api_a/user-order/orders?access_token=x" 2>/dev/null || true)
say "nginx $("$NGINX" -v 2>&1 | sed 's|.*/||'): $api_a (answers), $api_b (logs arrivals, proxies to :$PORT_C)${answer:+; answer: $answer}"

# ---------------------------------------------------------------------------
# The throwaway cluster
# ---------------------------------------------------------------------------
as_pg "$PG_BIN/initdb" -D "$work/data" -U postgres -A trust -E UTF8 \
	--locale=C.UTF-8 >"$work/initdb.log" 2>&1 ||
	{ cat "$work/initdb.log" >&2; exit 1; }
cat >>"$work/data/postgresql.conf" <<CONF
# bench/worker.sh
listen_addresses = ''
unix_socket_directories = '$work'
max_connections = 50
shared_preload_libraries = 'shopping_upload'
shopping_upload.database_name = 'bench'
shopping_upload.api_base_url = '$api_a'
shopping_upload.appid = 'wxtestappid'
shopping_upload.secret = 'benchsecret'
timezone = 'Asia/Shanghai'
shared_buffers = 1GB
max_wal_size = 4GB
track_commit_timestamp = on
CONF
# setpriv, not runuser: runuser's PAM session (pam_limits) would reset the
# open files limit to 1024
setpriv --reuid=postgres --regid=postgres --init-groups --reset-env \
	"$PG_BIN/pg_ctl" -D "$work/data" -l "$work/server.log" -w -t 60 start >/dev/null

psql_db() {						# psql_db DB [psql options]
	local db=$1
	shift
	as_pg "$PG_BIN/psql" -h "$work" -U postgres -d "$db" -X -q -v ON_ERROR_STOP=1 "$@"
}
q() {							# q DB SQL: one unaligned result
	psql_db "$1" -At -F '|' -c "$2" </dev/null
}

pg_version=$(q postgres 'SHOW server_version')
postmaster_pid=$(head -n 1 "$work/data/postmaster.pid")
pg_nofile=$(awk '/Max open files/ { print $4 }' "/proc/$postmaster_pid/limits")
say "PostgreSQL $pg_version in $work (postmaster $postmaster_pid, open files limit $pg_nofile)"

q postgres 'CREATE DATABASE bench' >/dev/null
q postgres 'CREATE DATABASE bench_noworker' >/dev/null

# objects both databases use: the insert script's sequence; the polling
# procedures (they COMMIT between polls, as separate transactions would)
for db in bench bench_noworker; do
	psql_db "$db" <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION shopping_upload;
CREATE SCHEMA bench;
CREATE SEQUENCE bench.order_id_seq START 100000001;

/*
 * Queues orders first..last in one transaction as a merchant's batch would,
 * wakes the worker with enqueue(first) at commit, then polls every 50 ms
 * until no order is left that is not uploaded (or every order left is
 * rejected/dead/held, or timeout_s).  Seconds from the return of COMMIT.
 */
CREATE PROCEDURE bench.backlog(first bigint, last bigint, timeout_s float8,
	INOUT seconds float8 DEFAULT NULL, INOUT left_over bigint DEFAULT NULL,
	INOUT stuck bigint DEFAULT NULL, INOUT t0_epoch float8 DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz;
	t1 timestamptz;
BEGIN
	INSERT INTO shopping_upload.order_state AS s (order_id)
	SELECT order_id FROM shopping_upload.orders WHERE order_id BETWEEN first AND last
	ON CONFLICT (order_id) DO UPDATE SET state = 'pending',
		version = s.version + 1, attempts = 0, next_attempt_at = now(),
		queued_at = now(), updated_at = now();
	PERFORM shopping_upload.enqueue(first);
	COMMIT;
	t0 := clock_timestamp();
	LOOP
		SELECT count(*) FILTER (WHERE state <> 'uploaded'),
			   count(*) FILTER (WHERE state IN ('rejected', 'dead', 'held'))
		  INTO left_over, stuck
		  FROM shopping_upload.order_state;
		t1 := clock_timestamp();
		COMMIT;
		EXIT WHEN left_over = stuck OR t1 - t0 > make_interval(secs => timeout_s);
		PERFORM pg_sleep(0.05);
	END LOOP;
	seconds := extract(epoch FROM t1 - t0);
	t0_epoch := extract(epoch FROM t0);
END
$$;

/* Waits until every queued order is uploaded (or stuck, or timeout_s). */
CREATE PROCEDURE bench.drain(timeout_s float8,
	INOUT left_over bigint DEFAULT NULL, INOUT stuck bigint DEFAULT NULL,
	INOUT seconds float8 DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz := clock_timestamp();
BEGIN
	LOOP
		SELECT count(*) FILTER (WHERE state <> 'uploaded'),
			   count(*) FILTER (WHERE state IN ('rejected', 'dead', 'held'))
		  INTO left_over, stuck
		  FROM shopping_upload.order_state;
		seconds := extract(epoch FROM clock_timestamp() - t0);
		COMMIT;
		EXIT WHEN left_over = stuck OR seconds > timeout_s;
		PERFORM pg_sleep(0.05);
	END LOOP;
END
$$;
SQL
done

# the pgbench script: one order, 1 sub-order, 3 items, plain INSERTs
cat >"$work/insert_order.sql" <<'SQL'
BEGIN;
INSERT INTO shopping_upload.orders (order_id, order_number_type, mchid, out_trade_no, openid, logistics_type)
VALUES (nextval('bench.order_id_seq'), 1, '1230000109', 'PGB' || currval('bench.order_id_seq'), 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o', 1);
INSERT INTO shopping_upload.sub_orders (order_id, sub_order_no, merchant_order_no, link_type, link_appid, link_path)
VALUES (currval('bench.order_id_seq'), 0, 'PGB' || currval('bench.order_id_seq') || '-1', 'MINI_PROGRAM', 'wxtestappid', '/pages/order?no=' || currval('bench.order_id_seq'));
INSERT INTO shopping_upload.items (order_id, sub_order_no, item_no, merchant_item_id, name, unit_price, quantity, image_url, link_type, link_appid, link_path)
VALUES (currval('bench.order_id_seq'), 0, 0, 'sku-0', '商品 0', 100, 1, ARRAY['https://img.example.com/0.png'], 'MINI_PROGRAM', 'wxtestappid', '/pages/item?sku=0'),
       (currval('bench.order_id_seq'), 0, 1, 'sku-1', '商品 1', 200, 1, ARRAY['https://img.example.com/1.png'], 'MINI_PROGRAM', 'wxtestappid', '/pages/item?sku=1'),
       (currval('bench.order_id_seq'), 0, 2, 'sku-2', '商品 2', 300, 1, ARRAY['https://img.example.com/2.png'], 'MINI_PROGRAM', 'wxtestappid', '/pages/item?sku=2');
END;
SQL
chmod 644 "$work/insert_order.sql"

worker_pid() {
	q bench "SELECT pid FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker'" | head -n 1
}
mem_kb() {						# mem_kb PID FIELD
	awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}
cpu_ticks() {					# user + system clock ticks of PID
	awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
clk_tck=$(getconf CLK_TCK)
drain() {						# drain DB: wait for the queue to empty
	local r left stuck secs
	r=$(q "$1" "CALL bench.drain($TIMEOUT)")
	IFS='|' read -r left stuck secs <<<"$r"
	if [ "$left" != 0 ]; then
		say "queue of $1 not drained after ${secs%.*} s: $left orders left ($stuck rejected/dead/held)"
		q "$1" "SELECT state, last_errcode, last_errmsg, count(*) FROM shopping_upload.order_state
		         WHERE state <> 'uploaded' GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 5" | sed 's/^/    /'
		return 1
	fi
}
fmt() { LC_ALL=C printf "%.${2:-1}f" "$1"; }
calc() { LC_ALL=C awk "BEGIN { print $* }"; }
median() { printf '%s\n' "$@" | LC_ALL=C sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# ---------------------------------------------------------------------------
# Orders, warm-up
# ---------------------------------------------------------------------------
say "making $BACKLOG orders of 3 items with bench/orders.sql (auto_upload off)"
psql_db bench -v n="$BACKLOG" -v first=1 -f "$orders_sql" </dev/null
psql_db bench -c 'VACUUM ANALYZE' </dev/null
q bench "SELECT setval('bench.order_id_seq', greatest(100000000, (SELECT max(order_id) FROM shopping_upload.orders)))" >/dev/null
max_inflight=$(q bench 'SHOW shopping_upload.max_inflight')
payload=$(q bench 'SELECT shopping_upload.build_payload(1)::text')

for _ in $(seq 100); do
	wpid=$(worker_pid)
	[ -n "$wpid" ] && break
	sleep 0.1
done
[ -n "$wpid" ] || { echo "worker.sh: no shopping_upload worker is running in database bench" >&2; exit 1; }
say "worker pid $wpid; warm-up: $WARMUP orders queued and uploaded"
r=$(q bench "CALL bench.backlog(1, $WARMUP, 30)")
IFS='|' read -r secs left stuck t0 <<<"$r"
warm=$(q bench "SELECT count(*) FILTER (WHERE errcode = 0) || '|' || count(*) FROM shopping_upload.audit")
if [ "$left" != 0 ] || [ "${warm%%|*}" != "$WARMUP" ]; then
	echo "worker.sh: the warm-up failed: $left of $WARMUP orders not uploaded, audit errcode 0 / rows: $warm" >&2
	q bench "SELECT errcode, errmsg, transport_error, count(*) FROM shopping_upload.audit GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 5" >&2
	exit 1
fi
sleep 0.5
wpid=$(worker_pid)
mem_before_anon=$(mem_kb "$wpid" RssAnon)
mem_before_rss=$(mem_kb "$wpid" VmRSS)

# ---------------------------------------------------------------------------
# 1. A backlog, queue to audit (and 4. memory)
# ---------------------------------------------------------------------------
echo
echo "== 1. Sustained uploads: a backlog of $BACKLOG orders (3 items), $RUNS runs"
rates=()
valid_runs=0
restarts=
for run in $(seq "$RUNS"); do
	psql_db bench -c 'VACUUM ANALYZE shopping_upload.order_state' -c 'CHECKPOINT' </dev/null
	before=$(q bench 'SELECT coalesce(max(audit_id), 0) FROM shopping_upload.audit')
	pid_now=$(worker_pid)
	[ "$pid_now" = "$wpid" ] || restarts="worker restarted (pid $wpid -> $pid_now)"
	cpu0=$(cpu_ticks "$pid_now")
	say "run $run: queueing orders 1..$BACKLOG in one transaction"
	r=$(q bench "CALL bench.backlog(1, $BACKLOG, $TIMEOUT)")
	IFS='|' read -r secs left stuck t0 <<<"$r"
	cpu1=$(cpu_ticks "$pid_now")
	IFS='|' read -r rows ok orders last_s <<<"$(q bench "SELECT count(*), count(*) FILTER (WHERE errcode = 0),
		count(DISTINCT order_id), coalesce(extract(epoch FROM max(created_at)) - $t0, 0)
		FROM shopping_upload.audit WHERE audit_id > $before")"
	rate=$(calc "$BACKLOG / $secs")
	cpu_us=$(calc "($cpu1 - $cpu0) * 1e6 / $clk_tck / $BACKLOG")
	if [ "$left" = 0 ] && [ "$rows" = "$BACKLOG" ] && [ "$ok" = "$BACKLOG" ] && [ "$orders" = "$BACKLOG" ]; then
		check="audit $rows rows, all errcode 0"
		rates+=("$rate")
		valid_runs=$((valid_runs + 1))
	else
		check="NOT VALID: $left orders not uploaded ($stuck stuck); audit $rows rows, $ok errcode 0, $orders orders"
		q bench "SELECT errcode, errmsg, transport_error, count(*) FROM shopping_upload.audit
		         WHERE audit_id > $before AND errcode <> 0 GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 5" | sed 's/^/    /'
	fi
	say "run $run: $(fmt "$secs" 2) s to drain -> $(fmt "$rate" 0) orders/s (last audit row at $(fmt "$last_s" 2) s; worker CPU $(fmt "$cpu_us" 1) µs/upload); $check"
	if [ "$run" = 2 ]; then
		mem_after_anon=$(mem_kb "$pid_now" RssAnon)
		mem_after_rss=$(mem_kb "$pid_now" VmRSS)
	fi
	if [ "$run" = 3 ]; then
		mem_after3_anon=$(mem_kb "$pid_now" RssAnon)
		mem_after3_rss=$(mem_kb "$pid_now" VmRSS)
	fi
	[ "$left" = 0 ] || { echo "worker.sh: the backlog did not drain in $TIMEOUT s; stopping" >&2; exit 1; }
done
if [ "${#rates[@]}" = 3 ]; then
	rate_median=$(median "${rates[@]}")
else
	rate_median=
fi

# the same nginx under wrk
cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[$payload]==]
LUA
say "wrk -t1 -c$max_inflight -d10s: POST of a $(printf '%s' "$payload" | wc -c)-byte 3-item payload to $api_a/user-order/orders"
"$WRK" -t1 -c"$max_inflight" -d10s -s "$work/post.lua" "$api_a/user-order/orders?access_token=benchtoken" >"$work/wrk.out" 2>&1 || true
wrk_rps=$(awk '/^Requests\/sec:/ { print $2 }' "$work/wrk.out")
wrk_errors=$(grep -E 'Non-2xx|Socket errors' "$work/wrk.out" || true)
if [ -z "$wrk_rps" ]; then
	cat "$work/wrk.out"
	wrk_rps=0
fi
say "wrk: $(fmt "$wrk_rps" 0) requests/s, latency avg $(awk '/^ +Latency/ { print $2 }' "$work/wrk.out")${wrk_errors:+; $wrk_errors}"

echo
if [ -n "$rate_median" ]; then
	ratio=$(calc "$rate_median / ($wrk_rps > 0 ? $wrk_rps : 1)")
	echo "uploads/s, median of $RUNS: $(fmt "$rate_median" 0)   (runs: $(for x in "${rates[@]}"; do printf '%s ' "$(fmt "$x" 0)"; done | sed 's/ $//'))"
	echo "wrk requests/s, same nginx, -c$max_inflight: $(fmt "$wrk_rps" 0)"
	echo "uploads/s ÷ wrk requests/s: $(fmt "$ratio" 3)"
else
	echo "uploads/s: only $valid_runs of $RUNS runs were valid; no median"
	ratio=
fi

# ---------------------------------------------------------------------------
# 2. Latency, commit to nginx, at 200 orders/s
# ---------------------------------------------------------------------------
echo
echo "== 2. Latency from COMMIT to the request at nginx, $LAT_RATE orders/s for $LAT_SECONDS s"
q bench "ALTER SYSTEM SET shopping_upload.api_base_url = '$api_b'" >/dev/null
q bench 'SELECT pg_reload_conf()' >/dev/null
sleep 1
as_pg "$PG_BIN/pgbench" -h "$work" -U postgres -n -c 1 -t 20 -f "$work/insert_order.sql" bench >/dev/null 2>&1
drain bench
logged=$(wc -l <"$work/nginx/arrivals.log" 2>/dev/null || echo 0)
if [ "$logged" -lt 20 ]; then
	say "warning: only $logged of 20 warm-up uploads reached $api_b; the worker may not have reloaded its settings"
fi
: >"$work/nginx/arrivals.log"
lo=$(q bench "SELECT last_value FROM bench.order_id_seq")
say "pgbench -n -R $LAT_RATE -T $LAT_SECONDS -c 4 (auto_upload on, worker -> $api_b)"
as_pg "$PG_BIN/pgbench" -h "$work" -U postgres -n -R "$LAT_RATE" -T "$LAT_SECONDS" -c 4 \
	-f "$work/insert_order.sql" bench >"$work/pgbench_lat.out" 2>&1 ||
	{ cat "$work/pgbench_lat.out"; exit 1; }
drain bench
hi=$(q bench "SELECT last_value FROM bench.order_id_seq")
sleep 0.2
sed -nE 's/^([0-9]+\.[0-9]+) ([0-9]+\.[0-9]+) .*out_trade_no\\":\\"([^\\"]+)\\".*$/\1\t\2\t\3/p' \
	"$work/nginx/arrivals.log" >"$work/arrivals.tsv"
chmod 644 "$work/arrivals.tsv"
IFS='|' read -r n_orders n_matched p50 p99 lmax lmin <<<"$(psql_db bench -At -F '|' <<SQL
CREATE TEMP TABLE arrivals (msec numeric, request_time numeric, out_trade_no text);
\copy arrivals FROM '$work/arrivals.tsv'
WITH o AS (
	SELECT out_trade_no, pg_xact_commit_timestamp(xmin) AS committed
	  FROM shopping_upload.orders WHERE order_id > $lo AND order_id <= $hi),
a AS (
	SELECT out_trade_no, min(msec - request_time) AS arrived
	  FROM arrivals GROUP BY out_trade_no),
l AS (
	SELECT (a.arrived - extract(epoch FROM o.committed)) * 1000 AS ms
	  FROM o JOIN a USING (out_trade_no))
SELECT (SELECT count(*) FROM o), count(*),
	   round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1),
	   round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1),
	   round(max(ms), 1), round(min(ms), 1)
  FROM l;
SQL
)"
q bench "ALTER SYSTEM RESET shopping_upload.api_base_url" >/dev/null
q bench 'SELECT pg_reload_conf()' >/dev/null
pgb_tps=$(awk '/^tps = / { print $3; exit }' "$work/pgbench_lat.out")
pgb_lag=$(awk '/schedule lag/ { print $0; exit }' "$work/pgbench_lat.out" | sed 's/^ *//')
say "$n_orders orders committed at $(fmt "${pgb_tps:-0}" 1)/s; $n_matched of them found in the nginx log${pgb_lag:+ ($pgb_lag)}"
echo
echo "commit -> nginx (ms): p50 ${p50:-?}  p99 ${p99:-?}  max ${lmax:-?}  (min ${lmin:-?}; nginx reads its clock to the ms, rounded down: up to 1 ms low)"
if [ "${n_matched:-0}" != "${n_orders:-x}" ]; then
	echo "warning: $((n_orders - n_matched)) orders of the run were not found in the nginx log"
fi

# ---------------------------------------------------------------------------
# 3. Insert throughput with the triggers on and off
# ---------------------------------------------------------------------------
echo
echo "== 3. Insert throughput: pgbench -n -c 2 -T $TPS_SECONDS, one order of 3 items per transaction;"
echo "   $TPS_ROUNDS rounds of (triggers off, on, on without the worker), medians"
sleep 1							# the worker is back on $api_a
tps_run() {						# tps_run LABEL DB [PGOPTIONS]
	local out=$work/pgbench_tps.out
	q "$2" 'CHECKPOINT' >/dev/null
	say "pgbench round $round/$TPS_ROUNDS: $1" >&2
	as_pg env PGOPTIONS="${3:-}" "$PG_BIN/pgbench" -h "$work" -U postgres -n -c 2 -T "$TPS_SECONDS" \
		-f "$work/insert_order.sql" "$2" >"$out" 2>&1 || { cat "$out" >&2; return 1; }
	awk '/^tps = / { print $3; exit }' "$out"
}
tps_offs=() tps_ons=() tps_nws=()
on_uploaded=0 on_ticks=0 nw_ticks=0
for round in $(seq "$TPS_ROUNDS"); do
	tps_offs+=("$(tps_run "triggers off" bench '-c shopping_upload.auto_upload=off')")

	cpu0=$(cpu_ticks "$(worker_pid)")
	seq0=$(q bench "SELECT last_value FROM bench.order_id_seq")
	tps_ons+=("$(tps_run "triggers on, worker uploading" bench)")
	drain bench
	cpu1=$(cpu_ticks "$(worker_pid)")
	seq1=$(q bench "SELECT last_value FROM bench.order_id_seq")
	on_uploaded=$((on_uploaded + seq1 - seq0))
	on_ticks=$((on_ticks + cpu1 - cpu0))

	cpu0=$(cpu_ticks "$(worker_pid)")
	tps_nws+=("$(tps_run "triggers on, worker not serving the database" bench_noworker)")
	cpu1=$(cpu_ticks "$(worker_pid)")
	nw_ticks=$((nw_ticks + cpu1 - cpu0))
	say "round $round: off $(fmt "${tps_offs[-1]}" 0), on $(fmt "${tps_ons[-1]}" 0), on without the worker $(fmt "${tps_nws[-1]}" 0) tps"
done
tps_off=$(median "${tps_offs[@]}")
tps_on=$(median "${tps_ons[@]}")
tps_nw=$(median "${tps_nws[@]}")
nw_cpu_pct=$(calc "$nw_ticks * 100 / $clk_tck / ($TPS_SECONDS * $TPS_ROUNDS)")
nw_queued=$(q bench_noworker "SELECT count(*) FROM shopping_upload.order_state WHERE state = 'pending'")
slower_on=$(calc "($tps_off - $tps_on) * 100 / $tps_off")
slower_nw=$(calc "($tps_off - $tps_nw) * 100 / $tps_off")
echo
printf '  %-44s %9s tps\n' "triggers off (auto_upload=off)" "$(fmt "$tps_off" 0)"
printf '  %-44s %9s tps  %5s%% slower  (%d orders uploaded, worker CPU %s µs/upload)\n' \
	"triggers on, worker uploading" "$(fmt "$tps_on" 0)" "$(fmt "$slower_on" 1)" "$on_uploaded" \
	"$(fmt "$(calc "$on_ticks * 1e6 / $clk_tck / ($on_uploaded > 0 ? $on_uploaded : 1)")" 1)"
printf '  %-44s %9s tps  %5s%% slower  (%s orders queued, never uploaded; the worker, woken at each commit, used %s%% of a core)\n' \
	"triggers on, worker not serving the database" "$(fmt "$tps_nw" 0)" "$(fmt "$slower_nw" 1)" "$nw_queued" "$(fmt "$nw_cpu_pct" 0)"

# ---------------------------------------------------------------------------
# 4. Memory
# ---------------------------------------------------------------------------
echo
echo "== 4. The worker's memory (pid $wpid), kB"
growth_anon=$((mem_after_anon - mem_before_anon))
growth_rss=$((mem_after_rss - mem_before_rss))
printf '  %-40s RssAnon %8s   VmRSS %8s\n' "after the $WARMUP-order warm-up" "$mem_before_anon" "$mem_before_rss"
printf '  %-40s RssAnon %8s   VmRSS %8s\n' "after $((2 * BACKLOG)) uploads (2 backlogs)" "$mem_after_anon" "$mem_after_rss"
printf '  %-40s RssAnon %8s   VmRSS %8s\n' "after $((3 * BACKLOG)) uploads (3 backlogs)" "$mem_after3_anon" "$mem_after3_rss"
printf '  %-40s RssAnon %8s   VmRSS %8s\n' "growth over $((2 * BACKLOG)) uploads" "$growth_anon" "$growth_rss"
[ -z "$restarts" ] || echo "  warning: $restarts: the figures mix two processes"

# ---------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------
met() {							# met VALUE OP LIMIT
	[ -n "$1" ] || { echo "n/a"; return; }
	if LC_ALL=C awk -v v="$1" -v l="$3" "BEGIN { exit !(v $2 l) }"; then echo yes; else echo NO; fi
}
echo
echo "== Summary: PostgreSQL $pg_version, $(nproc) CPUs, max_inflight $max_inflight, backlog $BACKLOG orders, total $((SECONDS - start_seconds)) s"
row() { printf ' %-50s | %14s | %-13s | %s\n' "$@"; }
row "figure" "value" "target" "met"
echo "----------------------------------------------------+----------------+---------------+-----"
row "uploads/s, backlog queue -> audit (median of $RUNS)" "$( [ -n "$rate_median" ] && fmt "$rate_median" 0 || echo "n/a")" ">= 10000" "$(met "$rate_median" '>=' 10000)"
row "wrk requests/s, same nginx and body, -c$max_inflight" "$(fmt "$wrk_rps" 0)" "" ""
row "ratio uploads/s over wrk requests/s" "$( [ -n "$ratio" ] && fmt "$ratio" 3 || echo "n/a")" "" ""
row "commit -> nginx latency p50 at $LAT_RATE/s (ms)" "${p50:-n/a}" "" ""
row "commit -> nginx latency p99 at $LAT_RATE/s (ms)" "${p99:-n/a}" "< 50" "$(met "${p99:-}" '<' 50)"
row "commit -> nginx latency max at $LAT_RATE/s (ms)" "${lmax:-n/a}" "" ""
row "insert tps, triggers off (median of $TPS_ROUNDS)" "$(fmt "$tps_off" 0)" "" ""
row "insert tps, triggers on, worker uploading" "$(fmt "$tps_on" 0)" "" ""
row "  % slower than off" "$(fmt "$slower_on" 1)" "< 10" "$(met "$slower_on" '<' 10)"
row "insert tps, triggers on, worker not serving the db" "$(fmt "$tps_nw" 0)" "" ""
row "  % slower than off" "$(fmt "$slower_nw" 1)" "< 10" "$(met "$slower_nw" '<' 10)"
row "worker RssAnon growth, $((2 * BACKLOG)) uploads (MB)" "$(fmt "$(calc "$growth_anon / 1024")" 2)" "< 5" "$(met "$(calc "$growth_anon / 1024")" '<' 5)"
row "worker VmRSS growth (+ shared buffers touched, MB)" "$(fmt "$(calc "$growth_rss / 1024")" 2)" "" ""
