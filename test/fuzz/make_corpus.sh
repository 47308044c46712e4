#!/usr/bin/env bash
# Regenerates the seed corpus test/fuzz/corpus/ (the files are committed; the
# fuzzer does not need this script):
#   demo_order.json  test/demo_order.json
#   edge-*.json    hand-made edge cases (make_edge_cases.py)
#   sql-NNN.json   the payloads that sql/validate.sql hands to
#                  validate_payload(), computed by PostgreSQL itself
#                  (jsonb_set, #-, ||) on a throwaway cluster where
#                  validate_payload is a stub that records its argument; NNN
#                  is the order of first use.  Of the 300-odd, only those that
#                  add coverage to the files above are kept (libFuzzer -merge),
#                  unless ALL=1.
# Needs PostgreSQL 15's binaries (not the extension), python3, and for the
# merge what run.sh needs (clang, libclang-rt-14-dev).  Run as root or as any
# user; the cluster runs as the user that scripts/lib.sh names.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$top/scripts/lib.sh"
out=$here/corpus

work=$(mktemp -d /tmp/shopping_upload-corpus.XXXXXX)
chmod 755 "$work"
[ "$(id -u)" = 0 ] && chown "$PG_USER" "$work"
cleanup() {
	[ -f "$work/data/postmaster.pid" ] && as_pg pg_ctl -D "$work/data" -m immediate stop >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT

as_pg initdb -D "$work/data" -A trust -U postgres --no-sync >"$work/initdb.log" 2>&1 ||
	{ cat "$work/initdb.log" >&2; exit 1; }
as_pg pg_ctl -D "$work/data" -l "$work/server.log" -w \
	-o "-c listen_addresses='' -c unix_socket_directories='$work' -c fsync=off" start >/dev/null
psql_() { as_pg psql -X -h "$work" -U postgres -d postgres "$@"; }

# the stub: records every payload, reports nothing
psql_ -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE TABLE public.corpus_seen (n bigserial, payload text);
CREATE SCHEMA shopping_upload;
CREATE FUNCTION shopping_upload.validate_payload(payload jsonb, appid text DEFAULT NULL)
RETURNS TABLE (errcode integer, errmsg text, field text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  INSERT INTO public.corpus_seen (payload) VALUES (payload::text);
END $$;
SQL
# a session of its own, like pg_regress: temp objects, \gset and all
psql_ -q -f "$top/sql/validate.sql" >/dev/null 2>"$work/validate.err" || true
if [ -s "$work/validate.err" ]; then
	echo "make_corpus.sh: sql/validate.sql said:" >&2
	cat "$work/validate.err" >&2
fi

all=$work/all
mkdir -p "$all"
# one payload a line: jsonb's text has no raw newline
psql_ -At -c "SELECT payload FROM public.corpus_seen GROUP BY payload ORDER BY min(n)" |
	python3 -c '
import sys
out = sys.argv[1]
n = 0
for line in sys.stdin.buffer:
    line = line.rstrip(b"\n")
    if line:
        n += 1
        with open("%s/sql-%03d.json" % (out, n), "wb") as f:
            f.write(line)
print("make_corpus.sh: %d payloads from sql/validate.sql" % n)
' "$all"

mkdir -p "$work/base"
cp "$top/test/demo_order.json" "$work/base/demo_order.json"
python3 "$here/make_edge_cases.py" "$work/base"

mkdir -p "$out"
rm -f "$out"/*.json
cp "$work/base"/* "$out"/
if [ "${ALL:-0}" = 1 ]; then
	cp "$all"/* "$out"/
else
	# keep the sql payloads that add coverage to the hand-made files
	bash "$here/run.sh" --build "$work/bin" >/dev/null || exit 1
	mkdir -p "$work/merged"
	cp "$work/base"/* "$work/merged"/
	"$work/bin/fuzz_validate" -merge=1 "$work/merged" "$all" >"$work/merge.log" 2>&1 ||
		{ tail -n 20 "$work/merge.log" >&2; exit 1; }
	# libFuzzer names what it adds by the SHA-1 of its bytes
	kept=0
	for f in "$all"/*; do
		if [ -e "$work/merged/$(sha1sum <"$f" | cut -d' ' -f1)" ]; then
			cp "$f" "$out"/
			kept=$((kept + 1))
		fi
	done
	echo "make_corpus.sh: $kept of them add coverage and are kept"
fi
echo "make_corpus.sh: $(find "$out" -type f | wc -l) files, $(du -sb "$out" | cut -f1) bytes in $out"
