#!/usr/bin/env bash
# Usage: bash bench/merchant_insert.sh     (as root; about 6 minutes on 2 cores)
#
# What the extension's schema costs the merchant's own inserts, triggers
# disabled: WAL per order and inserts per second into shopping_upload.orders
# after a checkpoint, on a table that already holds ROWS orders, for the
# schema of each version (1.0, 1.1, 1.2: the unique order-key indexes are
# what differ).  Order numbers grow with time, as merchants' do.
#
# Environment:
#   ROWS=1000000    orders in each table before the measure
#   TXNS=20000      single-row insert transactions per round (pgbench -c 1)
#   ROUNDS=3        rounds, the versions interleaved in each; min/median/max
#   PG_BIN=/usr/lib/postgresql/15/bin   (the extension installed for it)
#
# Method.  A throwaway cluster as the "postgres" OS user in a mktemp -d
# folder (Unix socket only), shared_buffers = 1GB, max_wal_size = 8GB,
# checkpoint_timeout = 1h, full_page_writes on, defaults otherwise.  One
# database per version with CREATE EXTENSION shopping_upload VERSION 'V'
# (no preload: no worker, no library call on a plain INSERT), the
# extension's user triggers disabled on orders, ROWS orders inserted in one
# statement (out_trade_no 'T' || a zero-padded counter), VACUUM ANALYZE.
# Each round, for each version in turn: CHECKPOINT, then pgbench -n -c 1 -t
# TXNS of one INSERT (out_trade_no from clock_timestamp(): growing), WAL =
# pg_current_wal_lsn() after - before, over TXNS.
set -euo pipefail

ROWS=${ROWS:-1000000}
TXNS=${TXNS:-20000}
ROUNDS=${ROUNDS:-3}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
VERSIONS="1.0 1.1 1.2"

[ "$(id -u)" = 0 ] || { echo "run as root (the cluster runs as postgres)" >&2; exit 2; }
dir=$(mktemp -d /tmp/su-bench-insert.XXXXXX)
chown postgres "$dir"
as_pg() { (cd / && runuser -u postgres -- "$@"); }
cleanup() {
	[ -f "$dir/data/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1
	rm -rf "$dir"
}
trap cleanup EXIT
psql_() { as_pg "$PG_BIN/psql" -X -q -At -h "$dir" -p 5432 -U postgres -v ON_ERROR_STOP=1 "$@"; }

as_pg "$PG_BIN/initdb" -D "$dir/data" -A trust -U postgres --encoding=UTF8 --locale=C.UTF-8 >/dev/null
cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$dir'
port = 5432
shared_buffers = 1GB
max_wal_size = 8GB
checkpoint_timeout = 1h
CONF
as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w start >/dev/null

cat >"$dir/insert.sql" <<'SQL'
INSERT INTO shopping_upload.orders (order_number_type, mchid, out_trade_no, openid, logistics_type)
VALUES (1, '1230000109', 'U' || to_char(clock_timestamp(), 'YYYYMMDDHH24MISSUS') || :client_id,
        'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o', 1);
SQL
chmod 644 "$dir/insert.sql"

for v in $VERSIONS; do
	db=v${v/./}
	t0=$(date +%s)
	psql_ -d postgres -c "CREATE DATABASE $db"
	psql_ -d "$db" -c "CREATE EXTENSION shopping_upload VERSION '$v'" \
		-c "ALTER TABLE shopping_upload.orders DISABLE TRIGGER USER" \
		-c "INSERT INTO shopping_upload.orders (order_number_type, mchid, out_trade_no, openid, logistics_type)
			SELECT 1, '1230000109', 'T' || lpad(g::text, 12, '0'), 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o', 1
			  FROM generate_series(1, $ROWS) g" \
		-c "VACUUM ANALYZE shopping_upload.orders"
	echo "# $v: $ROWS orders loaded in $(($(date +%s) - t0)) s; indexes: $(psql_ -d "$db" -c "SELECT string_agg(indexrelid::regclass::text, ', ' ORDER BY 1) FROM pg_index WHERE indrelid = 'shopping_upload.orders'::regclass")"
done

declare -A wal tps
for r in $(seq "$ROUNDS"); do
	for v in $VERSIONS; do
		db=v${v/./}
		psql_ -d "$db" -c CHECKPOINT
		a=$(psql_ -d "$db" -c "SELECT pg_current_wal_lsn()")
		t=$(as_pg "$PG_BIN/pgbench" -h "$dir" -p 5432 -U postgres -n -c 1 -t "$TXNS" -f "$dir/insert.sql" "$db" 2>&1 |
			sed -n 's/^tps = \([0-9]*\)[.0-9]*.*/\1/p' | head -n 1)
		b=$(psql_ -d "$db" -c "SELECT pg_current_wal_lsn()")
		w=$(psql_ -d "$db" -c "SELECT round(('$b'::pg_lsn - '$a'::pg_lsn) / $TXNS.0)")
		wal[$v]+="$w "
		tps[$v]+="$t "
		echo "# round $r, $v: $w B of WAL per order, $t inserts/s"
	done
done

# min/median/max of a list of numbers
mmm() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ a[NR] = $1 } END { printf "%s / %s / %s", a[1], a[int((NR + 1) / 2)], a[NR] }'; }
med() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

echo
echo "The merchant's insert, triggers disabled, after a checkpoint, on $ROWS orders ($ROUNDS rounds of $TXNS; min / median / max)"
printf '%-8s %-28s %-34s %s\n' version "WAL per order (B)" "inserts/s" "median against 1.0 (WAL, tps)"
for v in $VERSIONS; do
	printf '%-8s %-28s %-34s %s\n' "$v" "$(mmm "${wal[$v]}")" "$(mmm "${tps[$v]}")" \
		"$(awk -v a="$(med "${wal[$v]}")" -v b="$(med "${wal[1.0]}")" -v c="$(med "${tps[$v]}")" -v d="$(med "${tps[1.0]}")" \
			'BEGIN { printf "%.2f, %.2f", a / b, c / d }')"
done
