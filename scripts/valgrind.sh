#!/usr/bin/env bash
# Runs the server-side tests of shopping_upload with every PostgreSQL server
# process under valgrind (memcheck), then reads valgrind's logs.  Fails when
# any error has a frame of shopping_upload.so on its stack; errors entirely
# inside PostgreSQL or a library are counted and listed, and do not fail.
# Ends with one line "N passed, N failed": every pg_regress/isolation test
# and TAP check, plus one check "valgrind: no error in extension code".
#
#   bash scripts/valgrind.sh    (as root)
#
# Slow (11 minutes on this 2-core machine for regress, isolation and TAP
# 001-003, 17 while other jobs load it; every TAP test, the default since
# 1.2, takes several times that: 004-009 took about 20 minutes under load),
# hence not part of scripts/test.sh.  Some timing checks of the TAP tests
# fail under valgrind's slowness (002's max_rate window, 001's 500 ms
# client timeout): they count as failed tests, not as valgrind errors.
# Run as root on Debian 12 (it installs what it needs), like scripts/test.sh.
#
# Environment:
#   VALGRIND_SUITES     regress isolation tap (default: all three)
#   VALGRIND_TAP_TESTS  TAP scripts (default: every t/*.pl; the soak test
#                       004 runs SOAK_SECONDS, 20 by default here)
#   PG_TEST_TIMEOUT_DEFAULT  seconds a TAP wait may take (default 120)
#   VALGRIND_EXTRA      more valgrind options, e.g. --track-origins=yes
#   VALGRIND_KEEP=1     keep the work folder (logs, clusters) afterwards
#   VALGRIND_ERROR_EXITCODE  exit status of a server process that had an
#                       error (default 128, which the postmaster takes for a
#                       crash; 0 to only collect, e.g. to write suppressions
#                       with VALGRIND_EXTRA=--gen-suppressions=all)
#
# How the server ends up under valgrind: a private copy of the PostgreSQL 15
# installation (binaries copied, everything else symlinked) in which
# "postgres" is a script that execs valgrind on the real binary.  PostgreSQL
# finds its share and lib folders relative to its binary, so pg_regress
# (--bindir), pg_ctl and initdb (which look for "postgres" next to
# themselves) and PostgreSQL::Test::Cluster (PATH) all start the wrapper,
# and the extension is installed into that copy only: this run neither
# overwrites nor picks up a build someone else installs meanwhile.
# Bootstrap and single-user runs (initdb) and -V/-C queries skip valgrind:
# only postmasters and their children run under it, with jit=off.
#
# Suppressions: test/valgrind.supp, written for this project (Debian ships
# no PostgreSQL valgrind suppressions in a binary package: PostgreSQL's own
# src/tools/valgrind.supp is in the source tree only).  Debian's PostgreSQL
# is not built with USE_VALGRIND, so memcheck sees malloc'd blocks, not
# palloc chunks: a stale pointer into a memory context is caught only once
# the context's block has gone back to malloc (context deleted, or a large
# chunk freed).
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/scripts/pg_major.sh"
sys_pg_config=${PG_CONFIG:-/usr/lib/postgresql/$(su_pg_major)/bin/pg_config}
suites=${VALGRIND_SUITES:-regress isolation tap}
tap_tests=${VALGRIND_TAP_TESTS:-$(cd "$here" && echo t/[0-9]*.pl)}
export SOAK_SECONDS=${SOAK_SECONDS:-20}
started=$(date +%s)

if [ "$(id -u)" = 0 ]; then
	bash "$here/scripts/deps.sh" || exit 1
	if ! command -v valgrind >/dev/null; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind >/dev/null ||
			exit 1
	fi
fi
command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind is not installed" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n 4096 2>/dev/null || true

work=$(mktemp -d /tmp/shopping_upload-valgrind.XXXXXX)
chmod 755 "$work"
cleanup() {
	[ -n "${bg_pid:-}" ] && kill "$bg_pid" 2>/dev/null
	declare -F as_pg >/dev/null &&
	for d in "$work"/*_instance "$work"/tree/tmp_check/t_*_data/pgdata; do
		[ -f "$d/postmaster.pid" ] && as_pg pg_ctl -D "$d" -m immediate stop >/dev/null 2>&1
	done
	if [ -n "${VALGRIND_KEEP:-}" ]; then
		echo "valgrind.sh: kept $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
supp=$work/valgrind.supp
cp "$here/test/valgrind.supp" "$supp"

# --- the private PostgreSQL installation --------------------------------
sys_bin=$("$sys_pg_config" --bindir)
sys_lib=$("$sys_pg_config" --pkglibdir)
sys_share=$("$sys_pg_config" --sharedir)
sys_inc=$("$sys_pg_config" --includedir)
pg=$work/pg
mkdir -p "$pg$sys_bin" "$pg$sys_lib" "$pg$sys_share/extension" "$(dirname "$pg$sys_inc")"
cp -p "$sys_bin"/* "$pg$sys_bin"/
for f in "$sys_lib"/*; do
	case ${f##*/} in shopping_upload*) ;; *) ln -s "$f" "$pg$sys_lib/" ;; esac
done
for f in "$sys_share"/*; do
	[ "${f##*/}" = extension ] || ln -s "$f" "$pg$sys_share/"
done
for f in "$sys_share"/extension/*; do
	case ${f##*/} in shopping_upload*) ;; *) ln -s "$f" "$pg$sys_share/extension/" ;; esac
done
ln -s "$sys_inc" "$pg$sys_inc"
pg_bin=$pg$sys_bin
mv "$pg_bin/postgres" "$pg_bin/postgres.bin"
rm -f "$pg_bin/postmaster"
vglogs=$work/valgrind
mkdir -p "$vglogs"
cat >"$pg_bin/postgres" <<WRAP
#!/bin/sh
# postgres under valgrind (scripts/valgrind.sh), except initdb's bootstrap
# and single-user runs and quick queries (-V, -C, --describe-config); without
# JIT (LLVM under memcheck: minutes, and none of it is ours)
real=$pg_bin/postgres.bin
for a in "\$@"; do
	case \$a in
	--boot | --single | --check | -V | --version | -C | --describe-config) exec "\$real" "\$@" ;;
	esac
done
exec valgrind --quiet --trace-children=yes --leak-check=no --error-exitcode=${VALGRIND_ERROR_EXITCODE:-128} \\
	--num-callers=40 --fullpath-after= --suppressions=$supp \\
	--log-file=\${SU_VALGRIND_LOGS:-$vglogs}/%p.log ${VALGRIND_EXTRA:-} "\$real" "\$@" -c jit=off
WRAP
chmod 755 "$pg_bin/postgres"
ln -s postgres "$pg_bin/postmaster"
chmod -R a+rX "$pg"
chmod 1777 "$vglogs"

export PG_CONFIG=$pg_bin/pg_config
. "$here/scripts/lib.sh"
chown "$PG_USER" "$work"
# the timeouts of the TAP tests and pg_ctl/pg_regress, for a slow server
export PG_TEST_TIMEOUT_DEFAULT=${PG_TEST_TIMEOUT_DEFAULT:-120} PGCTLTIMEOUT=${PGCTLTIMEOUT:-600}

# --- build, install into the private copy --------------------------------
# src/ may be mid-edit by someone else: a failed build is retried a while
tree=$work/tree
for attempt in 1 2 3 4 5 6 7 8 9 10; do
	rm -rf "$tree"
	build_and_install "$here" "$tree" 2>"$work/build.err" && break
	if [ "$attempt" = 10 ]; then
		cat "$work/build.err"
		echo "0 passed, 1 failed"
		exit 1
	fi
	echo "valgrind.sh: build failed (attempt $attempt), retrying in 30 s"
	sleep 30
done
echo "== built $(cd "$here" && git describe --always --dirty 2>/dev/null) into $pg"

# The verdict is valgrind's: an error in extension code fails the run.  The
# suites' own checks are reported, not counted: under valgrind a server is
# tens of times slower, and a few timing checks (max_rate's worst second, a
# 500 ms client timeout) miss for that reason alone.
passed=0
failed=0
tally() {						# tally NAME PASSED FAILED
	echo "== $1: $2 passed, $3 failed ($(($(date +%s) - started)) s so far)"
	if [ "$1" = valgrind ]; then
		passed=$((passed + $2))
		failed=$((failed + $3))
	fi
}

# Each suite's server processes log to a folder of their own: the wrapper
# reads SU_VALGRIND_LOGS, which make, pg_regress, prove and pg_ctl pass on.
suite_env() { mkdir -p "$vglogs/$1" && chmod 1777 "$vglogs/$1" && echo "SU_VALGRIND_LOGS=$vglogs/$1"; }

# pg_regress and isolation, run in the background: "NAME PASSED FAILED" to
# NAME.tally, what went wrong to NAME.report
regress_suite() {
	local name=$1 log=$work/$1.log
	shift
	as_pg env "$(suite_env "$name")" make -C "$tree" PG_CONFIG="$PG_CONFIG" "$@" >"$log" 2>&1
	local rc=$? ok bad
	ok=$(grep -cE '\.\.\. ok( |$)' "$log")
	bad=$(grep -cE '\.\.\. FAILED|\.\.\. failed' "$log")
	if [ "$rc" != 0 ] && [ "$bad" = 0 ]; then bad=1; fi
	[ "$bad" != 0 ] && { tail -n 40 "$log"; cat "$tree"/regression.diffs "$tree"/output_iso/regression.diffs 2>/dev/null | head -n 200; } >"$work/$name.report"
	echo "$name $ok $bad" >"$work/$name.tally"
}

# the regression database is not served: its tests drive the queue by hand
cat >"$work/regress.conf" <<CONF
shared_preload_libraries = 'shopping_upload'
shopping_upload.databases = 'postgres'
CONF
chown "$PG_USER" "$work/regress.conf"

# PostgreSQL::Test::Cluster's poll_query_until gives up after
# 10 * PG_TEST_TIMEOUT_DEFAULT attempts, which assumes an attempt (a new
# connection) takes no time; under valgrind one takes seconds, and a poll for
# a state the test only hopes to catch in passing (002_worker.pl's
# "state = 'uploading'" before kill -9) would wait an hour.  This module,
# loaded through PERL5OPT into the TAP scripts only, makes it give up after
# PG_TEST_TIMEOUT_DEFAULT seconds of wall time instead.
mkdir -p "$work/perl"
cat >"$work/perl/SuValgrindPoll.pm" <<'PERL'
package SuValgrindPoll;
use strict;
use warnings;
use IPC::Run;
use Time::HiRes qw(time usleep);

INIT
{
	if (defined &PostgreSQL::Test::Cluster::poll_query_until)
	{
		no warnings 'redefine';
		*PostgreSQL::Test::Cluster::poll_query_until = \&poll_query_until;
	}
}

sub poll_query_until
{
	my ($node, $dbname, $query, $expected) = @_;
	$expected = 't' unless defined $expected;
	local %ENV = $node->_get_env();
	my @cmd = ($node->installed_command('psql'), '-XAt', '-d', $node->connstr($dbname));
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	while (1)
	{
		my ($out, $err) = ('', '');
		IPC::Run::run(\@cmd, '<', \$query, '>', \$out, '2>', \$err);
		chomp $out;
		chomp $err;
		return 1 if $out eq $expected && $err eq '';
		if (time >= $deadline)
		{
			Test::More::diag("poll_query_until gave up after "
				  . "$PostgreSQL::Test::Utils::timeout_default s (valgrind.sh): "
				  . ($query // '(connection only)')
				  . "\nexpected: $expected\nlast output: $out\nstderr: $err");
			return 0;
		}
		usleep(100_000);
	}
}

1;
PERL
chmod -R a+rX "$work/perl"

bg_pid=
bg_suites=
for suite in $suites; do
	case $suite in
	regress | isolation) bg_suites="$bg_suites $suite" ;;
	tap) ;;
	*) echo "valgrind.sh: unknown suite $suite" >&2; tally "$suite" 0 1 ;;
	esac
done
# pg_regress suites in the background, one after the other, while the TAP
# tests (which mostly wait) run: two cores, two valgrinds
if [ -n "$bg_suites" ]; then
	(
		for suite in $bg_suites; do
			case $suite in
			regress)
				regress_suite regress installcheck ISOLATION= TAP_TESTS= \
					EXTRA_REGRESS_OPTS="--temp-instance=$work/regress_instance --temp-config=$work/regress.conf"
				;;
			isolation)
				regress_suite isolation installcheck REGRESS= TAP_TESTS= \
					EXTRA_REGRESS_OPTS="--temp-instance=$work/isolation_instance --temp-config=$work/regress.conf"
				;;
			esac
		done
	) &
	bg_pid=$!
fi

if [[ " $suites " == *" tap "* ]]; then
	log=$work/tap.log
	as_pg env "$(suite_env tap)" PERL5LIB="$work/perl" PERL5OPT=-MSuValgrindPoll \
		make -C "$tree" PG_CONFIG="$PG_CONFIG" installcheck REGRESS= ISOLATION= \
		PROVE_FLAGS=-v PROVE_TESTS="$tap_tests" >"$log" 2>&1
	rc=$?
	ok=$(grep -cE '^\s*ok [0-9]+' "$log")
	bad=$(grep -cE '^\s*not ok [0-9]+' "$log")
	if [ "$rc" != 0 ] && [ "$bad" = 0 ]; then bad=1; fi
	[ "$bad" != 0 ] && { grep -E 'not ok|^#|Failed|Dubious|^t/' "$log" | head -n 80; }
	tally tap "$ok" "$bad"
fi

if [ -n "$bg_pid" ]; then
	wait "$bg_pid"
	bg_pid=
	for suite in $bg_suites; do
		[ -f "$work/$suite.report" ] && cat "$work/$suite.report"
		if [ -f "$work/$suite.tally" ]; then
			tally $(cat "$work/$suite.tally")
		else
			tally "$suite" 0 1
		fi
	done
fi

# a server process with a valgrind error exits with 128: the postmaster
# calls it a crash and says so in its log
crashes=$(cat "$tree"/log/postmaster.log "$tree"/output_iso/log/postmaster.log \
	"$tree"/tmp_check/log/*.log 2>/dev/null |
	grep -E 'exited with exit code 128|was terminated by signal' | sort -u)
if [ -n "$crashes" ]; then
	echo "== server processes that ended with a valgrind error (exit code 128) or a signal:"
	echo "$crashes"
fi

# --- valgrind's logs -------------------------------------------------------
# our frames: in shopping_upload.so without line info, or in one of our
# source files (full paths: --fullpath-after=)
ours=$(cd "$tree/src" && ls *.c *.h | sed 's/\./\\./g' | paste -sd'|')
python3 - "$vglogs" "$ours" <<'PY'
import os, re, sys

logdir, ours = sys.argv[1], sys.argv[2]
our_frame = re.compile(r'\(in [^)]*shopping_upload\.so\)|/src/(%s):\d+\)' % ours)
frame = re.compile(r'^\s+(at|by) 0x[0-9A-F]+: ')
not_errors = re.compile(r'^(Warning|Process terminating|HEAP SUMMARY|ERROR SUMMARY|'
                        r'For lists of|For counts of|Memcheck,|Copyright|Using Valgrind|'
                        r'Command:|Parent PID:|All heap blocks|in use at exit|total heap)')

def blocks(path):
    """valgrind's error records of one log: lists of lines without the ==PID== prefix"""
    cur = []
    with open(path, errors='replace') as f:
        for raw in f:
            m = re.match(r'^==\d+== ?(.*)$', raw.rstrip('\n'))
            if not m:
                continue
            line = m.group(1)
            if line.strip() == '':
                if cur:
                    yield cur
                cur = []
            else:
                cur.append(line)
    if cur:
        yield cur

ours_err, other_err, aux_err = {}, {}, {}
nlogs = 0
names = sorted(os.path.relpath(os.path.join(d, f), logdir)
               for d, _, fs in os.walk(logdir) for f in fs if f.endswith('.log'))
for name in names:
    nlogs += 1
    for b in blocks(os.path.join(logdir, name)):
        if not_errors.match(b[0]) or not any(frame.match(l) for l in b):
            continue
        # the error's own stack: the frames right after the headline
        main = []
        for l in b[1:]:
            if frame.match(l):
                main.append(l)
            elif main:
                break
        key = '\n'.join([b[0]] + [re.sub(r'0x[0-9A-F]+', '', l) for l in main])
        if any(our_frame.search(l) for l in main):
            bucket = ours_err
        elif any(our_frame.search(l) for l in b):
            bucket = aux_err
        else:
            bucket = other_err
        e = bucket.setdefault(key, {'count': 0, 'text': b, 'logs': set()})
        e['count'] += 1
        e['logs'].add(name)

def show(title, bucket, full):
    n = sum(e['count'] for e in bucket.values())
    print('== valgrind: %d %s (%d distinct)' % (n, title, len(bucket)))
    for e in sorted(bucket.values(), key=lambda e: -e['count']):
        print('-- %d time(s), in %s' % (e['count'], ', '.join(sorted(e['logs'])[:3])
                                       + (' ...' if len(e['logs']) > 3 else '')))
        lines = e['text'] if full else e['text'][:8]
        print('\n'.join('   ' + l for l in lines))
    return n

print('== valgrind: %d process logs in %s' % (nlogs, logdir))
n_ours = show('errors in extension code', ours_err, True)
show('errors elsewhere whose allocation/free stack passes through extension code (to review; not counted as failures)', aux_err, True)
show('errors entirely inside PostgreSQL or libraries (not counted as failures)', other_err, False)
sys.exit(1 if n_ours or nlogs == 0 else 0)
PY
if [ $? = 0 ]; then tally valgrind 1 0; else tally valgrind 0 1; fi

echo "== took $(($(date +%s) - started)) s"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
