#!/usr/bin/env bash
# Usage: bash bench/validate.sh
#
# What validate_payload() costs for small and hostile payloads: 10 and 50
# items (the API's limit for one sub-order), 20,000 and 100,000 items in one
# sub-order (past the limit: reported, not walked), and 2,000 sub-orders of
# one item each (walked: the validator's work grows with the payload).  A
# benchmark, not a test: it prints figures, no verdict.
#
# Run as root (or as a user who can run PostgreSQL): a throwaway cluster as
# the "postgres" OS user in a mktemp -d folder, on a Unix socket there, with
# shared_preload_libraries = 'shopping_upload', stopped and removed on exit.
# The extension must be installed (make install).  Each figure is the median
# of 5 timed calls inside the server (clock_timestamp() around the call in a
# PL/pgSQL loop, after a warm-up call), the payload built beforehand.
set -euo pipefail

# the major this Debian suite ships (scripts/pg_major.sh), unless PG_BIN is set
PG_BIN=${PG_BIN:-/usr/lib/postgresql/$(. "$(dirname "$0")/../scripts/pg_major.sh" && su_pg_major)/bin}
case ${1:-} in
	-h | --help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
if [ ! -f "$("$PG_BIN/pg_config" --pkglibdir)/shopping_upload.so" ]; then
	echo "validate.sh: shopping_upload is not installed for $PG_BIN (make install)" >&2
	exit 1
fi
if [ "$(id -u)" = 0 ]; then
	as_pg() { runuser -u postgres -- "$@"; }
	PG_USER=postgres
else
	as_pg() { "$@"; }
	PG_USER=$(id -un)
fi

work=
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$work" ] && [ -d "$work" ]; then
		[ -f "$work/data/postmaster.pid" ] &&
			as_pg "$PG_BIN/pg_ctl" -D "$work/data" -m immediate -w stop >/dev/null 2>&1
		rm -rf "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
work=$(mktemp -d /tmp/su-bench.XXXXXX)
chown "$PG_USER" "$work"
cd "$work"
as_pg "$PG_BIN/initdb" -D "$work/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
	--no-sync >"$work/initdb.log" 2>&1 || { cat "$work/initdb.log" >&2; exit 1; }
cat >>"$work/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$work'
shared_preload_libraries = 'shopping_upload'
shopping_upload.database_name = 'su_bench_no_worker'
fsync = off
CONF
as_pg "$PG_BIN/pg_ctl" -D "$work/data" -l "$work/server.log" -w -t 60 start >/dev/null
as_pg "$PG_BIN/psql" -X -q -h "$work" -d postgres -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION shopping_upload;
CREATE FUNCTION pg_temp.item(g int) RETURNS jsonb LANGUAGE sql AS $$
  SELECT jsonb_build_object('merchant_item_id', 'sku-' || g, 'name', 'Tea ' || g,
    'unit_price', 100, 'quantity', 1, 'image_url', jsonb_build_array('https://img.example.com/t.png'),
    'item_detail_jump_link', jsonb_build_object('type', 'URL', 'url', 'https://shop.example.com/i/1'))
$$;
CREATE FUNCTION pg_temp.order_of(subs jsonb) RETURNS jsonb LANGUAGE sql AS $$
  SELECT jsonb_build_object('order_key', jsonb_build_object('order_number_type', 2, 'transaction_id', '4200000001'),
    'order_list', subs, 'payer', jsonb_build_object('openid', 'o'), 'upload_time', '2026-01-01T00:00:00.000+08:00')
$$;
CREATE FUNCTION pg_temp.sub(n int, items int) RETURNS jsonb LANGUAGE sql AS $$
  SELECT jsonb_build_object('merchant_order_no', 'm-' || n,
    'order_detail_jump_link', jsonb_build_object('type', 'URL', 'url', 'https://shop.example.com/o/1'),
    'item_list', (SELECT jsonb_agg(pg_temp.item(g)) FROM generate_series(1, items) g))
$$;
CREATE TEMP TABLE cases (label text, payload jsonb);
INSERT INTO cases VALUES
  ('10 items', pg_temp.order_of(jsonb_build_array(pg_temp.sub(1, 10)))),
  ('50 items', pg_temp.order_of(jsonb_build_array(pg_temp.sub(1, 50)))),
  ('20,000 items in one sub-order', pg_temp.order_of(jsonb_build_array(pg_temp.sub(1, 20000)))),
  ('100,000 items in one sub-order', pg_temp.order_of(jsonb_build_array(pg_temp.sub(1, 100000)))),
  ('2,000 sub-orders of 1 item', pg_temp.order_of((SELECT jsonb_agg(pg_temp.sub(n, 1)) FROM generate_series(1, 2000) n))),
  ('4,000 sub-orders of 1 item', pg_temp.order_of((SELECT jsonb_agg(pg_temp.sub(n, 1)) FROM generate_series(1, 4000) n)));
CREATE FUNCTION pg_temp.median_ms(p jsonb) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz;
  ms float8[] := '{}';
  n bigint;
BEGIN
  SELECT count(*) INTO n FROM shopping_upload.validate_payload(p);	-- warm-up
  FOR r IN 1..5 LOOP
    t0 := clock_timestamp();
    SELECT count(*) INTO n FROM shopping_upload.validate_payload(p);
    ms := ms || (extract(epoch FROM clock_timestamp() - t0) * 1000)::float8;
  END LOOP;
  RETURN round((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(ms) x)::numeric, 3);
END
$$;
\pset footer off
SELECT label, pg_size_pretty(pg_column_size(payload)::bigint) AS jsonb_size,
       (SELECT count(*) FROM shopping_upload.validate_payload(payload)) AS violations,
       pg_temp.median_ms(payload) AS median_ms
  FROM cases;
SQL
