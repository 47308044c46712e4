#!/usr/bin/env bash
# Usage: bash bench/payload.sh [N]
#
#   N  orders of each size (3 items, 50 items) to import and time; default 1000
#
# What build_payload() and validate_payload() cost per order, beside a plain
# SQL reference (bench/payload_reference.sql) that builds the same jsonb with
# jsonb_build_object/jsonb_agg from the same tables.  A benchmark, not a test:
# it prints figures, no verdict.
#
# Run as root (or as a user who can run PostgreSQL): it starts a throwaway
# cluster as the "postgres" OS user in a mktemp -d folder, listening only on a
# Unix socket there, with shared_preload_libraries = 'shopping_upload' and
# shopping_upload.auto_upload = off, and stops and removes it on exit,
# whatever happens.  The extension must be installed (make install).
#
# Method: N orders of each size are imported with import_order(); before any
# timing the reference is checked against build_payload() on every one of
# them (and on a few edge-case rows), upload_time aside.  Each measurement is
# a PL/pgSQL loop over the N orders, timed with clock_timestamp() inside the
# server (no client round trips); after one warm-up pass, every measurement
# is repeated 5 times and the median is printed.  All loops run in one
# long-lived session, as an application's connection would.
set -euo pipefail

# the major this Debian suite ships (scripts/pg_major.sh), unless PG_BIN is set
PG_BIN=${PG_BIN:-/usr/lib/postgresql/$(. "$(dirname "$0")/../scripts/pg_major.sh" && su_pg_major)/bin}
REPS=5
N=${1:-1000}

case $N in
	-h | --help)
		sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
esac
if ! [[ $N =~ ^[1-9][0-9]{0,5}$ ]]; then
	echo "usage: bash bench/payload.sh [N]   (N: 1..999999 orders of each size)" >&2
	exit 2
fi

here=$(cd "$(dirname "$0")/.." && pwd)
reference_sql=$here/bench/payload_reference.sql
[ -r "$reference_sql" ] || { echo "payload.sh: $reference_sql is missing" >&2; exit 1; }
for prog in initdb pg_ctl psql; do
	[ -x "$PG_BIN/$prog" ] || { echo "payload.sh: $PG_BIN/$prog not found" >&2; exit 1; }
done
if [ ! -f "$("$PG_BIN/pg_config" --pkglibdir)/shopping_upload.so" ] ||
	[ ! -f "$("$PG_BIN/pg_config" --sharedir)/extension/shopping_upload.control" ]; then
	echo "payload.sh: shopping_upload is not installed for $PG_BIN (make install)" >&2
	exit 1
fi

# PostgreSQL refuses to run as root: as root, the cluster runs as "postgres".
if [ "$(id -u)" = 0 ]; then
	PG_USER=postgres
	as_pg() { runuser -u "$PG_USER" -- "$@"; }
else
	PG_USER=$(id -un)
	as_pg() { "$@"; }
fi

start_seconds=$SECONDS
work=
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$work" ] && [ -d "$work" ]; then
		if [ -f "$work/data/postmaster.pid" ]; then
			as_pg "$PG_BIN/pg_ctl" -D "$work/data" -m fast -w -t 20 stop >/dev/null 2>&1 ||
				as_pg "$PG_BIN/pg_ctl" -D "$work/data" -m immediate -w stop >/dev/null 2>&1 || true
		fi
		if [ "$rc" != 0 ] && [ -f "$work/server.log" ]; then
			echo "payload.sh: failed; end of the server log:" >&2
			tail -n 20 "$work/server.log" >&2 || true
		fi
		rm -rf "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

work=$(mktemp -d /tmp/su-bench.XXXXXX)
chown "$PG_USER" "$work"
cd "$work"						# a folder the cluster user can read

# ---------------------------------------------------------------------------
# The throwaway cluster
# ---------------------------------------------------------------------------
as_pg "$PG_BIN/initdb" -D "$work/data" -U postgres -A trust -E UTF8 \
	--locale=C.UTF-8 --no-sync >"$work/initdb.log" 2>&1 ||
	{ cat "$work/initdb.log" >&2; exit 1; }
cat >>"$work/data/postgresql.conf" <<CONF
# bench/payload.sh
listen_addresses = ''
unix_socket_directories = '$work'
shared_preload_libraries = 'shopping_upload'
shopping_upload.auto_upload = off	# the queue trigger does nothing
# no upload worker: it would have nothing to do, keep it off the CPU
shopping_upload.database_name = 'su_bench_no_worker'
timezone = 'Asia/Shanghai'			# upload_time as WeChat sees it: +08:00
fsync = off							# throwaway data
synchronous_commit = off
shared_buffers = 128MB
CONF
as_pg "$PG_BIN/pg_ctl" -D "$work/data" -l "$work/server.log" -w -t 60 start >/dev/null

psql_db() {						# psql_db DB [psql options]: SQL on stdin
	local db=$1
	shift
	as_pg "$PG_BIN/psql" -h "$work" -U postgres -d "$db" -X -q -v ON_ERROR_STOP=1 "$@"
}

psql_db postgres -c 'CREATE DATABASE bench' </dev/null
pg_version=$(psql_db bench -At -c 'SHOW server_version' </dev/null)

# ---------------------------------------------------------------------------
# Orders: N of 3 items and N of 50 items, each in 2 sub-orders (2+1, 25+25),
# through import_order().  Their members vary with the order number: order
# key by merchant number or transaction_id (mchid then empty), logistics_type
# present or absent, description present, empty or absent, 1 to 3 images,
# MINI_PROGRAM links in the first sub-order, URL links in the second.  Every
# payload satisfies WeChat's rules.
# ---------------------------------------------------------------------------
psql_db bench -v N="$N" <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION shopping_upload;
CREATE SCHEMA bench;
CREATE TABLE bench.sample (size int NOT NULL, order_id bigint PRIMARY KEY);

INSERT INTO bench.sample (size, order_id)
SELECT sz, shopping_upload.import_order(jsonb_strip_nulls(jsonb_build_object(
  'order_key', CASE WHEN i % 5 <> 0
    THEN jsonb_build_object('order_number_type', 1, 'mchid', '1230000109',
                            'out_trade_no', format('BENCH%s_%s', sz, i))
    ELSE jsonb_build_object('order_number_type', 2, 'mchid', '',
                            'transaction_id', format('4200%s%s', sz, lpad(i::text, 20, '0')))
    END,
  'order_list', (SELECT jsonb_agg(jsonb_build_object(
      'merchant_order_no', format('BENCH%s_%s-%s', sz, i, k),
      'order_detail_jump_link', CASE WHEN k = 0
         THEN jsonb_build_object('type', 'MINI_PROGRAM', 'appid', 'wxbenchappid',
                                 'path', format('/pages/order?no=%s_%s', sz, i))
         ELSE jsonb_build_object('type', 'URL',
                                 'url', format('https://shop.example.com/order/%s_%s', sz, i))
         END,
      'item_list', (SELECT jsonb_agg(jsonb_build_object(
          'merchant_item_id', format('sku-%s-%s', k, j),
          'name', format('商品 Item %s', j),
          'description', CASE j % 3 WHEN 0 THEN format('规格 %s g', 50 * j)
                                    WHEN 1 THEN '' END,
          'unit_price', 100 + 7 * j,
          'quantity', 1 + j % 4,
          'image_url', (SELECT jsonb_agg(format('https://img.example.com/%s-%s.png', j, u))
                          FROM generate_series(1, 1 + j % 3) u),
          'item_detail_jump_link', CASE WHEN k = 0
             THEN jsonb_build_object('type', 'MINI_PROGRAM', 'appid', 'wxbenchappid',
                                     'path', format('/pages/item?sku=%s', j))
             ELSE jsonb_build_object('type', 'URL',
                                     'url', format('https://shop.example.com/item/%s', j))
             END) ORDER BY j)
        FROM generate_series(0, CASE WHEN k = 0 THEN (sz + 1) / 2 ELSE sz / 2 END - 1) j))
    ORDER BY k)
    FROM generate_series(0, 1) k),
  'payer', jsonb_build_object('openid', format('oBench%s', lpad(i::text, 22, '0'))),
  'logistics_type', CASE WHEN i % 3 <> 0 THEN 1 END)))
FROM (VALUES (3), (50)) AS z(sz), generate_series(1, :N) AS i;

/*
 * Edge rows for the equivalence check only (deleted before timing): what
 * import_order() never stores but the tables allow.  -1: every member NULL,
 * no sub-order.  -2: empty order key members, empty openid, a sub-order
 * without items and with an all-NULL link, items with every member NULL,
 * NULL elements in image_url, an empty image_url, partial links, sub-order
 * and item numbers out of insertion order.  -3: image_url of NULLs only.
 */
INSERT INTO shopping_upload.orders (order_id) VALUES (-1);
INSERT INTO shopping_upload.orders (order_id, appid, order_number_type,
	transaction_id, mchid, out_trade_no, openid, logistics_type)
VALUES (-2, 'wxother', 2, '', NULL, '', '', 2),
	   (-3, NULL, 1, NULL, 'm', 'o', 'x', NULL);
INSERT INTO shopping_upload.sub_orders VALUES
	(-2, 5, '', NULL, NULL, NULL, NULL),
	(-2, 0, NULL, NULL, 'https://x.example.com/o', NULL, NULL),
	(-3, 0, 's', 'URL', 'https://x.example.com/o', 'wx', '/p');
INSERT INTO shopping_upload.items (order_id, sub_order_no, item_no,
	merchant_item_id, name, description, unit_price, quantity, image_url,
	link_type, link_url, link_appid, link_path) VALUES
	(-2, 0, 7, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
	(-2, 0, 3, 'a', '', '', 0, NULL, '{https://a.example.com/1,NULL,https://a.example.com/2}',
	 'URL', NULL, NULL, NULL),
	(-2, 0, 4, 'b', 'n', 'd', -1, 9223372036854775807, '{}', NULL, NULL, 'wx', '/p'),
	(-3, 0, 0, 'c', 'n', ' ', 1, 1, '{NULL}', NULL, 'https://x.example.com/i', NULL, NULL);
SQL
psql_db bench -c "SET client_min_messages = warning" -f - <"$reference_sql"

# ---------------------------------------------------------------------------
# The check, once, before timing
# ---------------------------------------------------------------------------
check=$(psql_db bench -At -F '|' <<'SQL'
WITH o AS (
	SELECT coalesce(s.size::text, 'edge') AS what, e.order_id,
		   shopping_upload.build_payload(e.order_id) AS ours,
		   bench.payload_ref(e.order_id) AS ref
	  FROM (SELECT order_id FROM bench.sample UNION ALL VALUES (-1), (-2), (-3)) e
	  LEFT JOIN bench.sample s USING (order_id))
SELECT what, count(*),
	   count(*) FILTER (WHERE ours - 'upload_time' = ref - 'upload_time'),
	   count(*) FILTER (WHERE ours ->> 'upload_time' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$'
						  AND ref ->> 'upload_time' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$'),
	   min(ours ->> 'upload_time'),
	   min(ref ->> 'upload_time'),
	   round(avg(octet_length((ours - 'upload_time')::text))),
	   sum((SELECT count(*) FROM shopping_upload.validate_payload(ours))),
	   min(order_id) FILTER (WHERE ours - 'upload_time' <> ref - 'upload_time')
  FROM o GROUP BY what ORDER BY what = 'edge', length(what), what;
SQL
)
psql_db bench -c 'DELETE FROM shopping_upload.orders WHERE order_id < 0' -c 'VACUUM ANALYZE' </dev/null

echo "shopping_upload payload benchmark: PostgreSQL $pg_version, $(nproc) CPUs, TimeZone Asia/Shanghai"
echo "$N orders of 3 items and $N of 50 items, 2 sub-orders each; median of $REPS repetitions (after 1 warm-up), µs per order"
echo
echo "check (before timing): SQL reference vs build_payload(), upload_time aside"
mismatch=
while IFS='|' read -r what total same fmt t_ours t_ref bytes violations first_diff; do
	if [ "$what" = edge ]; then
		label="edge rows (NULL/empty members, links, image_url)"
		extra=
	else
		label="$(printf '%2s' "$what") items (payload ~$bytes bytes)"
		extra=", validate_payload: $violations violations"
	fi
	if [ "$same" = "$total" ]; then verdict="identical"; else verdict="DIFFERENT (first: order $first_diff)"; mismatch=1; fi
	printf '  %-50s %s/%s %s; upload_time RFC 3339 in both: %s/%s%s\n' \
		"$label:" "$same" "$total" "$verdict" "$fmt" "$total" "$extra"
	if [ "$what" = 3 ]; then
		sample_times="  e.g. upload_time: build_payload $t_ours, reference $t_ref"
	fi
done <<<"$check"
echo "${sample_times:-}"
if [ -n "$mismatch" ]; then
	echo "  the reference does NOT build the same payload: its figures below compare different work"
fi
echo

# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------
psql_db bench <<'SQL'
/*
 * One measurement: the cost per order of one operation over the N orders of
 * a size, in µs, inside the server.  The payloads that "validate" checks are
 * built beforehand, outside the timed loop.  "loop" and "loop_srf" time the
 * harness alone (an assignment; a SELECT count(*) from a set-returning
 * function), which the other figures include.
 */
CREATE FUNCTION bench.time_loop(kind text, sz int)
RETURNS float8
LANGUAGE plpgsql AS $f$
DECLARE
	ids		bigint[];
	payloads jsonb[];
	id		bigint;
	p		jsonb;
	v		jsonb;
	n		bigint;
	t0		timestamptz;
	t1		timestamptz;
BEGIN
	SELECT array_agg(order_id ORDER BY order_id) INTO ids
	  FROM bench.sample WHERE size = sz;
	IF kind = 'validate' THEN
		SELECT array_agg(shopping_upload.build_payload(x) ORDER BY x) INTO payloads
		  FROM unnest(ids) x;
	END IF;

	t0 := clock_timestamp();
	CASE kind
	WHEN 'build' THEN
		FOREACH id IN ARRAY ids LOOP
			v := shopping_upload.build_payload(id);
		END LOOP;
	WHEN 'ref' THEN
		FOREACH id IN ARRAY ids LOOP
			v := bench.payload_ref(id);
		END LOOP;
	WHEN 'validate' THEN
		FOREACH p IN ARRAY payloads LOOP
			SELECT count(*) INTO n FROM shopping_upload.validate_payload(p);
		END LOOP;
	WHEN 'build_validate' THEN
		FOREACH id IN ARRAY ids LOOP
			SELECT count(*) INTO n
			  FROM shopping_upload.validate_payload(shopping_upload.build_payload(id));
		END LOOP;
	WHEN 'validate_order' THEN
		FOREACH id IN ARRAY ids LOOP
			SELECT count(*) INTO n FROM shopping_upload.validate_order(id);
		END LOOP;
	WHEN 'loop' THEN
		FOREACH id IN ARRAY ids LOOP
			v := to_jsonb(id);
		END LOOP;
	WHEN 'loop_srf' THEN
		FOREACH id IN ARRAY ids LOOP
			SELECT count(*) INTO n FROM jsonb_array_elements('[]'::jsonb);
		END LOOP;
	END CASE;
	t1 := clock_timestamp();
	RETURN extract(epoch FROM t1 - t0) * 1e6 / cardinality(ids);
END
$f$;
SQL

kinds="build ref validate build_validate validate_order loop loop_srf"
echo "timing ($REPS repetitions + 1 warm-up)..." >&2
{
	echo "CREATE TEMP TABLE r (rep int, size int, kind text, us float8);"
	for rep in $(seq 0 "$REPS"); do		# rep 0: warm-up, not counted
		for size in 3 50; do
			for kind in $kinds; do
				echo "INSERT INTO r VALUES ($rep, $size, '$kind', bench.time_loop('$kind', $size));"
			done
		done
	done
	echo "SELECT size, kind, percentile_cont(0.5) WITHIN GROUP (ORDER BY us),"
	echo "       max(us) / nullif(min(us), 0)"
	echo "  FROM r WHERE rep > 0 GROUP BY size, kind ORDER BY size, kind;"
} | psql_db bench -At -F '|' >"$work/medians"

declare -A med spread
while IFS='|' read -r size kind us sp; do
	med[$size.$kind]=$us
	spread[$size.$kind]=$sp
done <"$work/medians"

f1() { LC_ALL=C printf '%.1f' "$1"; }
echo " order size | build_payload µs | SQL reference µs | ratio (ref/ours) | validate µs | build+validate µs | validate_order µs"
echo "------------+------------------+------------------+------------------+-------------+-------------------+-------------------"
for size in 3 50; do
	ratio=$(LC_ALL=C awk -v r="${med[$size.ref]}" -v o="${med[$size.build]}" 'BEGIN { printf "%.2f", r / o }')
	LC_ALL=C printf ' %-10s | %16s | %16s | %16s | %11s | %17s | %17s\n' \
		"$size items" "$(f1 "${med[$size.build]}")" "$(f1 "${med[$size.ref]}")" \
		"$ratio" "$(f1 "${med[$size.validate]}")" \
		"$(f1 "${med[$size.build_validate]}")" "$(f1 "${med[$size.validate_order]}")"
done
echo
echo "build_payload, SQL reference: one jsonb per order (SQL reference: bench.payload_ref(), bench/payload_reference.sql)"
echo "validate: validate_payload() of the built payload; build+validate: validate_payload(build_payload(id));"
echo "validate_order: validate_order(id), the same in C without the jsonb round trip"
worst=$(for k in "${!spread[@]}"; do
	case $k in *.loop | *.loop_srf) continue ;; esac
	echo "${spread[$k]} $k"
done | sort -g | tail -n 1)
LC_ALL=C printf 'harness overhead, included above: %.1f µs (assignment), %.1f µs (SELECT count(*) FROM f(...)) per order\n' \
	"${med[3.loop]}" "${med[3.loop_srf]}"
LC_ALL=C printf 'largest spread between repetitions: max/min = %.2f (%s)\n' "${worst%% *}" "${worst#* }"
echo "total run time: $((SECONDS - start_seconds)) s"
