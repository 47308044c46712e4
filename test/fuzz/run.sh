#!/usr/bin/env bash
# Coverage-guided fuzzing of the validator (src/validate.c) with libFuzzer,
# AddressSanitizer (LeakSanitizer included) and UndefinedBehaviorSanitizer.
#
#   bash test/fuzz/run.sh [SECONDS]       regressions, then fuzz SECONDS
#                                         (default $FUZZ_SECONDS, else 60)
#   bash test/fuzz/run.sh --long          the same for $FUZZ_LONG_SECONDS (1800)
#   bash test/fuzz/run.sh --repro FILE... build, run FILE... once each
#   bash test/fuzz/run.sh --build DIR     build DIR/fuzz_validate only
#
# Builds test/fuzz/fuzz_validate.c, src/validate.c and src/retry.c (the
# errcodes' classes) with clang into a
# temporary folder (never into src/).  Runs every file of
# test/fuzz/regressions/ once (plain regression mode), then fuzzes a copy of
# test/fuzz/corpus/ (new inputs go to the copy) plus test/fuzz/regressions/,
# with test/fuzz/fuzz_validate.dict, -timeout=10 -rss_limit_mb=2048
# -max_len=65536.  Ends with one line: "1 passed, 0 failed", or
# "0 passed, 1 failed" after a crash, a sanitizer report, a timeout, a leak
# or running out of memory; then the input is copied into
# test/fuzz/regressions/ (commit it with the fix) and into $FUZZ_CRASH_DIR
# (/tmp/shopping_upload-fuzz-crashes: scripts/test.sh runs this in a copy of
# the tree that it removes), and a command reproducing it is printed.
#
# test/fuzz/regressions/ holds crash-*, leak-*, timeout-* and oom-* files
# saved by this script, and inputs named by hand for what they once showed.
#
# Environment: FUZZ_SECONDS, FUZZ_LONG_SECONDS, FUZZ_CC (default clang),
# FUZZ_ARGS (more libFuzzer flags, e.g. "-fork=2" or "-seed=1"), FUZZ_CFLAGS
# (more compiler flags, e.g. -DFUZZ_STOP_IS_PREFIX: see fuzz_validate.c),
# FUZZ_KEEP=1 (keep the build folder), FUZZ_CRASH_DIR.
# Needs clang and libFuzzer's runtime: on Debian 12, packages clang-14 and
# libclang-rt-14-dev (llvm-14 for symbolized stack traces), plus
# libjson-c-dev and pkg-config.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)

mode=fuzz
seconds=${FUZZ_SECONDS:-60}
build_dir=
repro=()
case "${1:-}" in
	--long) seconds=${FUZZ_LONG_SECONDS:-1800} ;;
	--repro) mode=repro; shift; repro=("$@") ;;
	--build) mode=build; build_dir=${2:?"--build needs a folder"} ;;
	-h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	'') ;;
	*)
		if [[ $1 =~ ^[0-9]+$ ]]; then
			seconds=$1
		else
			echo "run.sh: unknown argument $1 (try --help)" >&2
			echo "0 passed, 1 failed"
			exit 2
		fi ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/shopping_upload-fuzz.XXXXXX")
keep=${FUZZ_KEEP:-0}
# shellcheck disable=SC2317
cleanup() { [ "$keep" = 1 ] || rm -rf "$work"; }
trap cleanup EXIT

result() {						# result PASSED FAILED; exits
	echo "$1 passed, $2 failed"
	[ "$2" = 0 ]
	exit
}

# ---- build ----

cc=${FUZZ_CC:-}
if [ -z "$cc" ]; then
	for c in clang clang-14; do
		command -v "$c" >/dev/null 2>&1 && { cc=$c; break; }
	done
fi
if [ -z "$cc" ]; then
	echo "run.sh: no clang; on Debian 12: apt-get install clang-14 libclang-rt-14-dev" >&2
	result 0 1
fi
bin=$work/fuzz_validate
# shellcheck disable=SC2054
cflags=(-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
	-fno-sanitize-recover=all -Wall -Wextra -I"$top/src")
# the early stop of su_validate_payload_ex, when the validator has it
grep -q 'su_validate_payload_ex' "$top/src/validate.h" && cflags+=(-DFUZZ_HAVE_VALIDATE_EX)
# shellcheck disable=SC2206
cflags+=(${FUZZ_CFLAGS:-})
if ! json_cflags=$(pkg-config --cflags json-c) || ! json_libs=$(pkg-config --libs json-c); then
	echo "run.sh: pkg-config knows no json-c (libjson-c-dev)" >&2
	result 0 1
fi
# the harness warning-free; validate.c is gcc's to judge (-Werror in make)
# shellcheck disable=SC2086
if ! { "$cc" "${cflags[@]}" -Werror $json_cflags -c "$here/fuzz_validate.c" -o "$work/fuzz_validate.o" &&
	"$cc" "${cflags[@]}" $json_cflags -c "$top/src/validate.c" -o "$work/validate.o" &&
	"$cc" "${cflags[@]}" $json_cflags -c "$top/src/validate_shipping.c" -o "$work/validate_shipping.o" &&
	"$cc" "${cflags[@]}" $json_cflags -c "$top/src/validate_trade.c" -o "$work/validate_trade.o" &&
	"$cc" "${cflags[@]}" -c "$top/src/retry.c" -o "$work/retry.o" &&
	"$cc" "${cflags[@]}" "$work/fuzz_validate.o" "$work/validate.o" "$work/validate_shipping.o" \
		"$work/validate_trade.o" "$work/retry.o" $json_libs -o "$bin"; } \
	>"$work/build.log" 2>&1; then
	cat "$work/build.log" >&2
	echo "run.sh: build failed (clang -fsanitize=fuzzer needs libclang-rt-14-dev on Debian 12)" >&2
	result 0 1
fi
if [ -s "$work/build.log" ]; then cat "$work/build.log" >&2; fi

if [ "$mode" = build ]; then
	mkdir -p "$build_dir" && cp "$bin" "$build_dir/fuzz_validate" || exit 1
	echo "run.sh: built $build_dir/fuzz_validate"
	exit 0
fi

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ]; then
	for s in "$(command -v llvm-symbolizer 2>/dev/null)" /usr/lib/llvm-14/bin/llvm-symbolizer; do
		[ -n "$s" ] && [ -x "$s" ] && { export ASAN_SYMBOLIZER_PATH=$s; break; }
	done
fi

limits=(-timeout=10 -rss_limit_mb=2048 -max_len=65536)
# shellcheck disable=SC2206
extra=(${FUZZ_ARGS:-})

# a path relative to the top of the tree, for commands to copy
rel() { case $1 in "$top"/*) echo "${1#"$top"/}" ;; *) echo "$1" ;; esac; }

# Saves a failing input ($1) and says how to reproduce it
save_failure() {
	local f=$1 name saved crash_dir=${FUZZ_CRASH_DIR:-/tmp/shopping_upload-fuzz-crashes}
	name=$(basename "$f")
	saved=$here/regressions/$name
	mkdir -p "$here/regressions"
	[ "$f" -ef "$saved" ] || cp "$f" "$saved"
	if [ "$(wc -c <"$saved")" -le 1024 ]; then
		echo "run.sh: $name, base64 (base64 -d > test/fuzz/regressions/$name):"
		base64 -w 100 "$saved"
	fi
	mkdir -p "$crash_dir" 2>/dev/null && cp "$saved" "$crash_dir/" 2>/dev/null &&
		echo "run.sh: a copy is in $crash_dir/$name"
	echo "run.sh: reproducer saved as $(rel "$saved") ($(wc -c <"$saved") bytes)"
	echo "run.sh: reproduce with: bash $(rel "$here")/run.sh --repro $(rel "$saved")"
	echo "run.sh:            or:  $bin $saved   (build kept)"
	keep=1
}

# ---- regression mode: each file once ----

run_files() {					# run_files LOG FILE...
	local log=$1
	shift
	"$bin" "${limits[@]}" "${extra[@]}" "$@" >"$log" 2>&1
}

if [ "$mode" = repro ]; then
	[ ${#repro[@]} -gt 0 ] || { echo "run.sh: --repro needs files" >&2; result 0 1; }
	"$bin" "${limits[@]}" "${extra[@]}" "${repro[@]}"
	rc=$?
	[ "$rc" = 0 ] && result 1 0
	result 0 1
fi

shopt -s nullglob
regressions=("$here"/regressions/*)
shopt -u nullglob
if [ ${#regressions[@]} -gt 0 ]; then
	if ! run_files "$work/regressions.log" "${regressions[@]}"; then
		tail -n 60 "$work/regressions.log"
		# the one that failed: the last "Running:" line
		last=$(grep -E '^Running: ' "$work/regressions.log" | tail -n 1 | sed 's/^Running: //')
		echo "run.sh: a regression input fails${last:+: $(rel "$last")}"
		[ -n "$last" ] && {
			echo "run.sh: reproduce with: bash $(rel "$here")/run.sh --repro $(rel "$last")"
		}
		keep=1
		echo "run.sh: build kept in $work"
		result 0 1
	fi
	echo "run.sh: ${#regressions[@]} regression input(s) pass"
fi

# ---- fuzzing, on a copy of the seed corpus ----

mkdir -p "$work/corpus" "$work/artifacts"
cp -R "$here/corpus/." "$work/corpus/"
dirs=("$work/corpus")
[ -d "$here/regressions" ] && dirs+=("$here/regressions")	# read, never written
echo "run.sh: fuzzing for ${seconds}s ($(find "$work/corpus" -type f | wc -l) seeds; $cc)"
start=$(date +%s)
"$bin" "${limits[@]}" -max_total_time="$seconds" -dict="$here/fuzz_validate.dict" \
	-artifact_prefix="$work/artifacts/" -report_slow_units=2 -print_final_stats=1 \
	"${extra[@]}" "${dirs[@]}" >"$work/fuzz.log" 2>&1
rc=$?
took=$(($(date +%s) - start))

# libFuzzer's last status line and stats, for the log
grep -E '^#[0-9]+' "$work/fuzz.log" | tail -n 1
grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$work/fuzz.log"
echo "run.sh: corpus grew from $(find "$here/corpus" -type f | wc -l) to $(find "$work/corpus" -type f | wc -l) inputs in ${took}s"

shopt -s nullglob
slow=("$work"/artifacts/slow-unit-*)
bad=("$work"/artifacts/crash-* "$work"/artifacts/leak-* "$work"/artifacts/timeout-* "$work"/artifacts/oom-*)
shopt -u nullglob
for f in "${slow[@]}"; do
	echo "run.sh: slow input (over 2 s, under the 10 s timeout): $f"
	keep=1
done
[ ${#slow[@]} -gt 0 ] && grep -E 'Slowest unit' "$work/fuzz.log" | tail -n 1

if [ "$rc" != 0 ] || [ ${#bad[@]} -gt 0 ]; then
	grep -vE '^#[0-9]+|^INFO: |^MERGE|^\s*$' "$work/fuzz.log" | tail -n 60
	for f in "${bad[@]}"; do
		save_failure "$f"
	done
	[ ${#bad[@]} = 0 ] && echo "run.sh: libFuzzer exited with $rc and left no input; log: $work/fuzz.log"
	keep=1
	result 0 1
fi
result 1 0
