#!/usr/bin/env bash
# Usage: bash bench/followup.sh [-h]     (as root; about 3 minutes on 2 cores)
#
# Orders with shipments, end to end, per second: the worker against a local
# nginx that answers the calls (upload, shippings, verify, and the order
# shipping management service's upload and get_order) at once.  A
# benchmark: it prints figures, never fails on them; it exits 1 when a run
# did not finish (an order, a shipment or a verify left over).
#
# Environment:
#   ORDERS=20000   orders in each run (each with one shipment of 3 items)
#   RUNS=3         runs of each configuration (interleaved)
#   TIMEOUT=300    seconds a run may take before giving up
#   PG_BIN=/usr/lib/postgresql/NN/bin   the PostgreSQL (and extension) to measure
#
# Method.  A throwaway cluster (as bench/worker.sh: postgres OS user, Unix
# socket in a mktemp -d folder, shared_buffers 1GB, durability settings at
# their defaults) whose worker serves database "bench"; nginx (one worker
# process per core) on 127.0.0.1 answers POST /cgi-bin/stable_token with a
# token, /user-order/orders and /user-order/orders/shippings with
# {"errcode":0,"errmsg":"ok"}, /user-order/shoppinginfo/verify with
# {"errcode":0,"errmsg":"ok","verify_result":"linked"}, the service's
# /wxa/sec/order/upload_shipping_info with {"errcode":0,"errmsg":"ok"} and
# get_order with a complete payment (order_state 4: no further look).  ORDERS
# orders of 3 items are made with bench/orders.sql, each with one shipment
# (unified delivery), auto_upload off.  Four configurations, RUNS runs each,
# interleaved, VACUUM and CHECKPOINT before each run:
#   orders:             the orders alone are queued (verify_delay 0)
#   orders+shipments:   the orders and their shipping information are queued in
#                       one transaction (verify_delay 0): the worker sends each
#                       shipment after its order is accepted
#   full loop:          the same with verify_delay = 1s: each accepted upload
#                       is also verified
#   trade shipments:    the appid in the order shipping management service
#                       (shopping_upload.trade_managed = on), the orders
#                       uploaded before: every shipment written again in one
#                       transaction, which queues it for both services; done
#                       when both accepted it and the worker's get_order,
#                       reconcile_interval (1 s) after the acceptance, is in
# Each run queues everything in one transaction (version + 1 for rows queued
# before, verify columns cleared) and is timed inside the server from the
# return of its COMMIT until nothing is left to do (every order uploaded, every
# shipping uploaded, every upload verified), polled every 50 ms.  Rate: orders
# per second (an order with its shipment, and its verify, counts once).  Worker
# CPU: utime + stime of the worker process over the run, per order.  The full
# loop includes verify_delay (1 s) once: its rate is bounded by it for small
# ORDERS.
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/$(. "$(dirname "$0")/../scripts/pg_major.sh" && su_pg_major)/bin}
CORES=$(nproc)
ORDERS=${ORDERS:-20000}
RUNS=${RUNS:-3}
TIMEOUT=${TIMEOUT:-300}

case ${1:-} in
	-h | --help)
		sed -n '2,45p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	'') ;;
	*)
		echo "usage: bash bench/followup.sh [-h]   (settings through ORDERS, RUNS, TIMEOUT)" >&2
		exit 2
		;;
esac
for v in ORDERS RUNS TIMEOUT; do
	if ! [[ ${!v} =~ ^[1-9][0-9]{0,6}$ ]]; then
		echo "followup.sh: $v must be a positive integer" >&2
		exit 2
	fi
done
if [ "$(id -u)" != 0 ]; then
	echo "followup.sh: run as root (the cluster runs as the postgres OS user, nginx as root)" >&2
	exit 1
fi
here=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v nginx >/dev/null; then
	echo "followup.sh: installing nginx-light" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light >/dev/null
fi
for prog in initdb pg_ctl psql pg_config; do
	[ -x "$PG_BIN/$prog" ] || { echo "followup.sh: $PG_BIN/$prog not found" >&2; exit 1; }
done
[ -f "$("$PG_BIN/pg_config" --pkglibdir)/shopping_upload.so" ] ||
	{ echo "followup.sh: shopping_upload is not installed for $PG_BIN (make install)" >&2; exit 1; }
id postgres >/dev/null 2>&1 || { echo "followup.sh: no postgres OS user" >&2; exit 1; }

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
		if [ "$rc" != 0 ] && [ -f "$work/server.log" ]; then
			echo "followup.sh: exit $rc; end of the server log:" >&2
			tail -n 25 "$work/server.log" >&2 || true
		fi
		rm -rf "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

work=$(mktemp -d /tmp/su-fbench.XXXXXX)
chmod 755 "$work"
chown postgres "$work"
cd "$work"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# nginx on a free port
mkdir "$work/nginx"
for attempt in 1 2 3 4 5; do
	port=$((20000 + RANDOM % 40000))
	cat >"$work/nginx/nginx.conf" <<NGINX
user nobody nogroup;
worker_processes $CORES;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 16384; }
http {
	access_log off;
	default_type application/json;
	keepalive_requests 1000000;
	keepalive_timeout 600s;
	client_body_buffer_size 256k;
	client_body_temp_path $work/nginx/cb;
	proxy_temp_path $work/nginx/p;
	fastcgi_temp_path $work/nginx/f;
	uwsgi_temp_path $work/nginx/u;
	scgi_temp_path $work/nginx/s;
	server {
		listen 127.0.0.1:$port backlog=4096;
		location = /cgi-bin/stable_token { return 200 '{"access_token":"benchtoken","expires_in":7200}'; }
		location = /user-order/orders { return 200 '{"errcode":0,"errmsg":"ok"}'; }
		location = /user-order/orders/shippings { return 200 '{"errcode":0,"errmsg":"ok"}'; }
		location = /user-order/shoppinginfo/verify { return 200 '{"errcode":0,"errmsg":"ok","verify_result":"linked"}'; }
		location = /wxa/sec/order/upload_shipping_info { return 200 '{"errcode":0,"errmsg":"ok"}'; }
		location = /wxa/sec/order/get_order { return 200 '{"errcode":0,"errmsg":"ok","order":{"order_state":4,"in_complaint":false}}'; }
		location = /wxa/sec/order/is_trade_managed { return 200 '{"errcode":0,"errmsg":"ok","is_trade_managed":true}'; }
		location = /cgi-bin/express/delivery/open_msg/get_delivery_list { return 200 '{"errcode":0,"errmsg":"ok","delivery_list":[{"delivery_id":"SF","delivery_name":"SF Express"}],"count":1}'; }
		location / { return 404; }
	}
}
NGINX
	if nginx -e "$work/nginx/error.log" -p "$work/nginx" -c "$work/nginx/nginx.conf" 2>>"$work/nginx/start.log"; then
		for _ in $(seq 50); do [ -s "$work/nginx/nginx.pid" ] && break; sleep 0.1; done
		nginx_pid=$(cat "$work/nginx/nginx.pid" 2>/dev/null || true)
		[ -n "$nginx_pid" ] && break
	fi
	[ "$attempt" = 5 ] && { cat "$work/nginx/start.log" >&2; echo "followup.sh: nginx did not start" >&2; exit 1; }
done

as_pg "$PG_BIN/initdb" -D "$work/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$work/initdb.log" 2>&1 ||
	{ cat "$work/initdb.log" >&2; exit 1; }
printf 'benchsecret\n' >"$work/app_secret"
chmod 600 "$work/app_secret"
chown postgres "$work/app_secret"
cat >>"$work/data/postgresql.conf" <<CONF
# bench/followup.sh
listen_addresses = ''
unix_socket_directories = '$work'
shared_preload_libraries = 'shopping_upload'
shopping_upload.database_name = 'bench'
shopping_upload.api_base_url = 'http://127.0.0.1:$port'
shopping_upload.appid = 'wxtestappid'
shopping_upload.secret_file = '$work/app_secret'
shopping_upload.allow_insecure_http = on
shopping_upload.verify_delay = 0
shopping_upload.trade_managed = off
shopping_upload.reconcile_interval = 1s
shared_buffers = 1GB
max_wal_size = 4GB
CONF
as_pg "$PG_BIN/pg_ctl" -D "$work/data" -l "$work/server.log" -w -t 60 start >/dev/null
psql_db() { as_pg "$PG_BIN/psql" -h "$work" -U postgres -d bench -X -q -v ON_ERROR_STOP=1 "$@"; }
q() { psql_db -At -F '|' -c "$1" </dev/null; }
as_pg "$PG_BIN/psql" -h "$work" -U postgres -d postgres -X -q -c 'CREATE DATABASE bench'
say "PostgreSQL $(q 'SHOW server_version') in $work; nginx on 127.0.0.1:$port ($CORES worker processes)"

psql_db <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION shopping_upload;
CREATE SCHEMA bench;
/*
 * Queues orders first..last (and their shipping information when ship) in
 * one transaction, then polls every 50 ms until nothing is left to do: every
 * order uploaded, every queued shipping uploaded, and (when verify) every
 * order verified.  Seconds from the return of COMMIT.
 */
CREATE PROCEDURE bench.run(first bigint, last bigint, ship bool, verify bool, timeout_s float8,
	INOUT seconds float8 DEFAULT NULL, INOUT left_over bigint DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz;
	t1 timestamptz;
BEGIN
	DELETE FROM shopping_upload.shipping_state;
	INSERT INTO shopping_upload.order_state AS s (order_id)
	SELECT order_id FROM shopping_upload.orders WHERE order_id BETWEEN first AND last
	ON CONFLICT (order_id) DO UPDATE SET state = 'pending', version = s.version + 1,
		attempts = 0, next_attempt_at = now(), queued_at = now(), updated_at = now(),
		verify_due_at = NULL, verify_attempts = 0, verify_result = NULL, verified_at = NULL,
		verified_version = NULL, verify_version = NULL;
	-- 1.2 on: their due hints, as the queue writes them (the insert above,
	-- not the queue's own, made the worker's marker go: it is put back)
	IF to_regclass('shopping_upload.due') IS NOT NULL THEN
		EXECUTE 'DELETE FROM shopping_upload.due WHERE kind = ''s'''
			' OR (kind = ''v'' AND order_id BETWEEN $1 AND $2)' USING first, last;
		EXECUTE 'INSERT INTO shopping_upload.due AS h (kind, order_id, at)'
			' SELECT ''o'', order_id, now() FROM shopping_upload.orders WHERE order_id BETWEEN $1 AND $2'
			' ON CONFLICT (kind, order_id) DO UPDATE SET at = EXCLUDED.at' USING first, last;
		EXECUTE 'INSERT INTO shopping_upload.due VALUES (''*'', 0, now()) ON CONFLICT DO NOTHING';
	END IF;
	IF ship THEN
		-- queued by the trigger at commit, as a merchant's write would
		UPDATE shopping_upload.shippings SET updated_at = now()
		 WHERE order_id BETWEEN first AND last;
	END IF;
	PERFORM shopping_upload.enqueue(first);
	COMMIT;
	t0 := clock_timestamp();
	LOOP
		SELECT (SELECT count(*) FROM shopping_upload.order_state
				 WHERE state <> 'uploaded' OR (verify AND verified_at IS NULL))
			 + (SELECT count(*) FROM shopping_upload.shipping_state WHERE state <> 'uploaded')
		  INTO left_over;
		t1 := clock_timestamp();
		COMMIT;
		EXIT WHEN left_over = 0 OR t1 - t0 > make_interval(secs => timeout_s);
		PERFORM pg_sleep(0.05);
	END LOOP;
	seconds := extract(epoch FROM t1 - t0);
END
$$;
/*
 * The same for the order shipping management service: every shipment of
 * first..last written again in one transaction (queued for both services),
 * then polled until both accepted each and the worker's get_order of it is
 * in.
 */
CREATE PROCEDURE bench.run_trade(first bigint, last bigint, timeout_s float8,
	INOUT seconds float8 DEFAULT NULL, INOUT left_over bigint DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz;
	t1 timestamptz;
BEGIN
	DELETE FROM shopping_upload.trade_state;
	DELETE FROM shopping_upload.due WHERE kind IN ('t', 'g', 'c');
	UPDATE shopping_upload.shippings SET updated_at = now()
	 WHERE order_id BETWEEN first AND last;
	COMMIT;
	t0 := clock_timestamp();
	LOOP
		SELECT (SELECT count(*) FROM shopping_upload.shipping_state WHERE state <> 'uploaded')
			 + (SELECT count(*) FROM shopping_upload.trade_state
				 WHERE state <> 'uploaded' OR checked_at IS NULL)
			 + (last - first + 1 - (SELECT count(*) FROM shopping_upload.trade_state))
		  INTO left_over;
		t1 := clock_timestamp();
		COMMIT;
		EXIT WHEN left_over = 0 OR t1 - t0 > make_interval(secs => timeout_s);
		PERFORM pg_sleep(0.05);
	END LOOP;
	seconds := extract(epoch FROM t1 - t0);
END
$$;
SQL
say "making $ORDERS orders of 3 items, each with one shipment (auto_upload off)"
psql_db -v n="$ORDERS" -v first=1 -f "$here/bench/orders.sql" </dev/null
psql_db <<SQL
SET shopping_upload.auto_upload = off;
INSERT INTO shopping_upload.shippings (order_id, delivery_mode)
SELECT g, 1 FROM generate_series(1, $ORDERS) g;
INSERT INTO shopping_upload.shipments (order_id, shipment_no, tracking_no, express_company, receiver_contact)
SELECT g, 0, 'SF' || lpad(g::text, 12, '0'), 'SF', '139****5678' FROM generate_series(1, $ORDERS) g;
SQL
# warm-up: the token, the connections, the plans
psql_db -c "CALL bench.run(1, 200, true, false, $TIMEOUT)" >/dev/null
worker_pid=$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker'")
clk=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$worker_pid/stat"; }

configs=(orders orders+shipments "full loop" "trade shipments")
declare -A rates cpus
rc=0
for r in $(seq 0 $((RUNS - 1))); do
	for k in 0 1 2 3; do
		c=$(((k + r) % 4))
		name=${configs[$c]}
		ship=$([ "$c" -ge 1 ] && echo true || echo false)
		verify=$([ "$c" = 2 ] && echo true || echo false)
		trade=$([ "$c" = 3 ] && echo on || echo off)
		as_pg "$PG_BIN/psql" -h "$work" -U postgres -d postgres -X -q \
			-c "ALTER SYSTEM SET shopping_upload.verify_delay = '$([ "$verify" = true ] && echo 1s || echo 0)'" \
			-c "ALTER SYSTEM SET shopping_upload.trade_managed = $trade" -c 'SELECT pg_reload_conf()' >/dev/null
		q 'VACUUM' >/dev/null
		q 'CHECKPOINT' >/dev/null
		sleep 0.5
		t0=$(cpu_ticks)
		if [ "$c" = 3 ]; then
			IFS='|' read -r secs left <<<"$(q "CALL bench.run_trade(1, $ORDERS, $TIMEOUT)")"
		else
			IFS='|' read -r secs left <<<"$(q "CALL bench.run(1, $ORDERS, $ship, $verify, $TIMEOUT)")"
		fi
		t1=$(cpu_ticks)
		if [ "$left" != 0 ]; then
			echo "  FAILED: $name run $((r + 1)): $left left after ${secs}s" >&2
			rc=1
			continue
		fi
		rate=$(awk -v n="$ORDERS" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
		cpu=$(awk -v t=$((t1 - t0)) -v hz="$clk" -v n="$ORDERS" 'BEGIN { printf "%.0f", t / hz * 1e6 / n }')
		rates[$c]+="$rate "
		cpus[$c]+="$cpu "
		say "$name, run $((r + 1)): $(printf '%.2f' "$secs") s, $rate orders/s, worker CPU $cpu µs per order"
	done
done
stats() { printf '%s\n' "$@" | LC_ALL=C sort -g | LC_ALL=C awk '{ v[NR] = $1 }
	END { if (NR) print v[1], (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2, v[NR] }'; }
echo
echo "| $ORDERS orders, $RUNS runs | orders/s min / median / max | worker CPU µs per order, median | rate against orders alone |"
echo "|---|---|---|---|"
read -r _ base _ <<<"$(stats ${rates[0]:-0})"
for c in 0 1 2 3; do
	read -r mn md mx <<<"$(stats ${rates[$c]:-0})"
	read -r _ cm _ <<<"$(stats ${cpus[$c]:-0})"
	ratio=$(awk -v a="$md" -v b="$base" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')
	echo "| ${configs[$c]} | $mn / $md / $mx | $cm | $ratio |"
done
exit "$rc"
