#!/usr/bin/env bash
# Runs every test of shopping_upload on a throwaway cluster and ends with one
# line "N passed, N failed", totalled over every suite.  Run as root on a
# fresh Debian 12 machine (it installs what it needs), or as a user who can
# write PostgreSQL's extension directories.
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" = 0 ]; then
	bash "$here/scripts/deps.sh" || exit 1
fi
. "$here/scripts/lib.sh"
ulimit -n 65536 2>/dev/null || ulimit -n 4096 2>/dev/null || true

work=$(mktemp -d /tmp/shopping_upload-test.XXXXXX)
chmod 755 "$work"
chown "$PG_USER" "$work"
cleanup() {
	# stop whatever a suite left behind, then remove the folder
	for d in "$work"/*_instance "$work"/tree/tmp_check/t_*_data/pgdata; do
		[ -f "$d/postmaster.pid" ] && as_pg pg_ctl -D "$d" -m immediate stop >/dev/null 2>&1
	done
	rm -rf "$work"
}
trap cleanup EXIT
tree=$work/tree
build_and_install "$here" "$tree" || { echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
tally() {						# tally NAME PASSED FAILED
	echo "== $1: $2 passed, $3 failed"
	[ "$3" != 0 ] && [ ! -s "$work/recap.$1" ] && echo "$1: $3 failed (no detail)" >"$work/recap.$1"
	passed=$((passed + $2))
	failed=$((failed + $3))
}

# pg_regress and isolation print "test NAME ... ok" or "... FAILED"
regress_suite() {
	local name=$1 log=$work/$1.log
	shift
	as_pg make -C "$tree" PG_CONFIG="$PG_CONFIG" "$@" >"$log" 2>&1
	local rc=$? ok bad
	ok=$(grep -cE '\.\.\. ok( |$)|^ok [0-9]+ ' "$log")
	bad=$(grep -cE '\.\.\. FAILED|\.\.\. failed|^not ok [0-9]+ ' "$log")
	if [ "$rc" != 0 ] && [ "$bad" = 0 ]; then bad=1; fi
	[ "$bad" != 0 ] && { tail -n 40 "$log"; cat "$tree"/regression.diffs "$tree"/output_iso/regression.diffs 2>/dev/null | head -n 200; }
	grep -E '\.\.\. FAILED|\.\.\. failed|^not ok [0-9]+ ' "$log" | sed "s/^/$name: /" >"$work/recap.$name"
	tally "$name" "$ok" "$bad"
}

# programs that end with their own "N passed, N failed" line
counted_suite() {
	local name=$1 log=$work/$1.log line
	shift
	"$@" >"$log" 2>&1
	local rc=$?
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	local ok=${line%% passed*} bad
	bad=${line#*passed, }
	bad=${bad%% failed*}
	[ -z "$line" ] && { ok=0; bad=1; }
	if [ "$rc" != 0 ] && [ "$bad" = 0 ]; then bad=1; fi
	[ "$bad" != 0 ] && tail -n 40 "$log"
	[ "$bad" != 0 ] && grep -E '^not ok|FAIL' "$log" | grep -vE '(^| )0 failed' | head -n 20 | sed "s/^/$name: /" >"$work/recap.$name"
	tally "$name" "$ok" "$bad"
}

# 1. the validators and the retry policy alone (C, no server); the rooms of
# src/ (no circle, the kinds in their table, the states written by the queue)
counted_suite unit as_pg make -C "$tree" -s PG_CONFIG="$PG_CONFIG" unit-test
counted_suite rooms as_pg python3 "$tree/test/rooms.py" "$tree/src"
counted_suite fuzz as_pg bash "$tree/test/fuzz/run.sh" "${FUZZ_SECONDS:-60}"

# 2. the stand-in WeChat server's own self-test
if [ -f "$tree/test/stub_selftest.sh" ]; then
	counted_suite stub as_pg bash "$tree/test/stub_selftest.sh"
fi

# 3. pg_regress on a temporary instance with the library preloaded
# the regression database is not served: its tests drive the queue by hand
cat >"$work/regress.conf" <<CONF
shared_preload_libraries = 'shopping_upload'
shopping_upload.databases = 'postgres'
CONF
chown "$PG_USER" "$work/regress.conf"
regress_suite regress installcheck ISOLATION= TAP_TESTS= \
	EXTRA_REGRESS_OPTS="--temp-instance=$work/regress_instance --temp-config=$work/regress.conf --encoding=UTF8"

# 4. isolation tests, when there are any
if grep -q '^ISOLATION' "$tree/Makefile"; then
	regress_suite isolation installcheck REGRESS= TAP_TESTS= \
		EXTRA_REGRESS_OPTS="--temp-instance=$work/isolation_instance --temp-config=$work/regress.conf --encoding=UTF8"
fi

# 5. TAP tests (PostgreSQL::Test::Cluster), when there are any
if ls "$tree"/t/*.pl >/dev/null 2>&1; then
	log=$work/tap.log
	as_pg make -C "$tree" PG_CONFIG="$PG_CONFIG" installcheck REGRESS= ISOLATION= \
		PROVE_FLAGS=-v >"$log" 2>&1
	rc=$?
	ok=$(grep -cE '^\s*ok [0-9]+' "$log")
	bad=$(grep -cE '^\s*not ok [0-9]+' "$log")
	if [ "$rc" != 0 ] && [ "$bad" = 0 ]; then bad=1; fi
	[ "$bad" != 0 ] && { grep -E 'not ok|^#|Failed|Dubious' "$log" | head -n 80; }
	# each failed test with its file and the diagnostics that follow it
	awk '/^t\/[0-9A-Za-z_]+\.pl \.\./ { file = $1 }
		/^\s*not ok [0-9]+/ { print "tap: " file ": " $0; n = 8; next }
		/^#\s+Failed test/ { print "tap:   " $0; n = 6; next }
		/^# HOLE / { print "tap:   " substr($0, 1, 600); next }
		n > 0 && /^\s*#/ { print "tap:   " $0; n--; next }
		{ n = 0 }
		/Dubious|Parse errors|No plan found|Bad plan/ { print "tap: " file ": " $0 }' "$log" |
		head -n 60 >"$work/recap.tap"
	# A failed check's diagnostics, from its test's own log, where they
	# follow it (prove's output gets them from stderr, often ahead of it); a
	# test that ended without a failed check (it died): its log's last lines
	for f in $(awk '/^t\/[0-9A-Za-z_]+\.pl \.\./ { file = $1 }
		/^\s*not ok [0-9]+|Dubious|Parse errors/ { print file }' "$log" | sort -u); do
		rl=$tree/tmp_check/log/regress_log_$(basename "$f" .pl)
		[ -f "$rl" ] || continue
		if grep -qE '^(\[[0-9:.]+\]\([0-9.]+s\) )?not ok [0-9]+' "$rl"; then
			sed -E 's/^\[[0-9:.]+\]\([0-9.]+s\) //' "$rl" |
				awk -v f="$f" '/^not ok [0-9]+/ { print "tap: " f " (its log): " $0; n = 10; next }
					n > 0 && /^#/ { print "tap:   " substr($0, 1, 800); n--; next }
					{ n = 0 }' | head -n 40
		else
			echo "tap: $f (the last lines of its log):"
			tail -n 12 "$rl" | cut -c 1-400 | sed 's/^/tap:   /'
		fi
	done >>"$work/recap.tap"
	tally tap "$ok" "$bad"
fi

# what failed, last, where a reader of only the end of the output sees it
if [ "$failed" != 0 ]; then
	echo "== what failed:"
	cat "$work"/recap.* 2>/dev/null | head -n 80 | sed 's/^/!! /'
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
