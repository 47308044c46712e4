#!/usr/bin/env bash
# Usage: bash bench/worker.sh [-h]     (as root; about 11 minutes on 2 cores, 17 with pg_net)
#
# The upload worker against a local nginx that answers like WeChat at once:
# uploads per second from a backlog against what wrk gets from the same nginx,
# the worker's CPU per upload, commit-to-request latency over every order at
# 200 orders/s, the cost of the queueing triggers on inserts, the worker's
# memory.  A benchmark: it prints figures and a summary against targets.  It
# exits 1 (after printing everything) when an order of the 200 orders/s run
# never reached nginx, or when a run's own checks fail (an order not
# uploaded, queued when it should not be, ...): its figures would not count.
#
# Environment (for quick trials; the defaults are the benchmark):
#   BACKLOG=50000     orders in each backlog (part 1, 3 runs; memory read
#                     after 2 of them); at least 200
#   WRK_SECONDS=10    length of the wrk run (part 1)
#   LAT_SECONDS=20    length of the 200 orders/s run (part 2)
#   TPS_RUNS=5        runs of each insert throughput configuration (part 3)
#   TPS_SECONDS=30    length of each of those runs
#   NGINX_WORKERS=    nginx worker_processes; default: the number of cores
#   TIMEOUT=150       seconds a backlog or a drain may take before giving up
#   PG_BIN=/usr/lib/postgresql/NN/bin   the PostgreSQL (and extension) to measure
#   BENCH_CONF="..."  lines added to postgresql.conf, to compare settings
#                     (BENCH_CONF="shopping_upload.audit_request = 'all'")
#   BENCH_LEGACY_SECRET=1   also set shopping_upload.secret in postgresql.conf,
#                     for builds before secret_file (1.0), to compare them
#   SWEEP_RATES="50 100 200 400 800"   steady rates of part 2b ("" skips it)
#   SWEEP_SECONDS=10  length of each of those runs
#   PG_NET=auto       part 5 (pg_net measured the same way) runs when pg_net is
#                     installed for PG_BIN; 0 skips it, 1 requires it
#   PG_NET_BATCHES="1000 2500 5000 10000"   pg_net.batch_size values tried
#   BENCH_PERF=1      profile the worker with perf (linux-perf, installed
#                     when missing) during the last backlog run, and during
#                     10 s more at 200 orders/s after part 2 (in no figure):
#                     perf-backlog.txt and perf-200.txt in BENCH_OUT
#   BENCH_OUT=bench/out-<YYYYmmdd-HHMMSS>   the folder (made if missing) for
#                     the pictures and the data files they are drawn from;
#                     by default a new one in the repository's bench/ for each
#                     run (bench/.gitignore keeps them out of git)
#
# Method.  A throwaway cluster runs as the "postgres" OS user in a mktemp -d
# folder (Unix socket there, listen_addresses = ''), with
# shared_preload_libraries = 'shopping_upload', the worker serving database
# "bench", shared_buffers = 1GB, max_wal_size = 4GB, track_commit_timestamp =
# on, durability settings left at their defaults (fsync, synchronous_commit
# on, shopping_upload.verify_delay = 0: the uploads alone, bench/followup.sh
# measures shipments and verifies).  nginx (NGINX_WORKERS worker processes, as many as cores by default,
# for every part; keep-alive for 10^6 requests; access_log off) runs with its
# own configuration in that folder, on 127.0.0.1 only:
#   port A answers POST /cgi-bin/stable_token with
#     {"access_token":"benchtoken","expires_in":7200} and
#     POST /user-order/orders with {"errcode":0,"errmsg":"ok"} (return 200);
#   port B (part 2 only) proxies /user-order/orders to port C, which returns
#     the same answer, and logs "$msec $request_time $request_body" for each
#     request (the body is only known to the log when nginx reads it).
# Long-running children (pgbench, wrk) run in the background and are waited
# for, so that a signal stops the script at once.  nginx, the cluster, those
# children and the folder are stopped and removed on exit, whatever happens.
#
# 1. Uploads per second: BACKLOG orders of 3 items are made with
#    bench/orders.sql (auto_upload off: nothing queued), then queued in one
#    transaction (INSERT INTO order_state ... SELECT FROM orders, upserting as
#    su_queue_order() does, so later runs re-queue them with version + 1;
#    then enqueue(1), which wakes the worker at commit).  Timed inside the
#    server from the return of that COMMIT until
#    count(*) WHERE state <> 'uploaded' is 0, polled every 50 ms; audit must
#    then hold BACKLOG new rows, errcode 0, one per order.  3 runs (VACUUM and
#    CHECKPOINT before each): min, median, max.  Worker CPU per upload:
#    utime + stime of /proc/<worker pid>/stat before and after each run (the
#    whole process, clock ticks of 1/CLK_TCK s), over BACKLOG.
#    The HTTP ceiling: wrk -t<cores> -c<max_inflight> -d WRK_SECONDS POSTing
#    one 3-item payload (build_payload(1)) to the same nginx (same worker
#    processes, same answer), the worker idle; the ratio median uploads/s ÷
#    wrk requests/s.
# 1b. Where the worker's WAL goes (pg_walinspect, contrib, PostgreSQL 15 or
#    later; skipped without it): the last backlog run of part 1 returns the
#    WAL insert position just after its queueing transaction's commit and at
#    the end of its drain; a physical replication slot keeps that WAL until
#    pg_get_wal_records_info(start, end) has read it.  Each record counts for the relation of its first block (the
#    "rel spc/db/relfilenode" of its block_ref, the same text in 15 to 18;
#    pg_filenode_relation() names it), 'commit' for a Transaction record
#    without blocks, 'other' for any other.  Records, bytes (record_length,
#    full-page images included) and full-page image bytes per order of the
#    backlog, and the share of the bytes: each relation of 1% or more, then
#    its record types of 1% or more; the rest summed.  The window holds the
#    worker's records and whatever else ran meanwhile (the polling's page
#    pruning, an autovacuum), not the queueing transaction.
# 2. Latency: pgbench -n -R 200 -T LAT_SECONDS -c 4 runs a script that
#    inserts one order (1 sub-order, 3 items) per transaction with plain
#    INSERTs, auto_upload on, the worker pointed at port B; then the queue is
#    drained (up to TIMEOUT s).  Arrival of a request at nginx = $msec -
#    $request_time (when nginx read its first byte; millisecond resolution);
#    commit = pg_xact_commit_timestamp(xmin) of the orders row.  Every order
#    committed by the run counts: one whose out_trade_no is in no request
#    logged at port B is lost, its latency infinite.  p50, p99 (nearest rank,
#    percentile_disc: an observed value or "lost") and max in ms, over all of
#    them; the lost are counted and listed.  Worker CPU per upload at this
#    steady rate, one order per commit: utime + stime from just before
#    pgbench to the end of the drain, over the errcode-0 audit rows written
#    meanwhile.
# 2b. Where the CPU goes at steady rates: pgbench -n -R <rate> -T
#    SWEEP_SECONDS -c 4, the same script, for each rate of SWEEP_RATES (worker
#    on port A), then a drain; the worker's CPU from just before pgbench to
#    the end of the drain, and the errcode-0 audit rows written.  A least
#    squares line through (uploads/s, CPU per second) splits the CPU into a
#    part that does not depend on the rate (the rounds: one every
#    claim_interval while orders come) and a part per upload.
# 3. Insert throughput: the same script, pgbench -n -c 2 -T TPS_SECONDS, in
#    three configurations, TPS_RUNS runs of each, interleaved (run r starts
#    with configuration r mod 3), VACUUM and CHECKPOINT of the run's
#    database before each run:
#      disabled:   database bench, ALTER TABLE shopping_upload.orders,
#                  sub_orders and items DISABLE TRIGGER queue_order for the
#                  run (the baseline: the tables as if without the extension;
#                  checked: nothing queued);
#      on:         database bench, triggers on, the worker uploading every
#                  order meanwhile (checked after a drain: every order
#                  inserted uploaded, errcode 0);
#      no worker:  database bench_noworker, the same extension and the same
#                  BACKLOG orders loaded, triggers on, served by no worker
#                  (the triggers' own cost; checked: every order queued).
#    min, median, max tps of each, and the median's % against the median of
#    "disabled".  The worker's CPU is reported for "on" (per upload) and
#    "no worker" (% of a core).
# 4. Memory: /proc/<worker pid>/status RssAnon (private memory; VmRSS also
#    counts the shared buffers it touched) and VmRSS after a 200-order
#    warm-up, before the first backlog, and after the 2nd and 3rd backlogs.
# 5. pg_net (supabase/pg_net, not packaged by Debian: build it from its
#    source with make install against PG_BIN's pg_config), when installed:
#    preloaded in the same cluster, its worker serving database bench_pgnet,
#    the same nginx and the same 3-item payload.  Backlog: BACKLOG calls of
#    net.http_post() to port A in one transaction, timed from the return of
#    COMMIT until net._http_response holds all BACKLOG answers (polled every
#    50 ms; valid only if all are status 200), RUNS runs for each
#    pg_net.batch_size of PG_NET_BATCHES (its worker takes that many requests,
#    then waits for the next batch); its worker's CPU per request.  The best
#    batch size's median counts.  Latency and CPU at 200 requests/s: as in
#    part 2 (port B), pgbench -R 200 -c 4 running a script that inserts a row
#    into bench.sent and calls net.http_post() with the payload, its
#    out_trade_no made unique, in one transaction (commit = that row's
#    commit timestamp), pg_net.batch_size at its default.
# 6. The backlog of part 1 with 1 and 2 workers for the database
#    (shopping_upload.workers_per_database set by ALTER SYSTEM and a reload,
#    waited for in pg_stat_activity), RUNS runs of each, interleaved (odd runs
#    1 then 2 workers, even runs 2 then 1); CPU per upload summed over the
#    workers' processes; the ratio of the medians.  On a 2-core machine nginx
#    and PostgreSQL share the cores with the workers: the gain is bounded.
# The end: one summary table in markdown, then the paths of the pictures.
# Pictures (gnuplot, from Debian's gnuplot-nox, installed when missing;
# without it only the data files are written), in BENCH_OUT, each beside its
# data file and the gnuplot script that draws it (cd BENCH_OUT; gnuplot
# NAME.gp draws NAME.png again):
#   latency_200.png   part 2: the share of the orders whose request was at
#                     nginx within x ms of the commit (a CDF, p50 and p99
#                     marked; lost orders count in the denominator only);
#                     latency_200.dat.  latency_200_pgnet.png: the same for
#                     part 5's pg_net beside it, on a log scale
#                     (latency_200_pgnet.dat)
#   cpu_rate.png      part 2b: the worker's CPU per upload against uploads a
#                     second, with the least squares curve; part 2's point
#                     and pg_net's at 200/s when part 5 ran (cpu_sweep.dat,
#                     cpu_200.dat, cpu_200_pgnet.dat); not drawn without 2b
#   wal_split.png     part 3: WAL per order, the merchant's, the trigger's
#                     and the worker's, stacked (wal_split.dat);
#                     shopping_upload only: part 5 measures no WAL for pg_net
#   wal_worker_by_relation.csv   part 1b's table, every row
set -euo pipefail

# the major this Debian suite ships (scripts/pg_major.sh), unless PG_BIN is set
PG_BIN=${PG_BIN:-/usr/lib/postgresql/$(. "$(dirname "$0")/../scripts/pg_major.sh" && su_pg_major)/bin}
CORES=$(nproc)
BACKLOG=${BACKLOG:-50000}
WRK_SECONDS=${WRK_SECONDS:-10}
LAT_SECONDS=${LAT_SECONDS:-20}
TPS_RUNS=${TPS_RUNS:-5}
TPS_SECONDS=${TPS_SECONDS:-30}
NGINX_WORKERS=${NGINX_WORKERS:-$CORES}
TIMEOUT=${TIMEOUT:-150}
RUNS=3							# backlog runs
LAT_RATE=200
LAT_CLIENTS=4
TPS_CLIENTS=2
WARMUP=200

case ${1:-} in
	-h | --help)
		awk 'NR > 1 { if (/^# Method\./) exit; print }' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
		exit 0
		;;
	'') ;;
	*)
		echo "usage: bash bench/worker.sh [-h]   (settings through BACKLOG, WRK_SECONDS, LAT_SECONDS, TPS_RUNS, TPS_SECONDS, NGINX_WORKERS, TIMEOUT, SWEEP_RATES, SWEEP_SECONDS, PG_NET, PG_NET_BATCHES, BENCH_OUT, BENCH_CONF, BENCH_LEGACY_SECRET, BENCH_PERF)" >&2
		exit 2
		;;
esac
if [ -n "${TPS_ROUNDS:-}" ]; then
	echo "worker.sh: TPS_ROUNDS is now TPS_RUNS (runs of each configuration)" >&2
	exit 2
fi
SWEEP_RATES=${SWEEP_RATES-50 100 200 400 800}
SWEEP_SECONDS=${SWEEP_SECONDS:-10}
for r in $SWEEP_RATES; do
	[[ $r =~ ^[1-9][0-9]{0,4}$ ]] || { echo "worker.sh: SWEEP_RATES must be positive integers" >&2; exit 2; }
done
for v in BACKLOG WRK_SECONDS LAT_SECONDS TPS_RUNS TPS_SECONDS NGINX_WORKERS TIMEOUT SWEEP_SECONDS; do
	if ! [[ ${!v} =~ ^[1-9][0-9]{0,6}$ ]]; then
		echo "worker.sh: $v must be a positive integer" >&2
		exit 2
	fi
done
if [ "$BACKLOG" -lt "$WARMUP" ]; then
	echo "worker.sh: BACKLOG must be at least $WARMUP" >&2
	exit 2
fi
case ${PG_NET:=auto} in auto | 0 | 1) ;; *) echo "worker.sh: PG_NET must be auto, 0 or 1" >&2; exit 2 ;; esac
PG_NET_BATCHES=${PG_NET_BATCHES:-1000 2500 5000 10000}
for b in $PG_NET_BATCHES; do
	[[ $b =~ ^[1-9][0-9]{0,5}$ ]] || { echo "worker.sh: PG_NET_BATCHES must be positive integers" >&2; exit 2; }
done
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
if [ -n "${BENCH_PERF:-}" ] && ! command -v perf >/dev/null; then
	echo "worker.sh: installing linux-perf (BENCH_PERF)" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends linux-perf >/dev/null
fi
# the pictures: gnuplot draws them (without it, only the data files are written)
if ! command -v gnuplot >/dev/null; then
	echo "worker.sh: installing gnuplot-nox (the pictures)" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends gnuplot-nox >/dev/null 2>&1 ||
		{ DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null 2>&1 &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends gnuplot-nox >/dev/null 2>&1; } ||
		echo "worker.sh: gnuplot-nox did not install: the data files are written, not the pictures" >&2
fi
GNUPLOT=$(command -v gnuplot || true)
BENCH_OUT=${BENCH_OUT:-$here/bench/out-$(date +%Y%m%d-%H%M%S)}
if ! mkdir -p "$BENCH_OUT" || ! BENCH_OUT=$(cd "$BENCH_OUT" && pwd); then
	echo "worker.sh: cannot make the folder BENCH_OUT=$BENCH_OUT" >&2
	exit 1
fi
# an earlier run's files there would be drawn again as this run's
for f in latency_200 latency_200_pgnet cpu_rate cpu_sweep cpu_200 cpu_200_pgnet wal_split; do
	rm -f "$BENCH_OUT/$f.png" "$BENCH_OUT/$f.gp" "$BENCH_OUT/$f.dat"
done
rm -f "$BENCH_OUT/wal_worker_by_relation.csv"
walinspect=
if [ -f "$("$PG_BIN/pg_config" --sharedir)/extension/pg_walinspect.control" ]; then
	walinspect=yes				# part 1b (and PostgreSQL 15 or later)
fi
pg_net=
if [ "$PG_NET" != 0 ] && [ -f "$("$PG_BIN/pg_config" --pkglibdir)/pg_net.so" ] &&
	[ -f "$("$PG_BIN/pg_config" --sharedir)/extension/pg_net.control" ]; then
	pg_net=yes
elif [ "$PG_NET" = 1 ]; then
	echo "worker.sh: PG_NET=1, but pg_net is not installed for $PG_BIN (git clone https://github.com/supabase/pg_net; make install PG_CONFIG=$PG_BIN/pg_config)" >&2
	exit 1
fi
id postgres >/dev/null 2>&1 || { echo "worker.sh: no postgres OS user" >&2; exit 1; }
NGINX=$(command -v nginx)
WRK=$(command -v wrk)

as_pg() { runuser -u postgres -- "$@"; }
# setpriv, not runuser: it execs (the pid is the program's, for run_child),
# and runuser's PAM session (pam_limits) would reset the open files limit
AS_PG_EXEC=(setpriv --reuid=postgres --regid=postgres --init-groups --reset-env)

start_seconds=$SECONDS
say() { printf '[%3ds] %s\n' $((SECONDS - start_seconds)) "$*"; }

work=
nginx_pid=
child=
perf_pid=
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	[ -n "$perf_pid" ] && kill -INT "$perf_pid" 2>/dev/null || true
	if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
		kill -TERM "$child" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$child" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$child" 2>/dev/null || true
	fi
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
				echo "worker.sh: exit $rc; end of the server log:" >&2
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

# perf_start NAME / perf_stop NAME: perf on the worker (BENCH_PERF) between
# the two; perf-NAME.txt in BENCH_OUT, self time by symbol
perf_start() {
	perf record -F 4999 -g -p "$wpid" -o "$BENCH_OUT/perf-$1.data" >/dev/null 2>&1 &
	perf_pid=$!
}
perf_stop() {
	kill -INT "$perf_pid" 2>/dev/null || true
	wait "$perf_pid" 2>/dev/null || true
	perf_pid=
	perf report -i "$BENCH_OUT/perf-$1.data" --no-children --stdio --sort dso,symbol \
		>"$BENCH_OUT/perf-$1.txt" 2>/dev/null || true
}

# run_child OUT PROGRAM [ARG...]: runs PROGRAM (not a shell function) in the
# background, output to OUT, and waits for it: a signal interrupts the wait,
# and cleanup stops the child.  Returns its exit status.
run_child() {
	local out=$1 rc=0
	shift
	"$@" </dev/null >"$out" 2>&1 &
	child=$!
	wait "$child" || rc=$?
	child=
	return "$rc"
}

work=$(mktemp -d /tmp/su-wbench.XXXXXX)
chmod 755 "$work"
chown postgres "$work"
cd "$work"						# a folder the cluster user can read
# many connections in flight: as many files as allowed (65536 if the hard limit allows)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
nofile=$(ulimit -n)

failures=()						# reported at the end; the exit status is then 1
fail() { failures+=("$*"); echo "  FAILED: $*"; }

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
worker_processes $NGINX_WORKERS;
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
nginx_version=$("$NGINX" -v 2>&1 | sed 's|.*/||')
answer=$(curl -s -X POST -d '{}' "$api_a/user-order/orders?access_token=x" 2>/dev/null || true)
say "nginx $nginx_version, worker_processes $NGINX_WORKERS ($CORES cores): $api_a (answers), $api_b (logs arrivals, proxies to :$PORT_C)${answer:+; answer: $answer}"

# ---------------------------------------------------------------------------
# The throwaway cluster
# ---------------------------------------------------------------------------
as_pg "$PG_BIN/initdb" -D "$work/data" -U postgres -A trust -E UTF8 \
	--locale=C.UTF-8 >"$work/initdb.log" 2>&1 ||
	{ cat "$work/initdb.log" >&2; exit 1; }
# the secret lives in a file only the server's user can read
printf 'benchsecret\n' >"$work/app_secret"
chmod 600 "$work/app_secret"
chown postgres "$work/app_secret"
cat >>"$work/data/postgresql.conf" <<CONF
# bench/worker.sh
listen_addresses = ''
unix_socket_directories = '$work'
max_connections = 50
shared_preload_libraries = 'shopping_upload${pg_net:+,pg_net}'
shopping_upload.databases = 'bench'
${pg_net:+pg_net.database_name = 'bench_pgnet'}
shopping_upload.api_base_url = '$api_a'
shopping_upload.appid = 'wxtestappid'
shopping_upload.secret_file = '$work/app_secret'
${BENCH_LEGACY_SECRET:+shopping_upload.secret = 'benchsecret'}
shopping_upload.allow_insecure_http = on
shopping_upload.verify_delay = 0	# uploads only: bench/followup.sh measures verifies
timezone = 'Asia/Shanghai'
shared_buffers = 1GB
max_wal_size = 4GB
track_commit_timestamp = on
${BENCH_CONF:-}
CONF
"${AS_PG_EXEC[@]}" "$PG_BIN/pg_ctl" -D "$work/data" -l "$work/server.log" -w -t 60 start >/dev/null

psql_db() {						# psql_db DB [psql options]
	local db=$1
	shift
	as_pg "$PG_BIN/psql" -h "$work" -U postgres -d "$db" -X -q -v ON_ERROR_STOP=1 "$@"
}
q() {							# q DB SQL: one unaligned result
	psql_db "$1" -At -F '|' -c "$2" </dev/null
}
# qw DB SQL: the same, for long calls, as a child waited for; the result in
# $QW (not through $(...): a subshell would delay the signal traps)
QW=
qw() {
	QW=
	run_child "$work/qw.out" "${AS_PG_EXEC[@]}" "$PG_BIN/psql" -h "$work" -U postgres -d "$1" \
		-X -q -v ON_ERROR_STOP=1 -At -F '|' -c "$2" || { cat "$work/qw.out" >&2; return 1; }
	QW=$(cat "$work/qw.out")
}

pg_version=$(q postgres 'SHOW server_version')
postmaster_pid=$(head -n 1 "$work/data/postmaster.pid")
pg_nofile=$(awk '/Max open files/ { print $4 }' "/proc/$postmaster_pid/limits")
say "PostgreSQL $pg_version in $work (postmaster $postmaster_pid, open files limit $pg_nofile)"

q postgres 'CREATE DATABASE bench' >/dev/null
q postgres 'CREATE DATABASE bench_noworker' >/dev/null
if [ -n "$pg_net" ]; then
	q postgres 'CREATE DATABASE bench_pgnet' >/dev/null
	psql_db bench_pgnet <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION pg_net;
CREATE SCHEMA bench;
CREATE SEQUENCE bench.sent_seq;
CREATE TABLE bench.sent (n bigint PRIMARY KEY, out_trade_no text NOT NULL);

/*
 * n calls of net.http_post(url, body) in one transaction; then polls every
 * 50 ms until net._http_response holds n answers (or timeout_s).  Seconds
 * from the return of COMMIT; answers; answers with status 200.
 */
CREATE PROCEDURE bench.pgnet_backlog(url text, body jsonb, n int, timeout_s float8,
	INOUT seconds float8 DEFAULT NULL, INOUT done bigint DEFAULT NULL,
	INOUT ok bigint DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
	first bigint;
	t0 timestamptz;
BEGIN
	TRUNCATE net._http_response;
	SELECT CASE WHEN is_called THEN last_value ELSE 0 END INTO first
	  FROM net.http_request_queue_id_seq;
	PERFORM net.http_post(url, body) FROM generate_series(1, n);
	COMMIT;
	t0 := clock_timestamp();
	LOOP
		SELECT count(*), count(*) FILTER (WHERE status_code = 200) INTO done, ok
		  FROM net._http_response WHERE id > first;
		EXIT WHEN done >= n OR clock_timestamp() - t0 > make_interval(secs => timeout_s);
		COMMIT;
		PERFORM pg_sleep(0.05);
	END LOOP;
	seconds := extract(epoch FROM clock_timestamp() - t0);
END
$$;
SQL
fi

# objects both databases use: the insert script's sequence; the polling
# procedures (they COMMIT between polls, as separate transactions would)
for db in bench bench_noworker; do
	psql_db "$db" <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION shopping_upload;
CREATE SCHEMA bench;
CREATE SEQUENCE bench.order_id_seq START 100000001;

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
	psql_db "$db" -q -f "$here/bench/backlog.sql" </dev/null
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

# pgbench_run OUT DB [pgbench options]: the insert script against DB
pgbench_run() {
	local out=$1 db=$2
	shift 2
	run_child "$out" "${AS_PG_EXEC[@]}" "$PG_BIN/pgbench" -h "$work" -U postgres -n \
		-f "$work/insert_order.sql" "$@" "$db"
}
pgbench_tps() { awk '/^tps = / { print $3; exit }' "$1"; }

worker_pid() {					# the first worker (the oldest)
	q bench "SELECT pid FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker' ORDER BY backend_start LIMIT 1"
}
worker_pids() {					# every worker of the database
	q bench "SELECT pid FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker' ORDER BY backend_start"
}
# set_workers N: shopping_upload.workers_per_database = N, and waits for them
set_workers() {
	psql_db bench -q -c "ALTER SYSTEM SET shopping_upload.workers_per_database = $1" -c 'SELECT pg_reload_conf()' </dev/null >/dev/null
	for _ in $(seq 300); do
		[ "$(q bench "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker'")" = "$1" ] && return 0
		sleep 0.1
	done
	echo "worker.sh: $1 workers did not start" >&2
	exit 1
}
mem_kb() {						# mem_kb PID FIELD
	awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}
cpu_ticks() {					# user + system clock ticks of PID (all its threads)
	awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
clk_tck=$(getconf CLK_TCK)
now_s() { date +%s.%N; }
# drain DB: waits for the queue to empty; 1 (and what is left) if it does not
drain() {
	local left stuck secs
	qw "$1" "CALL bench.drain($TIMEOUT)"
	IFS='|' read -r left stuck secs <<<"$QW"
	if [ "$left" != 0 ]; then
		say "queue of $1 not drained after ${secs%.*} s: $left orders left ($stuck rejected/dead/held)"
		q "$1" "SELECT state, last_errcode, last_errmsg, count(*) FROM shopping_upload.order_state
		         WHERE state <> 'uploaded' GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 5" | sed 's/^/    /'
		return 1
	fi
}
fmt() { LC_ALL=C printf "%.${2:-1}f" "$1"; }
calc() { LC_ALL=C awk "BEGIN { print $* }"; }
outputs=()						# the files written to BENCH_OUT, listed at the end
save_dat() {					# save_dat NAME COMMENT <DATA: BENCH_OUT/NAME, '# COMMENT' first
	{ printf '# %s\n' "$2"; cat; } >"$BENCH_OUT/$1"
	outputs+=("$BENCH_OUT/$1")
}
stats() {						# stats V...: "min median max"
	printf '%s\n' "$@" | LC_ALL=C sort -g | LC_ALL=C awk '{ v[NR] = $1 }
		END { if (NR) print v[1], (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2, v[NR] }'
}
int() {							# int V: rounded, with thousands separators
	LC_ALL=C awk -v x="$1" 'BEGIN {
		s = sprintf("%.0f", x); sign = ""
		if (s ~ /^-/) { sign = "-"; s = substr(s, 2) }
		out = ""
		while (length(s) > 3) { out = "," substr(s, length(s) - 2) out; s = substr(s, 1, length(s) - 3) }
		print sign s out }'
}
pct() { LC_ALL=C awk -v x="$1" 'BEGIN { printf "%+.1f%%", x }'; }	# pct V: +1.2%
mmm() {							# mmm MIN MED MAX: "min / median / max" as integers
	printf '%s / %s / %s' "$(int "$1")" "$(int "$2")" "$(int "$3")"
}

# latency DB ORDERS LOST: the requests logged at port B against ORDERS, a
# query of DB giving (order_id, out_trade_no, committed) for every order of
# the run; lost ones (no request at nginx) count as infinitely late;
# nearest-rank percentiles over all of them.  $work/latency.out gets a
# 'figures' line and LOST's lines (a query of temp table latency); $logged
# the requests logged; $work/latency_cdf.tsv each order that arrived, in
# order: ms, and the share of all the orders (the lost ones too) at or
# below it (the pictures).
latency() {
	local db=$1 orders=$2 lost=$3
	sleep 0.2					# nginx writes its log line after the answer
	sed -nE 's/^([0-9]+\.[0-9]+) ([0-9]+\.[0-9]+) .*out_trade_no\\": ?\\"([^\\"]+)\\".*$/\1\t\2\t\3/p' \
		"$work/nginx/arrivals.log" >"$work/arrivals.tsv"
	chmod 644 "$work/arrivals.tsv"
	logged=$(wc -l <"$work/nginx/arrivals.log")
	psql_db "$db" -At -F '|' >"$work/latency.out" <<SQL
CREATE TEMP TABLE arrivals (msec numeric, request_time numeric, out_trade_no text);
\copy arrivals FROM '$work/arrivals.tsv'
CREATE TEMP TABLE latency AS
WITH o AS ($orders),
a AS (
	SELECT out_trade_no, min(msec - request_time) AS arrived, count(*) AS requests
	  FROM arrivals GROUP BY out_trade_no)
SELECT o.order_id, o.out_trade_no, a.requests,
	   CASE WHEN a.arrived IS NULL THEN 'Infinity'::float8
			ELSE ((a.arrived - extract(epoch FROM o.committed)) * 1000)::float8 END AS ms
  FROM o LEFT JOIN a USING (out_trade_no);
CREATE FUNCTION pg_temp.ms(float8) RETURNS text LANGUAGE sql
	AS \$\$ SELECT CASE WHEN \$1 = 'Infinity' THEN 'lost' ELSE round(\$1::numeric, 1)::text END \$\$;
SELECT 'figures', count(*), count(*) FILTER (WHERE requests IS NULL),
	   count(*) FILTER (WHERE requests > 1),
	   (SELECT count(*) FROM arrivals) - coalesce(sum(requests), 0),
	   pg_temp.ms(percentile_disc(0.5) WITHIN GROUP (ORDER BY ms)),
	   pg_temp.ms(percentile_disc(0.99) WITHIN GROUP (ORDER BY ms)),
	   pg_temp.ms(max(ms)), pg_temp.ms(min(ms))
  FROM latency;
$lost;
\copy (SELECT ms, n::float8 / total FROM (SELECT ms, row_number() OVER (ORDER BY ms) AS n, count(*) OVER () AS total FROM latency) s WHERE ms < 'Infinity' ORDER BY ms) TO '$work/latency_cdf.tsv'
SQL
}

# ---------------------------------------------------------------------------
# Orders, warm-up
# ---------------------------------------------------------------------------
say "making $BACKLOG orders of 3 items with bench/orders.sql (auto_upload off), in bench and bench_noworker"
for db in bench bench_noworker; do
	psql_db "$db" -v n="$BACKLOG" -v first=1 -f "$orders_sql" </dev/null
	psql_db "$db" -c 'VACUUM ANALYZE' </dev/null
	q "$db" "SELECT setval('bench.order_id_seq', greatest(100000000, (SELECT max(order_id) FROM shopping_upload.orders)))" >/dev/null
done
max_inflight=$(q bench 'SHOW shopping_upload.max_inflight')
payload=$(q bench 'SELECT shopping_upload.build_payload(1)::text')

for _ in $(seq 100); do
	wpid=$(worker_pid)
	[ -n "$wpid" ] && break
	sleep 0.1
done
[ -n "$wpid" ] || { echo "worker.sh: no shopping_upload worker is running in database bench" >&2; exit 1; }
say "worker pid $wpid; warm-up: $WARMUP orders queued and uploaded"
qw bench "CALL bench.backlog(1, $WARMUP, 30)"
IFS='|' read -r secs left stuck t0 _ <<<"$QW"
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
restarts=
check_worker() {				# notes a worker restart; wpid becomes the new one
	local now
	now=$(worker_pid)
	if [ "$now" != "$wpid" ]; then
		restarts="${restarts:+$restarts; }worker restarted (pid $wpid -> ${now:-none})"
		fail "the worker restarted (pid $wpid -> ${now:-none}): the CPU and memory figures around it are not valid"
		wpid=$now
	fi
}

# ---------------------------------------------------------------------------
# 1. A backlog, queue to audit (and 4. memory); the HTTP ceiling
# ---------------------------------------------------------------------------
echo
echo "== 1. Sustained uploads: a backlog of $BACKLOG orders (3 items), $RUNS runs"
rates=()
backlog_cpus=()
wal_slot='' wal0='' wal1=''
pg_vnum=$(q postgres 'SHOW server_version_num')
[ "$pg_vnum" -ge 150000 ] || walinspect=''
for run in $(seq "$RUNS"); do
	psql_db bench -c 'VACUUM ANALYZE shopping_upload.order_state' -c 'CHECKPOINT' </dev/null
	if [ "$run" = "$RUNS" ] && [ -n "$walinspect" ]; then
		# part 1b reads this run's WAL afterwards: a slot keeps it from a checkpoint
		q bench "SELECT 1 FROM pg_create_physical_replication_slot('su_bench_walinspect', true)" >/dev/null 2>&1 &&
			wal_slot=su_bench_walinspect
	fi
	before=$(q bench 'SELECT coalesce(max(audit_id), 0) FROM shopping_upload.audit')
	cpu0=$(cpu_ticks "$wpid")
	say "run $run: queueing orders 1..$BACKLOG in one transaction"
	[ "$run" = "$RUNS" ] && [ -n "${BENCH_PERF:-}" ] && perf_start backlog
	qw bench "CALL bench.backlog(1, $BACKLOG, $TIMEOUT)"
	[ -n "$perf_pid" ] && perf_stop backlog && say "run $run: the worker's profile (perf, self time by symbol): $BENCH_OUT/perf-backlog.txt"
	IFS='|' read -r secs left stuck t0 wal0 wal1 <<<"$QW"
	cpu1=$(cpu_ticks "$wpid")
	check_worker
	IFS='|' read -r rows ok orders last_s <<<"$(q bench "SELECT count(*), count(*) FILTER (WHERE errcode = 0),
		count(DISTINCT order_id), coalesce(extract(epoch FROM max(created_at)) - $t0, 0)
		FROM shopping_upload.audit WHERE audit_id > $before")"
	rate=$(calc "$BACKLOG / $secs")
	cpu_us=$(calc "($cpu1 - $cpu0) * 1e6 / $clk_tck / $BACKLOG")
	if [ "$left" = 0 ] && [ "$rows" = "$BACKLOG" ] && [ "$ok" = "$BACKLOG" ] && [ "$orders" = "$BACKLOG" ]; then
		check="audit $rows rows, all errcode 0"
		rates+=("$rate")
		backlog_cpus+=("$cpu_us")
	else
		check="NOT VALID: $left orders not uploaded ($stuck stuck); audit $rows rows, $ok errcode 0, $orders orders"
		q bench "SELECT errcode, errmsg, transport_error, count(*) FROM shopping_upload.audit
		         WHERE audit_id > $before AND errcode <> 0 GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 5" | sed 's/^/    /'
	fi
	say "run $run: $(fmt "$secs" 2) s to drain -> $(fmt "$rate" 0) orders/s (last audit row at $(fmt "$last_s" 2) s; worker CPU $(fmt "$cpu_us" 1) µs/upload); $check"
	if [ "$run" = 2 ]; then
		mem_after_anon=$(mem_kb "$wpid" RssAnon)
		mem_after_rss=$(mem_kb "$wpid" VmRSS)
	fi
	if [ "$run" = 3 ]; then
		mem_after3_anon=$(mem_kb "$wpid" RssAnon)
		mem_after3_rss=$(mem_kb "$wpid" VmRSS)
	fi
	[ "$left" = 0 ] || { echo "worker.sh: the backlog did not drain in $TIMEOUT s; stopping" >&2; exit 1; }
done
rate_min='' rate_med='' rate_max='' bcpu_min='' bcpu_med='' bcpu_max=''
if [ "${#rates[@]}" = "$RUNS" ]; then
	read -r rate_min rate_med rate_max <<<"$(stats "${rates[@]}")"
	read -r bcpu_min bcpu_med bcpu_max <<<"$(stats "${backlog_cpus[@]}")"
else
	fail "only ${#rates[@]} of $RUNS backlog runs were valid"
fi

# the same nginx under wrk: as many threads as cores, max_inflight connections
wrk_threads=$CORES
wrk_conns=$((max_inflight > wrk_threads ? max_inflight : wrk_threads))
wrk_version=$("$WRK" -v 2>&1 | awk 'NR == 1 { print $2 }' || true)
ceiling="wrk ${wrk_version:-?} -t$wrk_threads -c$wrk_conns -d${WRK_SECONDS}s (keep-alive) against nginx $nginx_version, worker_processes $NGINX_WORKERS, on $CORES cores"
cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[$payload]==]
LUA
say "HTTP ceiling: $ceiling; POST of the $(printf '%s' "$payload" | wc -c)-byte 3-item payload to $api_a/user-order/orders"
run_child "$work/wrk.out" "$WRK" -t"$wrk_threads" -c"$wrk_conns" -d"${WRK_SECONDS}s" -s "$work/post.lua" \
	"$api_a/user-order/orders?access_token=benchtoken" || true
wrk_rps=$(awk '/^Requests\/sec:/ { print $2 }' "$work/wrk.out")
wrk_errors=$(grep -E 'Non-2xx|Socket errors' "$work/wrk.out" || true)
if [ -z "$wrk_rps" ]; then
	cat "$work/wrk.out"
	fail "wrk measured nothing"
	wrk_rps=0
fi
[ -z "$wrk_errors" ] || fail "wrk: $wrk_errors"
say "wrk: $(fmt "$wrk_rps" 0) requests/s, latency avg $(awk '/^ +Latency/ { print $2 }' "$work/wrk.out")${wrk_errors:+; $wrk_errors}"

echo
ratio=
if [ -n "$rate_med" ]; then
	ratio=$(calc "$rate_med / ($wrk_rps > 0 ? $wrk_rps : 1)")
	echo "uploads/s, min / median / max of $RUNS: $(mmm "$rate_min" "$rate_med" "$rate_max")"
	echo "worker CPU per upload in the backlog, min / median / max: $(fmt "$bcpu_min" 1) / $(fmt "$bcpu_med" 1) / $(fmt "$bcpu_max" 1) µs"
	echo "wrk requests/s ($ceiling): $(int "$wrk_rps")"
	echo "median uploads/s ÷ wrk requests/s: $(fmt "$ratio" 3)"
fi

# ---------------------------------------------------------------------------
# 1b. Where the worker's WAL goes: the last backlog run, by relation and record
# type (pg_walinspect)
# ---------------------------------------------------------------------------
wal_csv=''
walinspect_part() {
	local t_start=$SECONDS tag a c d e total_records total_bytes total_fpi
	echo
	if [ -z "$walinspect" ]; then
		echo "== 1b. Where the worker's WAL goes: skipped (pg_walinspect needs PostgreSQL 15 or later and postgresql-contrib for $PG_BIN)"
		return 0
	fi
	if [ -z "$wal0" ] || [ -z "$wal1" ] || [ "$(q bench "SELECT '$wal1'::pg_lsn > '$wal0'::pg_lsn")" != t ]; then
		echo "== 1b. Where the worker's WAL goes: skipped (no WAL positions from backlog run $RUNS)"
		return 0
	fi
	echo "== 1b. Where the worker's WAL goes: backlog run $RUNS ($BACKLOG orders), $wal0 to $wal1 ($(fmt "$(q bench "SELECT pg_wal_lsn_diff('$wal1', '$wal0') / 1048576.0")" 1) MB): the queueing commit to the end of the drain"
	[ -n "$wal_slot" ] || echo "  (no replication slot kept this WAL: a checkpoint may have removed part of it)"
	# the relation of a record's first block: block_ref reads
	# 'blkref #0: rel <tablespace>/<database>/<relfilenode> ...' in 15 to 18
	cat >"$work/walinspect.sql" <<SQL
SET client_min_messages = warning;
SET search_path = shopping_upload, public;
CREATE EXTENSION IF NOT EXISTS pg_walinspect SCHEMA public;
CREATE TEMP TABLE w AS
SELECT r.resource_manager AS rmgr, r.record_type AS rtype,
	   m.b[1]::oid AS spc, m.b[2]::oid AS db, m.b[3] AS fn,
	   count(*) AS records, sum(r.record_length) AS bytes, sum(r.fpi_length) AS fpi
  FROM pg_get_wal_records_info('$wal0', least('$wal1'::pg_lsn, pg_current_wal_flush_lsn())) r
	   CROSS JOIN LATERAL (SELECT regexp_match(r.block_ref, 'rel ([0-9]+)/([0-9]+)/([0-9]+)') AS b) m
 GROUP BY 1, 2, 3, 4, 5;
CREATE FUNCTION pg_temp.relation(spc oid, db oid, fn text, rmgr text) RETURNS text
LANGUAGE sql STABLE AS \$\$
SELECT CASE
	WHEN fn IS NULL THEN CASE WHEN rmgr = 'Transaction' THEN 'commit' ELSE 'other' END
	WHEN db = 0 THEN 'shared catalogs'
	WHEN db <> (SELECT oid FROM pg_database WHERE datname = current_database())
		THEN 'database ' || coalesce((SELECT datname FROM pg_database WHERE oid = db)::text, db::text)
	ELSE coalesce((
		SELECT CASE WHEN c.relnamespace = 'pg_toast'::regnamespace
			THEN coalesce((SELECT o.oid::regclass::text FROM pg_class o
							WHERE o.reltoastrelid = coalesce((SELECT i.indrelid FROM pg_index i WHERE i.indexrelid = c.oid), c.oid)),
						  c.oid::regclass::text)
				 || CASE WHEN c.relkind = 'i' THEN ' (TOAST index)' ELSE ' (TOAST)' END
			ELSE c.oid::regclass::text END
		  FROM pg_class c WHERE c.oid = pg_filenode_relation(spc, fn::oid)), 'relfilenode ' || fn)
END
\$\$;
CREATE TEMP TABLE t AS
SELECT pg_temp.relation(spc, db, fn, rmgr) AS relation, rmgr || '/' || rtype AS rtype,
	   sum(records)::bigint AS records, sum(bytes)::bigint AS bytes, sum(fpi)::bigint AS fpi
  FROM w GROUP BY 1, 2;
CREATE TEMP VIEW v AS
SELECT *, sum(bytes) OVER (PARTITION BY relation) AS relbytes, sum(bytes) OVER () AS total FROM t;
\copy (SELECT relation, rtype AS record_type, records, bytes, fpi AS fpi_bytes, round(bytes::numeric / $BACKLOG, 1) AS bytes_per_order, round(bytes::numeric / nullif(total, 0), 4) AS share FROM v ORDER BY relbytes DESC, relation, bytes DESC) TO '$work/wal_by_relation.csv' WITH (FORMAT csv, HEADER)
SELECT 'total', coalesce(sum(records), 0), coalesce(sum(bytes), 0), coalesce(sum(fpi), 0) FROM t;
-- relations of 1% or more, each followed by its record types of 1% or more
WITH r AS (SELECT relation, sum(records) AS records, sum(bytes) AS bytes, sum(fpi) AS fpi FROM t GROUP BY relation),
tot AS (SELECT sum(bytes) AS total FROM t),
big AS (SELECT r.* FROM r, tot WHERE r.bytes >= 0.01 * tot.total),
lines AS (
	SELECT big.bytes AS k1, big.relation AS k2, 0 AS k3, 0::numeric AS k4, big.relation AS label,
		   big.records, big.bytes, big.fpi FROM big
	UNION ALL
	SELECT big.bytes, t.relation, 1, t.bytes, '    ' || t.rtype, t.records, t.bytes, t.fpi
	  FROM t JOIN big USING (relation), tot WHERE t.bytes >= 0.01 * tot.total
	UNION ALL
	SELECT big.bytes, t.relation, 2, 0, '    (' || count(*) || ' other record type' || CASE WHEN count(*) > 1 THEN 's)' ELSE ')' END,
		   sum(t.records), sum(t.bytes), sum(t.fpi)
	  FROM t JOIN big USING (relation), tot WHERE t.bytes < 0.01 * tot.total GROUP BY big.bytes, t.relation
	UNION ALL
	SELECT -1, '', 0, 0, '(' || count(*) || ' other relation' || CASE WHEN count(*) > 1 THEN 's' ELSE '' END || ', under 1% each)',
		   sum(r.records), sum(r.bytes), sum(r.fpi)
	  FROM r, tot WHERE r.bytes < 0.01 * tot.total HAVING count(*) > 0)
SELECT 'line', label, records, bytes, fpi FROM lines ORDER BY k1 DESC, k2, k3, k4 DESC;
SQL
	chmod 644 "$work/walinspect.sql"
	if ! run_child "$work/walinspect.out" "${AS_PG_EXEC[@]}" "$PG_BIN/psql" -h "$work" -U postgres -d bench \
		-X -q -v ON_ERROR_STOP=1 -At -F '|' -f "$work/walinspect.sql"; then
		echo "  pg_walinspect failed, no breakdown:"
		sed 's/^/    /' "$work/walinspect.out" | tail -n 5
		return 0
	fi
	IFS='|' read -r _ total_records total_bytes total_fpi <<<"$(grep '^total|' "$work/walinspect.out")"
	printf '  %-44s %13s %13s %13s %7s\n' "relation / record type" "records/order" "bytes/order" "FPI B/order" "share"
	while IFS='|' read -r tag a c d e; do
		[ "$tag" = line ] || continue
		printf '  %-44s %13s %13s %13s %7s\n' "$a" "$(fmt "$(calc "$c / $BACKLOG")" 2)" \
			"$(fmt "$(calc "$d / $BACKLOG")" 1)" "$(fmt "$(calc "$e / $BACKLOG")" 1)" \
			"$(fmt "$(calc "$d * 100 / ($total_bytes > 0 ? $total_bytes : 1)")" 1)%"
	done <"$work/walinspect.out"
	printf '  %-44s %13s %13s %13s %7s\n' "total" "$(fmt "$(calc "$total_records / $BACKLOG")" 2)" \
		"$(fmt "$(calc "$total_bytes / $BACKLOG")" 1)" "$(fmt "$(calc "$total_fpi / $BACKLOG")" 1)" "100.0%"
	echo "  (each record counted for the relation of its first block; the window also holds the polling's page pruning and any autovacuum; read in $((SECONDS - t_start)) s)"
	cp "$work/wal_by_relation.csv" "$BENCH_OUT/wal_worker_by_relation.csv" && wal_csv=$BENCH_OUT/wal_worker_by_relation.csv
}
walinspect_part
if [ -n "$wal_slot" ]; then
	q bench "SELECT pg_drop_replication_slot('$wal_slot')" >/dev/null || true
	wal_slot=
fi

# ---------------------------------------------------------------------------
# 2. Latency, commit to nginx, at 200 orders/s, over every order
# ---------------------------------------------------------------------------
echo
echo "== 2. Latency from COMMIT to the request at nginx, $LAT_RATE orders/s for $LAT_SECONDS s, over every order"
q bench "ALTER SYSTEM SET shopping_upload.api_base_url = '$api_b'" >/dev/null
q bench 'SELECT pg_reload_conf()' >/dev/null
sleep 1
pgbench_run "$work/pgbench_warm.out" bench -c 1 -t 20 || { cat "$work/pgbench_warm.out"; exit 1; }
drain bench || true
logged=$(wc -l <"$work/nginx/arrivals.log" 2>/dev/null || echo 0)
if [ "$logged" -lt 20 ]; then
	say "warning: only $logged of 20 warm-up uploads reached $api_b; the worker may not have reloaded its settings"
fi
: >"$work/nginx/arrivals.log"
lo=$(q bench "SELECT last_value FROM bench.order_id_seq")
audit0=$(q bench 'SELECT coalesce(max(audit_id), 0) FROM shopping_upload.audit')
say "pgbench -n -R $LAT_RATE -T $LAT_SECONDS -c $LAT_CLIENTS (auto_upload on, worker -> $api_b)"
cpu0=$(cpu_ticks "$wpid")
t0=$(now_s)
pgbench_run "$work/pgbench_lat.out" bench -R "$LAT_RATE" -T "$LAT_SECONDS" -c "$LAT_CLIENTS" ||
	{ cat "$work/pgbench_lat.out"; exit 1; }
lat_drained=yes
drain bench || lat_drained=no
cpu1=$(cpu_ticks "$wpid")
t1=$(now_s)
check_worker
hi=$(q bench "SELECT last_value FROM bench.order_id_seq")
lat_uploads=$(q bench "SELECT count(*) FROM shopping_upload.audit WHERE audit_id > $audit0 AND errcode = 0")
lat_cpu_us=
[ "$lat_uploads" -gt 0 ] && lat_cpu_us=$(calc "($cpu1 - $cpu0) * 1e6 / $clk_tck / $lat_uploads")
lat_cpu_pct=$(calc "($cpu1 - $cpu0) * 100 / $clk_tck / ($t1 - $t0)")
latency bench "SELECT order_id, out_trade_no, pg_xact_commit_timestamp(xmin) AS committed
	  FROM shopping_upload.orders WHERE order_id > $lo AND order_id <= $hi" \
	"SELECT 'lost', l.order_id, l.out_trade_no, coalesce(s.state, 'not queued'),
	   coalesce(s.last_errcode::text, ''), coalesce(s.last_errmsg, '')
  FROM latency l LEFT JOIN shopping_upload.order_state s USING (order_id)
 WHERE l.requests IS NULL ORDER BY l.order_id LIMIT 10"
IFS='|' read -r _ n_orders n_lost n_repeated n_other p50 p99 lmax lmin <<<"$(grep '^figures|' "$work/latency.out")"
save_dat latency_200.dat "part 2, shopping_upload, $LAT_RATE orders/s for $LAT_SECONDS s: ms from COMMIT to the request at nginx; share of all $n_orders orders at or below ($n_lost lost, not listed)" <"$work/latency_cdf.tsv"
lat_x=$(calc "$lat_uploads / ($t1 - $t0)")	# uploads a second, as in part 2b (pictures)
q bench "ALTER SYSTEM RESET shopping_upload.api_base_url" >/dev/null
q bench 'SELECT pg_reload_conf()' >/dev/null
pgb_tps=$(pgbench_tps "$work/pgbench_lat.out")
pgb_lag=$(awk '/schedule lag/ { print $0; exit }' "$work/pgbench_lat.out" | sed 's/^ *//')
say "$n_orders orders committed at $(fmt "${pgb_tps:-0}" 1)/s${pgb_lag:+ ($pgb_lag)}; $logged requests logged at nginx"
echo
echo "commit -> nginx (ms), over all $n_orders orders: p50 $p50  p99 $p99  max $lmax  (min $lmin; nginx reads its clock to the ms, rounded down: up to 1 ms low)"
echo "orders lost (committed, never requested at nginx): $n_lost of $n_orders"
[ "$n_repeated" = 0 ] || echo "orders requested more than once: $n_repeated (the first request counts)"
[ "$n_other" = 0 ] || echo "requests for orders outside the run: $n_other"
echo "worker CPU per upload at $LAT_RATE orders/s: $(fmt "${lat_cpu_us:-0}" 1) µs ($lat_uploads uploads; $(fmt "$lat_cpu_pct" 1)% of a core from the start of pgbench to the end of the drain)"
echo "order_state since the cluster started: $(q bench "SELECT n_tup_hot_upd || ' HOT updates of ' || n_tup_upd || ' (' || round(100.0 * n_tup_hot_upd / greatest(n_tup_upd, 1), 1) || '%)' FROM pg_stat_user_tables WHERE relid = 'shopping_upload.order_state'::regclass")"
echo "commit -> accepted as the audit measures it (queued_at to created_at, the 5-second rule's figures in stats): $(q bench "SELECT count(*) || ' uploads: p50 ' || round(1000 * extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY created_at - queued_at))::numeric, 1) || ' ms, p99 ' || round(1000 * extract(epoch FROM percentile_cont(0.99) WITHIN GROUP (ORDER BY created_at - queued_at))::numeric, 1) || ' ms, ' || count(*) FILTER (WHERE created_at - queued_at > interval '5 seconds') || ' over 5 s' FROM shopping_upload.audit WHERE audit_id > $audit0 AND errcode = 0 AND queued_at IS NOT NULL")"
if [ "$n_lost" != 0 ]; then
	echo "lost orders (first 10): order_id | out_trade_no | state | last_errcode | last_errmsg"
	grep '^lost|' "$work/latency.out" | cut -d'|' -f2- | sed 's/^/    /'
	fail "$n_lost of $n_orders orders of the $LAT_RATE orders/s run never reached nginx"
fi
[ "$lat_drained" = yes ] || fail "the queue did not drain after the $LAT_RATE orders/s run"
[ "${n_orders:-0}" -gt 0 ] || fail "the $LAT_RATE orders/s run committed no order"

# back on port A: 20 orders must not reach port B
sleep 1
: >"$work/nginx/arrivals.log"
pgbench_run "$work/pgbench_warm.out" bench -c 1 -t 20 || { cat "$work/pgbench_warm.out"; exit 1; }
drain bench
if [ -s "$work/nginx/arrivals.log" ]; then
	say "warning: the worker still uploads to $api_b (it logs each request) in parts 2b and 3"
fi

# ---------------------------------------------------------------------------
# 2b. Where the CPU goes at steady rates
# ---------------------------------------------------------------------------
sweep_fixed='' sweep_marginal='' sweep_x='' sweep_y='' sweep_rows=''
claim_ms=$(q bench "SELECT setting FROM pg_settings WHERE name = 'shopping_upload.claim_interval'")
if [ -n "$SWEEP_RATES" ]; then
	echo
	echo "== 2b. The worker's CPU at steady rates: pgbench -n -R <rate> -T $SWEEP_SECONDS -c $LAT_CLIENTS, one order per commit (claim_interval $claim_ms ms)"
	printf '  %8s %10s %12s %14s %14s\n' "rate" "uploads" "uploads/s" "CPU, % core" "µs/upload"
	for r in $SWEEP_RATES; do
		audit0=$(q bench 'SELECT coalesce(max(audit_id), 0) FROM shopping_upload.audit')
		cpu0=$(cpu_ticks "$wpid")
		t0=$(now_s)
		pgbench_run "$work/pgbench_sweep.out" bench -R "$r" -T "$SWEEP_SECONDS" -c "$LAT_CLIENTS" ||
			{ cat "$work/pgbench_sweep.out"; exit 1; }
		drain bench || fail "the queue did not drain after the $r orders/s run"
		cpu1=$(cpu_ticks "$wpid")
		t1=$(now_s)
		check_worker
		n=$(q bench "SELECT count(*) FROM shopping_upload.audit WHERE audit_id > $audit0 AND errcode = 0")
		x=$(calc "$n / ($t1 - $t0)")
		y=$(calc "($cpu1 - $cpu0) * 1e6 / $clk_tck / ($t1 - $t0)")	# µs of CPU a second
		sweep_x="$sweep_x $x" sweep_y="$sweep_y $y"
		sweep_rows+="$r $n $x $(calc "$y / 1e4") $(calc "$y / ($x > 0 ? $x : 1)")"$'\n'
		printf '  %8s %10s %12s %14s %14s\n' "$r" "$n" "$(fmt "$x" 1)" "$(fmt "$(calc "$y / 1e4")" 1)" \
			"$(fmt "$(calc "$y / ($x > 0 ? $x : 1)")" 1)"
	done
	# least squares: CPU a second = fixed + marginal × uploads a second
	read -r sweep_fixed sweep_marginal <<<"$(LC_ALL=C awk -v xs="$sweep_x" -v ys="$sweep_y" 'BEGIN {
		n = split(xs, x, " "); split(ys, y, " ")
		for (i = 1; i <= n; i++) { sx += x[i]; sy += y[i]; sxx += x[i] * x[i]; sxy += x[i] * y[i] }
		d = n * sxx - sx * sx
		if (n < 2 || d == 0) exit
		m = (n * sxy - sx * sy) / d
		print (sy - m * sx) / n, m }')"
	if [ -n "$sweep_fixed" ]; then
		echo "  least squares over the runs: CPU a second = $(fmt "$(calc "$sweep_fixed / 1000")" 1) ms + $(fmt "$sweep_marginal" 1) µs × uploads a second"
		echo "  the fixed part is $(fmt "$(calc "$sweep_fixed * $claim_ms / 1e3")" 0) µs a round (one round every $claim_ms ms);" \
			"at $LAT_RATE/s it is $(fmt "$(calc "$sweep_fixed / $LAT_RATE")" 1) µs of each upload's $(fmt "$(calc "$sweep_fixed / $LAT_RATE + $sweep_marginal")" 1)"
	fi
	save_dat cpu_sweep.dat "part 2b, shopping_upload, pgbench -R <rate> -T $SWEEP_SECONDS, claim_interval $claim_ms ms; the worker's CPU from the start of pgbench to the end of the drain: rate uploads uploads/s CPU_%_of_a_core µs/upload${sweep_fixed:+; least squares: µs a second = $sweep_fixed + $sweep_marginal × uploads a second}" < <(printf '%s' "$sweep_rows")
fi
save_dat cpu_200.dat "part 2, shopping_upload, $LAT_RATE orders/s for $LAT_SECONDS s: label uploads/s µs/upload ($lat_uploads uploads)" \
	< <(printf '"shopping_upload, part 2 (port B)" %s %s\n' "$lat_x" "${lat_cpu_us:-0}")

# ---------------------------------------------------------------------------
# 3. Insert throughput: triggers disabled, on with the worker, on without
# ---------------------------------------------------------------------------
configs=(disabled on noworker)
declare -A cfg_db=([disabled]=bench [on]=bench [noworker]=bench_noworker)
declare -A cfg_label=(
	[disabled]="triggers disabled (baseline)"
	[on]="triggers on, worker uploading"
	[noworker]="triggers on, no worker (bench_noworker)"
)
declare -A cfg_tps=() cfg_wal=() cfg_orders=()
on_uploaded=0 on_ticks=0 nw_ticks=0 nw_seconds=0
triggers() {					# triggers DB ENABLE|DISABLE
	psql_db "$1" -c "BEGIN;
		ALTER TABLE shopping_upload.orders $2 TRIGGER queue_order;
		ALTER TABLE shopping_upload.sub_orders $2 TRIGGER queue_order;
		ALTER TABLE shopping_upload.items $2 TRIGGER queue_order;
		COMMIT;" </dev/null
}
# tps_run CONFIG RUN: one pgbench run; appends its tps to cfg_tps[CONFIG]
tps_run() {
	local cfg=$1 run=$2 db=${cfg_db[$1]} out=$work/pgbench_tps.out
	local seq0 states0 audit0 c0 c1 s0 s1 tps inserted r
	psql_db "$db" -c 'VACUUM' -c 'CHECKPOINT' </dev/null
	[ "$cfg" != disabled ] || triggers "$db" DISABLE
	seq0=$(q "$db" "SELECT last_value FROM bench.order_id_seq")
	states0=$(q "$db" "SELECT count(*) FROM shopping_upload.order_state")
	audit0=$(q bench 'SELECT coalesce(max(audit_id), 0) FROM shopping_upload.audit')
	c0=$(cpu_ticks "$wpid")
	lsn0=$(q "$db" 'SELECT pg_current_wal_insert_lsn()')
	s0=$(now_s)
	pgbench_run "$out" "$db" -c "$TPS_CLIENTS" -T "$TPS_SECONDS" || { cat "$out"; exit 1; }
	s1=$(now_s)
	tps=$(pgbench_tps "$out")
	[ -n "$tps" ] || { cat "$out"; echo "worker.sh: no tps in the pgbench output" >&2; exit 1; }
	cfg_tps[$cfg]="${cfg_tps[$cfg]:-} $tps"
	inserted=$(q "$db" "SELECT count(*) FROM shopping_upload.orders WHERE order_id > $seq0")
	case $cfg in
		disabled)
			triggers "$db" ENABLE
			r=$(q "$db" "SELECT count(*) FROM shopping_upload.order_state")
			[ "$r" = "$states0" ] || fail "run $run, $cfg: $((r - states0)) orders queued with the triggers disabled"
			;;
		on)
			drain "$db" || fail "run $run, $cfg: the queue did not drain"
			c1=$(cpu_ticks "$wpid")
			r=$(q bench "SELECT count(DISTINCT order_id) FROM shopping_upload.audit
			             WHERE audit_id > $audit0 AND errcode = 0 AND order_id > $seq0")
			[ "$r" = "$inserted" ] || fail "run $run, $cfg: $r of $inserted orders inserted were uploaded"
			on_uploaded=$((on_uploaded + r))
			on_ticks=$((on_ticks + c1 - c0))
			;;
		noworker)
			c1=$(cpu_ticks "$wpid")
			r=$(q "$db" "SELECT count(*) FROM shopping_upload.order_state WHERE order_id > $seq0 AND state = 'pending'")
			[ "$r" = "$inserted" ] || fail "run $run, $cfg: $r of $inserted orders inserted were queued"
			nw_ticks=$((nw_ticks + c1 - c0))
			nw_seconds=$(calc "$nw_seconds + $s1 - $s0")
			;;
	esac
	# WAL written from the start of the run (for "on", to the end of its drain)
	wal=$(q "$db" "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '$lsn0')")
	cfg_wal[$cfg]=$(calc "${cfg_wal[$cfg]:-0} + $wal")
	cfg_orders[$cfg]=$((${cfg_orders[$cfg]:-0} + inserted))
	printf '%s=%s ' "$cfg" "$(fmt "$tps" 0)" >>"$work/round.txt"
}
if [ -n "${BENCH_PERF:-}" ]; then
	# after the figures of part 2, not in them: perf slows the worker down
	say "profile: pgbench -R $LAT_RATE -T 10 -c $LAT_CLIENTS, perf on the worker (in no figure)"
	perf_start "$LAT_RATE"
	pgbench_run "$work/pgbench_perf.out" bench -R "$LAT_RATE" -T 10 -c "$LAT_CLIENTS" || true
	drain bench || true
	perf_stop "$LAT_RATE"
	say "profile: the worker at $LAT_RATE orders/s (perf, self time by symbol): $BENCH_OUT/perf-$LAT_RATE.txt"
fi

echo
echo "== 3. Insert throughput: pgbench -n -c $TPS_CLIENTS -T $TPS_SECONDS, one order of 3 items per transaction;"
echo "   $TPS_RUNS runs of each configuration, interleaved; VACUUM and CHECKPOINT before each run"
for run in $(seq "$TPS_RUNS"); do
	: >"$work/round.txt"
	for k in 0 1 2; do
		cfg=${configs[$(((run - 1 + k) % 3))]}
		say "run $run/$TPS_RUNS: ${cfg_label[$cfg]}"
		tps_run "$cfg" "$run"
	done
	check_worker
	say "run $run: $(cat "$work/round.txt")(tps)"
done
declare -A tps_min=() tps_med=() tps_max=() tps_vs=()
for cfg in "${configs[@]}"; do
	# shellcheck disable=SC2086	# a list of numbers
	read -r "tps_min[$cfg]" "tps_med[$cfg]" "tps_max[$cfg]" <<<"$(stats ${cfg_tps[$cfg]})"
	tps_vs[$cfg]=$(calc "(${tps_med[$cfg]} - ${tps_med[disabled]}) * 100 / ${tps_med[disabled]}")
done
on_cpu_us=$(calc "$on_ticks * 1e6 / $clk_tck / ($on_uploaded > 0 ? $on_uploaded : 1)")
nw_cpu_pct=$(calc "$nw_ticks * 100 / $clk_tck / ($nw_seconds > 0 ? $nw_seconds : 1)")
echo
declare -A wal_per=()
for cfg in "${configs[@]}"; do
	wal_per[$cfg]=$(calc "${cfg_wal[$cfg]:-0} / (${cfg_orders[$cfg]:-0} > 0 ? ${cfg_orders[$cfg]:-0} : 1)")
done
printf '  %-42s %27s  %-20s %s\n' "configuration" "tps min / median / max" "median vs disabled" "WAL bytes per order"
for cfg in "${configs[@]}"; do
	printf '  %-42s %27s  %-20s %s\n' "${cfg_label[$cfg]}" \
		"$(mmm "${tps_min[$cfg]}" "${tps_med[$cfg]}" "${tps_max[$cfg]}")" \
		"$(if [ "$cfg" = disabled ]; then echo "(baseline)"; else pct "${tps_vs[$cfg]}"; fi)" \
		"$(int "${wal_per[$cfg]}")"
done
save_dat wal_split.dat "part 3, WAL bytes per order, $TPS_RUNS runs of $TPS_SECONDS s of each configuration: name merchant's (triggers disabled) trigger's (no worker - disabled) worker's (on - no worker)" \
	< <(printf 'shopping_upload %s %s %s\n' "$(fmt "${wal_per[disabled]}" 0)" \
		"$(fmt "$(calc "${wal_per[noworker]} - ${wal_per[disabled]}")" 0)" "$(fmt "$(calc "${wal_per[on]} - ${wal_per[noworker]}")" 0)")
echo "  WAL per order, split: the merchant's insert $(int "${wal_per[disabled]}"), the trigger's queueing $(int "$(calc "${wal_per[noworker]} - ${wal_per[disabled]}")"), the worker's $(int "$(calc "${wal_per[on]} - ${wal_per[noworker]}")") bytes (disabled; no worker - disabled; on - no worker)"
echo "  worker CPU while uploading at full insert speed: $(fmt "$on_cpu_us" 1) µs/upload ($on_uploaded uploads, drains included)"
echo "  worker CPU during the no-worker runs (it serves bench): $(fmt "$nw_cpu_pct" 1)% of a core"

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
# 5. pg_net, measured the same way
# ---------------------------------------------------------------------------
pn_version='' pn_best='' pn_rate_min='' pn_rate_med='' pn_rate_max='' pn_cpu_med='' pn_ratio=''
pn_lat_cpu_us='' pn_orders='' pn_lost='' pn_p50='' pn_p99='' pn_max=''
pn_pid() { q bench_pgnet "SELECT pid FROM pg_stat_activity WHERE backend_type LIKE 'pg_net%worker'" | head -n 1; }
if [ -n "$pg_net" ]; then
	pn_version=$(q bench_pgnet "SELECT extversion FROM pg_extension WHERE extname = 'pg_net'")
	echo
	echo "== 5. pg_net $pn_version, the same nginx and payload: a backlog of $BACKLOG requests, $RUNS runs per batch size; $LAT_RATE requests/s"
	ppid=$(pn_pid)
	[ -n "$ppid" ] || fail "no pg_net worker is running"
	url_a="$api_a/user-order/orders?access_token=benchtoken"
	body_sql=${payload//\'/\'\'}
	best_med=0
	for bs in $PG_NET_BATCHES; do
		q bench_pgnet "ALTER SYSTEM SET pg_net.batch_size = $bs" >/dev/null
		q bench_pgnet 'SELECT pg_reload_conf()' >/dev/null
		sleep 1.5
		bs_rates=() bs_cpus=()
		for run in $(seq "$RUNS"); do
			[ -n "$ppid" ] || break
			psql_db bench_pgnet -c 'CHECKPOINT' </dev/null
			cpu0=$(cpu_ticks "$ppid")
			qw bench_pgnet "CALL bench.pgnet_backlog('$url_a', '$body_sql'::jsonb, $BACKLOG, $TIMEOUT)"
			IFS='|' read -r secs done_n ok_n <<<"$QW"
			cpu1=$(cpu_ticks "$ppid")
			rate=$(calc "$done_n / $secs")
			cpu_us=$(calc "($cpu1 - $cpu0) * 1e6 / $clk_tck / $BACKLOG")
			if [ "$ok_n" = "$BACKLOG" ]; then
				check="all $BACKLOG answered 200"
				bs_rates+=("$rate")
				bs_cpus+=("$cpu_us")
			else
				check="NOT VALID: $ok_n of $BACKLOG answered 200 ($done_n answered)"
				q bench_pgnet "SELECT status_code, timed_out, error_msg, count(*) FROM net._http_response
				               WHERE status_code IS DISTINCT FROM 200 GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 3" | sed 's/^/    /'
			fi
			say "batch_size $bs, run $run: $(fmt "$secs" 2) s -> $(fmt "$rate" 0) requests/s (its worker's CPU $(fmt "$cpu_us" 1) µs/request); $check"
			[ "$(pn_pid)" = "$ppid" ] || { fail "the pg_net worker restarted (pid $ppid -> $(pn_pid))"; ppid=$(pn_pid); }
			[ "$ok_n" = "$BACKLOG" ] || break	# this batch size does not count
		done
		if [ "${#bs_rates[@]}" = "$RUNS" ]; then
			read -r r_min r_med r_max <<<"$(stats "${bs_rates[@]}")"
			read -r _ c_med _ <<<"$(stats "${bs_cpus[@]}")"
			say "batch_size $bs: requests/s $(mmm "$r_min" "$r_med" "$r_max"), CPU $(fmt "$c_med" 1) µs/request (medians)"
			if LC_ALL=C awk -v a="$r_med" -v b="$best_med" 'BEGIN { exit !(a > b) }'; then
				best_med=$r_med pn_best=$bs
				pn_rate_min=$r_min pn_rate_med=$r_med pn_rate_max=$r_max pn_cpu_med=$c_med
			fi
		else
			say "batch_size $bs: not every run was valid"
		fi
	done
	q bench_pgnet "ALTER SYSTEM RESET pg_net.batch_size" >/dev/null
	q bench_pgnet 'SELECT pg_reload_conf()' >/dev/null
	q bench_pgnet 'TRUNCATE net._http_response' >/dev/null
	[ -z "$pn_rate_med" ] || pn_ratio=$(calc "$pn_rate_med / ($wrk_rps > 0 ? $wrk_rps : 1)")

	# 200 requests/s through port B, one request per commit
	cat >"$work/pgnet_post.sql" <<SQL
BEGIN;
INSERT INTO bench.sent (n, out_trade_no) VALUES (nextval('bench.sent_seq'), 'PGN' || currval('bench.sent_seq'));
SELECT net.http_post('$api_b/user-order/orders?access_token=benchtoken',
	jsonb_set('$body_sql'::jsonb, '{order_key,out_trade_no}', to_jsonb('PGN' || currval('bench.sent_seq'))));
END;
SQL
	chmod 644 "$work/pgnet_post.sql"
	sleep 1
	: >"$work/nginx/arrivals.log"
	lo=$(q bench_pgnet "SELECT coalesce(max(n), 0) FROM bench.sent")
	say "pgbench -n -R $LAT_RATE -T $LAT_SECONDS -c $LAT_CLIENTS: net.http_post() -> $api_b"
	cpu0=$(cpu_ticks "$ppid")
	pn_t0=$(now_s)
	run_child "$work/pgbench_pgnet.out" "${AS_PG_EXEC[@]}" "$PG_BIN/pgbench" -h "$work" -U postgres -n \
		-f "$work/pgnet_post.sql" -R "$LAT_RATE" -T "$LAT_SECONDS" -c "$LAT_CLIENTS" bench_pgnet ||
		{ cat "$work/pgbench_pgnet.out"; exit 1; }
	hi=$(q bench_pgnet "SELECT coalesce(max(n), 0) FROM bench.sent")
	for _ in $(seq $((TIMEOUT * 10))); do
		[ "$(q bench_pgnet 'SELECT count(*) FROM net.http_request_queue')" = 0 ] && break
		sleep 0.1
	done
	sleep 1						# the last batch's answers
	cpu1=$(cpu_ticks "$ppid")
	pn_t1=$(now_s)
	pn_answered=$(q bench_pgnet "SELECT count(*) FROM net._http_response WHERE status_code = 200")
	[ "$pn_answered" -gt 0 ] && pn_lat_cpu_us=$(calc "($cpu1 - $cpu0) * 1e6 / $clk_tck / $pn_answered")
	latency bench_pgnet "SELECT n AS order_id, out_trade_no, pg_xact_commit_timestamp(xmin) AS committed
	  FROM bench.sent WHERE n > $lo AND n <= $hi" \
		"SELECT 'lost', order_id, out_trade_no FROM latency WHERE requests IS NULL ORDER BY order_id LIMIT 10"
	IFS='|' read -r _ pn_orders pn_lost _ _ pn_p50 pn_p99 pn_max _ <<<"$(grep '^figures|' "$work/latency.out")"
	save_dat latency_200_pgnet.dat "part 5, pg_net $pn_version, $LAT_RATE requests/s for $LAT_SECONDS s: ms from COMMIT to the request at nginx; share of all $pn_orders requests at or below ($pn_lost lost, not listed)" <"$work/latency_cdf.tsv"
	if [ -n "$pn_lat_cpu_us" ]; then
		save_dat cpu_200_pgnet.dat "part 5, pg_net $pn_version, $LAT_RATE requests/s for $LAT_SECONDS s: label requests/s µs/request ($pn_answered answered)" \
			< <(printf '"pg_net %s, part 5 (port B)" %s %s\n' "$pn_version" "$(calc "$pn_answered / ($pn_t1 - $pn_t0)")" "$pn_lat_cpu_us")
	fi
	echo
	if [ -n "$pn_best" ]; then
		echo "pg_net requests/s at its best batch size ($pn_best), min / median / max of $RUNS: $(mmm "$pn_rate_min" "$pn_rate_med" "$pn_rate_max")"
		echo "its worker's CPU per request there (median): $(fmt "$pn_cpu_med" 1) µs; median ÷ wrk: $(fmt "$pn_ratio" 3)"
	else
		echo "pg_net: no batch size gave $RUNS valid runs"
	fi
	echo "pg_net at $LAT_RATE requests/s: CPU $(fmt "${pn_lat_cpu_us:-0}" 1) µs/request ($pn_answered answered 200);" \
		"commit -> nginx over all $pn_orders: p50 $pn_p50  p99 $pn_p99  max $pn_max ms; lost $pn_lost"
elif [ "$PG_NET" = auto ]; then
	echo
	echo "== 5. pg_net: skipped, it is not installed for $PG_BIN (PG_NET=1 makes that an error)"
fi

# ---------------------------------------------------------------------------
# 6. The backlog with 1 and 2 workers for the database, side by side
# ---------------------------------------------------------------------------
echo
echo "== 6. A backlog of $BACKLOG orders with 1 and 2 workers (shopping_upload.workers_per_database), $RUNS runs each, interleaved"
declare -A wrates=([1]='' [2]='')
declare -A wcpus=([1]='' [2]='')
for run in $(seq "$RUNS"); do
	order=(1 2)
	[ $((run % 2)) = 0 ] && order=(2 1)
	for w in "${order[@]}"; do
		set_workers "$w"
		psql_db bench -c 'VACUUM ANALYZE shopping_upload.order_state' -c 'CHECKPOINT' </dev/null
		pids=$(worker_pids)
		cpu0=0
		for p in $pids; do cpu0=$((cpu0 + $(cpu_ticks "$p"))); done
		qw bench "CALL bench.backlog(1, $BACKLOG, $TIMEOUT)"
		IFS='|' read -r secs left stuck t0 _ <<<"$QW"
		cpu1=0
		for p in $pids; do cpu1=$((cpu1 + $(cpu_ticks "$p"))); done
		if [ "$left" != 0 ]; then
			fail "workers $w, run $run: $left orders left after $TIMEOUT s"
			continue
		fi
		rate=$(calc "$BACKLOG / $secs")
		cpu_us=$(calc "($cpu1 - $cpu0) * 1e6 / $clk_tck / $BACKLOG")
		wrates[$w]="${wrates[$w]} $rate"
		wcpus[$w]="${wcpus[$w]} $cpu_us"
		say "run $run, $w worker(s): $(fmt "$secs" 2) s -> $(fmt "$rate" 0) orders/s; the workers' CPU $(fmt "$cpu_us" 1) µs/upload"
	done
done
set_workers 1
wratio=
if [ "$(wc -w <<<"${wrates[1]}")" = "$RUNS" ] && [ "$(wc -w <<<"${wrates[2]}")" = "$RUNS" ]; then
	read -r w1_min w1_med w1_max <<<"$(stats ${wrates[1]})"
	read -r w2_min w2_med w2_max <<<"$(stats ${wrates[2]})"
	read -r _ w1_cpu _ <<<"$(stats ${wcpus[1]})"
	read -r _ w2_cpu _ <<<"$(stats ${wcpus[2]})"
	wratio=$(calc "$w2_med / $w1_med")
	echo "1 worker, uploads/s min / median / max: $(mmm "$w1_min" "$w1_med" "$w1_max"); CPU $(fmt "$w1_cpu" 1) µs/upload (median)"
	echo "2 workers, uploads/s min / median / max: $(mmm "$w2_min" "$w2_med" "$w2_max"); CPU $(fmt "$w2_cpu" 1) µs/upload (median, both)"
	echo "ratio of the medians, 2 workers ÷ 1: $(fmt "$wratio" 2)"
else
	fail "the 1- and 2-worker backlogs did not all drain"
fi

# ---------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------
met() {							# met VALUE OP LIMIT
	[ -n "$1" ] || { echo "n/a"; return; }
	if LC_ALL=C awk -v v="$1" -v l="$3" "BEGIN { exit !(v $2 l) }"; then echo yes; else echo NO; fi
}
p99_num=$p99
[ "$p99" != lost ] || p99_num=1e99
quick=
if [ "$BACKLOG" -lt 50000 ] || [ "$WRK_SECONDS" -lt 10 ] || [ "$LAT_SECONDS" -lt 20 ] ||
	[ "$TPS_RUNS" -lt 5 ] || [ "$TPS_SECONDS" -lt 30 ]; then
	quick=" (quick trial: smaller than the benchmark)"
fi
na() {							# na TEST TEXT: TEXT, or n/a if TEST is empty
	if [ -n "$1" ]; then echo "$2"; else echo "n/a"; fi
}
echo
echo "== Summary: PostgreSQL $pg_version, $CORES cores, max_inflight $max_inflight, backlog $BACKLOG orders, total $((SECONDS - start_seconds)) s$quick"
echo
echo "| figure | value | target | met |"
echo "|---|---|---|---|"
echo "| uploads/s, backlog of $(int "$BACKLOG") queued orders → all audited, min / median / max of $RUNS | $(na "$rate_med" "$(mmm "${rate_min:-0}" "${rate_med:-0}" "${rate_max:-0}")") | ≥ 25,000 (median) | $(met "$rate_med" '>=' 25000) |"
echo "| wrk -t$wrk_threads -c$wrk_conns req/s, same nginx (worker_processes $NGINX_WORKERS) and body | $(int "$wrk_rps") | | |"
echo "| ratio median uploads/s ÷ wrk req/s | $(na "$ratio" "$(fmt "${ratio:-0}" 3)") | ≥ 0.14 | $(met "$ratio" '>=' 0.14) |"
echo "| worker CPU per upload, backlog (min / median / max) | $(na "$bcpu_med" "$(fmt "${bcpu_min:-0}" 1) / $(fmt "${bcpu_med:-0}" 1) / $(fmt "${bcpu_max:-0}" 1) µs") | ≤ 80 µs (median) | $(met "$bcpu_med" '<=' 80) |"
echo "| worker CPU per upload, $LAT_RATE orders/s, one order per commit | $(na "$lat_cpu_us" "$(fmt "${lat_cpu_us:-0}" 1) µs") | ≤ 150 µs | $(met "$lat_cpu_us" '<=' 150) |"
if [ -n "$sweep_fixed" ]; then
	echo "| worker CPU at steady rates ($SWEEP_RATES/s): per second of activity + per upload (least squares) | $(fmt "$(calc "$sweep_fixed / 1000")" 1) ms/s ($(fmt "$(calc "$sweep_fixed * $claim_ms / 1e3")" 0) µs a round) + $(fmt "$sweep_marginal" 1) µs/upload | | |"
fi
echo "| commit → request at nginx, $LAT_RATE orders/s, all $n_orders orders: p50 / p99 / max (ms) | $p50 / $p99 / $lmax | p99 ≤ 1,000 | $(met "$p99_num" '<=' 1000) |"
echo "| orders lost at $LAT_RATE orders/s (never requested at nginx) | $n_lost of $n_orders | 0 | $(met "$n_lost" '==' 0) |"
for cfg in "${configs[@]}"; do
	if [ "$cfg" = disabled ]; then
		echo "| pgbench tps, ${cfg_label[$cfg]}, min / median / max of $TPS_RUNS × $TPS_SECONDS s | $(mmm "${tps_min[$cfg]}" "${tps_med[$cfg]}" "${tps_max[$cfg]}") | | |"
	elif [ "$cfg" = on ]; then
		echo "| pgbench tps, ${cfg_label[$cfg]}; median vs disabled | $(mmm "${tps_min[$cfg]}" "${tps_med[$cfg]}" "${tps_max[$cfg]}"); $(pct "${tps_vs[$cfg]}") | ≥ -15% | $(met "${tps_vs[$cfg]}" '>=' -15) |"
	else
		echo "| pgbench tps, ${cfg_label[$cfg]}; median vs disabled | $(mmm "${tps_min[$cfg]}" "${tps_med[$cfg]}" "${tps_max[$cfg]}"); $(pct "${tps_vs[$cfg]}") | | |"
	fi
done
echo "| WAL bytes per order: triggers disabled / on, worker uploading (drains included) / no worker | $(int "${wal_per[disabled]}") / $(int "${wal_per[on]}") / $(int "${wal_per[noworker]}") | | |"
echo "| WAL the extension adds per order: the trigger's + the worker's (on − disabled) | $(int "$(calc "${wal_per[on]} - ${wal_per[disabled]}")") | ≤ 1,100 | $(met "$(calc "${wal_per[on]} - ${wal_per[disabled]}")" '<=' 1100) |"
echo "| backlog uploads/s with 1 / 2 workers for the database (medians of $RUNS, interleaved); ratio | $(na "$wratio" "$(int "${w1_med:-0}") / $(int "${w2_med:-0}"); $(fmt "${wratio:-0}" 2)") | | |"
echo "| worker RssAnon growth over $(int $((2 * BACKLOG))) uploads | $(fmt "$(calc "$growth_anon / 1024")" 2) MB | < 5 MB | $(met "$(calc "$growth_anon / 1024")" '<' 5) |"
echo "| worker VmRSS growth (+ shared buffers touched) | $(fmt "$(calc "$growth_rss / 1024")" 2) MB | | |"
if [ -n "$pg_net" ]; then
	echo "| pg_net $pn_version requests/s, same backlog, best pg_net.batch_size ($(na "$pn_best" "$pn_best")), min / median / max of $RUNS | $(na "$pn_rate_med" "$(mmm "${pn_rate_min:-0}" "${pn_rate_med:-0}" "${pn_rate_max:-0}")") | | |"
	echo "| pg_net: ratio median ÷ wrk req/s; shopping_upload's median ÷ pg_net's | $(na "$pn_ratio" "$(fmt "${pn_ratio:-0}" 3)"); $(na "$pn_rate_med" "$(fmt "$(calc "${rate_med:-0} / (${pn_rate_med:-0} > 0 ? ${pn_rate_med:-1} : 1)")" 2)×") | | |"
	echo "| pg_net worker CPU per request: backlog (median, best batch size); $LAT_RATE requests/s | $(na "$pn_cpu_med" "$(fmt "${pn_cpu_med:-0}" 1) µs"); $(na "$pn_lat_cpu_us" "$(fmt "${pn_lat_cpu_us:-0}" 1) µs") | | |"
	echo "| pg_net commit → request at nginx, $LAT_RATE requests/s, all $pn_orders: p50 / p99 / max (ms); lost | $pn_p50 / $pn_p99 / $pn_max; $pn_lost | | |"
fi
echo
echo "HTTP ceiling: $ceiling."

# ---------------------------------------------------------------------------
# Pictures: gnuplot scripts beside their data in BENCH_OUT, run there
# ---------------------------------------------------------------------------
pictures=()
su_version=$(q bench "SELECT extversion FROM pg_extension WHERE extname = 'shopping_upload'")
pic_run="PostgreSQL ${pg_version%% *}, $CORES cores; bench/worker.sh, $(date '+%Y-%m-%d %H:%M')$quick"
has_rows() { [ -f "$BENCH_OUT/$1" ] && grep -qv '^#' "$BENCH_OUT/$1"; }
# draw NAME: BENCH_OUT/NAME.gp (written before) draws BENCH_OUT/NAME.png
draw() {
	outputs+=("$BENCH_OUT/$1.gp")
	[ -n "$GNUPLOT" ] || return 0
	rm -f "$BENCH_OUT/$1.png"
	if run_child "$work/gnuplot.out" env -C "$BENCH_OUT" "$GNUPLOT" "$1.gp" && [ -s "$BENCH_OUT/$1.png" ]; then
		pictures+=("$BENCH_OUT/$1.png")
	else
		echo "worker.sh: gnuplot did not draw $1.png:" >&2
		tail -n 5 "$work/gnuplot.out" >&2
	fi
}
# mark N P LABEL COLOUR Y: a dashed vertical line at x = P (ms) labelled
# 'LABEL P ms' at height Y (graph units), right of it (a CDF below P is
# left of it); nothing when P is not a number ('lost')
mark() {
	[[ $2 =~ ^-?[0-9.]+$ ]] || return 0
	printf "set arrow %s from %s, graph 0 to %s, graph 1 nohead dt 2 lw 1.5 lc rgb '%s'\n" "$1" "$2" "$2" "$4"
	printf "set label %s '%s %s ms' at %s, graph %s left offset 0.6,0 tc rgb '%s'\n" "$1" "$3" "$2" "$2" "$5" "$4"
}
# the terminal, size WxH: PNG, no enhanced text (shopping_upload's _)
terminal() { echo "set terminal pngcairo size $1 font ',10' noenhanced"; }

# (a) commit -> request at nginx, 200 orders/s
if has_rows latency_200.dat; then
	{
		cat <<GP
$(terminal 960,640)
set output 'latency_200.png'
set title "Commit -> request at nginx at $LAT_RATE orders/s for $LAT_SECONDS s (part 2): $n_orders orders, $n_lost lost\nshopping_upload $su_version, claim_interval $claim_ms ms\n$pic_run"
set xlabel 'ms from COMMIT to the request at nginx'
set ylabel 'share of the orders with their request at nginx by then'
set yrange [0:1.02]
set ytics 0.1
set grid
set key top left
GP
		mark 1 "$p50" p50 '#444444' 0.25
		mark 2 "$p99" p99 '#444444' 0.75
		echo "plot 'latency_200.dat' using 1:2 with steps lw 2 lc rgb '#1f77b4' title 'shopping_upload $su_version (max $lmax ms)'"
	} >"$BENCH_OUT/latency_200.gp"
	draw latency_200
fi
if has_rows latency_200.dat && has_rows latency_200_pgnet.dat; then
	{
		cat <<GP
$(terminal 960,640)
set output 'latency_200_pgnet.png'
set title "Commit -> request at nginx at $LAT_RATE a second for $LAT_SECONDS s: shopping_upload $su_version (part 2: $n_orders orders, $n_lost lost)\nand pg_net $pn_version (part 5: $pn_orders requests, $pn_lost lost)\n$pic_run"
set xlabel 'ms from COMMIT to the request at nginx (log scale; under 0.1 ms drawn at 0.1)'
set ylabel 'share of the orders (requests) with their request at nginx by then'
set logscale x
set xtics (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000)
set yrange [0:1.02]
set ytics 0.1
set grid
set key top left
GP
		mark 1 "$p50" p50 '#1f77b4' 0.25
		mark 2 "$p99" p99 '#1f77b4' 0.75
		mark 3 "$pn_p50" p50 '#d62728' 0.2
		mark 4 "$pn_p99" p99 '#d62728' 0.7
		echo "plot 'latency_200.dat' using (\$1 > 0.1 ? \$1 : 0.1):2 with steps lw 2 lc rgb '#1f77b4' title 'shopping_upload $su_version', \\"
		echo "     'latency_200_pgnet.dat' using (\$1 > 0.1 ? \$1 : 0.1):2 with steps lw 2 lc rgb '#d62728' title 'pg_net $pn_version'"
	} >"$BENCH_OUT/latency_200_pgnet.gp"
	draw latency_200_pgnet
fi

# (b) the worker's CPU per upload against the rate
if has_rows cpu_sweep.dat; then
	# the x range: the points' rates, with a margin (log scale)
	read -r xlo xhi <<<"$(cat "$BENCH_OUT/cpu_sweep.dat" "$BENCH_OUT/cpu_200.dat" "$BENCH_OUT/cpu_200_pgnet.dat" 2>/dev/null |
		LC_ALL=C awk '/^#/ { next } /^"/ { sub(/^"[^"]*" /, ""); x = $1 } !/^"/ && NF >= 3 { x = $3 }
			x > 0 { lo = (lo == "" || x < lo) ? x : lo; hi = (x > hi) ? x : hi }
			END { print lo / 1.5, hi * 1.5 }')"
	{
		cat <<GP
$(terminal 960,640)
set output 'cpu_rate.png'
set title "The worker's CPU per upload at steady rates (part 2b: pgbench -R <rate> -T $SWEEP_SECONDS, one order a commit; the CPU\nfrom the start of pgbench to the end of the drain): shopping_upload $su_version, claim_interval $claim_ms ms\n$pic_run"
set xlabel 'uploads a second (over the run and its drain; log scale)'
set ylabel 'CPU per upload, µs'
set logscale x
set xrange [$xlo:$xhi]
set xtics (10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000)
set yrange [0:*]
set grid
set key top right
GP
		plot="plot 'cpu_sweep.dat' using 3:5 with linespoints pt 7 ps 1.3 lw 2 lc rgb '#1f77b4' title 'part 2b: shopping_upload (port A)', \\
     '' using 3:5:(sprintf('%d/s: %.0f µs', \$1, \$5)) with labels right offset -0.8,0.9 tc rgb '#1f77b4' notitle"
		if [ -n "$sweep_fixed" ]; then
			echo "fixed = $sweep_fixed"
			echo "marginal = $sweep_marginal"
			echo "f(x) = fixed / x + marginal"
			plot+=", \\
     f(x) with lines dt 2 lw 1.5 lc rgb '#7f7f7f' title sprintf('least squares: %.1f ms a second / rate + %.1f µs', fixed / 1000, marginal)"
		fi
		plot+=", \\
     'cpu_200.dat' using 2:3 with points pt 5 ps 1.6 lc rgb '#2ca02c' title 'part 2: shopping_upload, $LAT_RATE/s (port B, logging proxy)', \\
     '' using 2:3:(sprintf('%.0f µs', \$3)) with labels left offset 0.9,-0.9 tc rgb '#2ca02c' notitle"
		if has_rows cpu_200_pgnet.dat; then
			plot+=", \\
     'cpu_200_pgnet.dat' using 2:3 with points pt 9 ps 2 lc rgb '#d62728' title 'part 5: pg_net $pn_version, $LAT_RATE requests/s (port B)', \\
     '' using 2:3:(sprintf('%.0f µs', \$3)) with labels left offset 0.9,0.9 tc rgb '#d62728' notitle"
		fi
		echo "$plot"
	} >"$BENCH_OUT/cpu_rate.gp"
	draw cpu_rate
fi

# (c) WAL per order, split three ways
if has_rows wal_split.dat; then
	cat >"$BENCH_OUT/wal_split.gp" <<GP
$(terminal 800,640)
set output 'wal_split.png'
set title "WAL per order, split (part 3: pgbench inserts, $TPS_RUNS runs of $TPS_SECONDS s of each configuration)\nshopping_upload $su_version\n$pic_run"
set ylabel 'WAL bytes per order'
set style data histograms
set style histogram rowstacked
set style fill solid 0.85 border -1
set boxwidth 0.4
set yrange [0:*]
set grid ytics
set key below vertical
set xtics nomirror
plot 'wal_split.dat' using 2:xtic(1) lc rgb '#7f7f7f' title "the merchant's insert (triggers disabled)", \\
     '' using 3 lc rgb '#ff7f0e' title "the trigger's queueing (no worker - disabled)", \\
     '' using 4 lc rgb '#1f77b4' title "the worker's (on - no worker; drains included)", \\
     '' using 0:(\$2 / 2):(sprintf('%d B', \$2)) with labels notitle, \\
     '' using 0:(\$2 + \$3 / 2):(sprintf('%d B', \$3)) with labels notitle, \\
     '' using 0:(\$2 + \$3 + \$4 / 2):(sprintf('%d B', \$4)) with labels notitle, \\
     '' using 0:(\$2 + \$3 + \$4):(sprintf('%d B an order', \$2 + \$3 + \$4)) with labels offset 0,1 notitle
GP
	draw wal_split
fi
echo
if [ -n "$GNUPLOT" ]; then
	echo "Pictures (gnuplot; cd $BENCH_OUT and gnuplot NAME.gp draws NAME.png again):"
else
	echo "Pictures: none, gnuplot is not installed (apt-get install gnuplot-nox; then cd $BENCH_OUT and gnuplot NAME.gp)"
fi
[ "${#pictures[@]}" = 0 ] || printf '  %s\n' "${pictures[@]}"
[ -z "$wal_csv" ] || outputs+=("$wal_csv")
echo "The data files and the gnuplot scripts:"
printf '  %s\n' "${outputs[@]}"
if [ "${#failures[@]}" -gt 0 ]; then
	echo
	echo "worker.sh: FAILED (${#failures[@]}):"
	printf '  %s\n' "${failures[@]}"
	exit 1
fi
