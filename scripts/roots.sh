#!/usr/bin/env bash
# Runs the README's two commands in throwaway minimal Debian roots, one per
# suite, the way a new user would on a fresh machine:
#
#   bash scripts/roots.sh [SUITE...]        (as root; default: bookworm trixie sid)
#
# For each SUITE: debootstrap --variant=minbase SUITE into a new folder, from
# the Debian mirror of this machine's apt sources; /proc, /sys, /dev,
# /dev/pts and /dev/shm bound into it; this tree (without .git and build
# output) copied to /root/shopping_upload; then, as root in a bare
# environment (env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin, no LANG,
# no CA bundle, no sudo) with that folder as the working directory:
#
#   bash scripts/demo.sh
#   bash scripts/test.sh
#
# and then, in the same root (thrown away afterwards: it may change the
# system's CA store),
#
#   SU_THROWAWAY_ROOT=1 SU_INSTALLED=1 bash scripts/system_ca_check.sh
#
# (https to the stand-in verified by the system CA store, the extension that
# test.sh installed).  The Debian package is tried once per run, in two more
# fresh roots of the first SUITE (ROOTS_PACKAGE below): one runs
# scripts/package.sh, the other installs the .deb it made with
# "apt-get install ./postgresql-NN-shopping-upload_*.deb" and runs
# "SU_INSTALLED=1 bash scripts/demo.sh" against it, then the README's
# production quick start, block by block, against Debian's own cluster
# ("SU_THROWAWAY_ROOT=1 bash scripts/quickstart.sh").  Once per run, not per
# suite: the package is the same PGXS build as the roots' own, only packed
# by pg_buildext, and two roots more per suite would add about 3 minutes each
# to a run of three.
#
# Their output is shown with "[SUITE] " before each line.  A root is always
# unmounted and removed afterwards, whatever happened (a process left running
# in it is killed first, by its id).  Ends with one line per root,
#
#   root trixie (PostgreSQL 17): demo ok in 95 s; tests 640 passed, 0 failed in 410 s; system CA check 10 passed, 0 failed in 25 s (...)
#   package bookworm (PostgreSQL 15): built in 80 s; installed and demo ok in 60 s (...)
#
# and one line "N passed, N failed" over every root's tests and checks; a root
# whose demo or setup fails counts as one more failure, the package as one
# pass or one failure.
#
# Inside the root, before the two commands: /usr/sbin/policy-rc.d exits 101,
# so the packages' services (PostgreSQL's default cluster, nginx) are
# installed but not started in the chroot; dpkg runs with force-unsafe-io (a
# throwaway root: no fsync per file).  Nothing else is prepared: the scripts
# install everything they need.
#
# Environment:
#   ROOTS_SOAK_SECONDS, ROOTS_FUZZ_SECONDS  SOAK_SECONDS and FUZZ_SECONDS given
#                       to test.sh in the roots (default 20 each: shorter than
#                       test.sh's own defaults, to keep CI short; empty: the
#                       defaults).  SOAK_SECONDS below 20 fails t/004_soak.pl,
#                       which refuses it (one failure in "tap")
#   ROOTS_MIRROR        the Debian mirror (default: the one of this machine's
#                       apt sources, else http://deb.debian.org/debian)
#   ROOTS_CACHE         caches (default /var/cache/shopping_upload-roots):
#                       debootstrap's packages (--cache-dir) and the packages
#                       the scripts install in a root, per suite; a miss only
#                       costs downloads
#   ROOTS_TMP           where roots are made (default /var/tmp)
#   ROOTS_KEEP=1        keep each root's logs (ROOTS_TMP/shopping_upload-root-logs.*)
#   ROOTS_PACKAGE       1 (default): the package step with the first SUITE;
#                       0: none; a list of suites ("bookworm trixie"): the
#                       step for each of them
#   ROOTS_PACKAGE_ONLY=SUITE   the package step with SUITE alone, no suite's
#                       two commands (to try the package and the quick start)
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(bookworm trixie sid)
soak=${ROOTS_SOAK_SECONDS-20}
fuzz=${ROOTS_FUZZ_SECONDS-20}
cache=${ROOTS_CACHE:-/var/cache/shopping_upload-roots}
tmp=${ROOTS_TMP:-/var/tmp}
package=${ROOTS_PACKAGE-1}
if [ -n "${ROOTS_PACKAGE_ONLY:-}" ]; then
	suites=()
	package=$ROOTS_PACKAGE_ONLY
fi

if [ "$(id -u)" != 0 ]; then
	echo "roots.sh: run as root (debootstrap, mount, chroot)" >&2
	echo "0 passed, 1 failed"
	exit 1
fi

# debootstrap, from Debian's packages (the only thing this script installs
# on the machine itself)
if ! command -v debootstrap >/dev/null; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap \
		>/dev/null 2>&1 || {
		apt-get update -qq >/dev/null 2>&1
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
	} || {
		echo "roots.sh: cannot install debootstrap" >&2
		echo "0 passed, 1 failed"
		exit 1
	}
fi

# The Debian mirror this machine uses: the first URI of a deb source (one-line
# or deb822) that serves Debian's main archive (it has dists/…, not the
# security archive).
find_mirror() {
	local f uri
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		case $f in
		*.sources) awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' "$f" ;;
		*) awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { print $i; break } }' "$f" ;;
		esac
	done | while read -r uri; do
		case $uri in
		*debian-security* | *security.debian.org*) ;;
		*/debian | */debian/) echo "${uri%/}" ;;
		esac
	done | head -n 1
}
mirror=${ROOTS_MIRROR:-$(find_mirror)}
mirror=${mirror:-http://deb.debian.org/debian}

mkdir -p "$cache"
logs=$(mktemp -d "$tmp/shopping_upload-root-logs.XXXXXX")
summary=()
total_passed=0
total_failed=0
root=
mounted=()

# Everything under $root that is mounted, deepest first
mounts_under() {
	awk -v r="$1" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/self/mounts | sort -r
}

# teardown_root DIR: kills what still runs in a root (by process id), unmounts
# it, removes it.  Removes nothing while anything is still mounted under it.
teardown_root() {
	local dir=$1 pid m left
	[ -n "$dir" ] && [ -d "$dir" ] || return 0
	for pid in $(ls /proc | grep -E '^[0-9]+$'); do
		[ "$(readlink "/proc/$pid/root" 2>/dev/null)" = "$dir" ] && kill -KILL "$pid" 2>/dev/null
	done
	sleep 0.5
	for m in $(mounts_under "$dir"); do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null ||
			echo "roots.sh: could not unmount $m" >&2
	done
	left=$(mounts_under "$dir")
	if [ -n "$left" ]; then
		echo "roots.sh: still mounted, $dir left in place: $left" >&2
		return 1
	fi
	rm -rf --one-file-system "$dir"
}
teardown() {
	[ -n "$root" ] && teardown_root "$root" && rm -f "$root.pid"
	root=
}
on_exit() {
	teardown
	[ -n "${ROOTS_KEEP:-}" ] && echo "roots.sh: logs kept in $logs" || rm -rf "$logs"
}
trap on_exit EXIT
trap 'exit 130' INT TERM HUP

# run_in SUITE LOG COMMAND: the README's way, in the root; output shown
# with "[SUITE] " before each line and kept in LOG
run_in() {
	local suite=$1 log=$2 cmd=$3
	env -i /usr/sbin/chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		${soak:+SOAK_SECONDS=$soak} ${fuzz:+FUZZ_SECONDS=$fuzz} \
		/bin/bash -c "cd /root/shopping_upload && $cmd" </dev/null 2>&1 |
		tee "$log" | sed -u "s/^/[$suite] /"
	return "${PIPESTATUS[0]}"
}

# Lines a user would take for trouble: the scripts are meant to print none
noise() {
	grep -nE 'could not change directory|Permission denied|[Ww]arning|perl: |locale|debconf|invoke-rc\.d|policy-rc\.d|command not found|No such file|cannot access|[Dd]eprecat' "$1" |
		grep -vE '^[0-9]+:\[?[^]]*\]? *== ' | head -n 20
}

join_by() {						# join_by SEP WORD...
	local sep=$1 out=$2
	shift 2
	for w in "$@"; do out+=$sep$w; done
	printf '%s' "$out"
}

# make_root SUITE NAME [WHAT]: a fresh root in $root, made as described above,
# this tree in /root/shopping_upload; NAME names it in messages and logs.
# Notes ("WHAT made in N s"; WHAT default "root") go to $notes (the caller's
# array).  On failure prints why, tears it down and returns 1.
make_root() {
	local suite=$1 name=$2 t0 t vu cdir=$cache/$1 key
	key=${name//[^A-Za-z0-9_.-]/-}
	key=${key//--/-}
	key=${key%-}
	mkdir -p "$cdir/debootstrap" "$cdir/apt"
	root=$(mktemp -d "$tmp/shopping_upload-root-$suite.XXXXXX")
	echo $$ >"$root.pid"
	chmod 755 "$root"

	echo "== $name: debootstrap --variant=minbase $suite $mirror"
	t0=$(date +%s)
	mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
	echo force-unsafe-io >"$root/etc/dpkg/dpkg.cfg.d/shopping_upload-roots"
	# one debootstrap at a time per cache folder
	if ! flock "$cdir/debootstrap" debootstrap --variant=minbase --cache-dir="$cdir/debootstrap" \
		"$suite" "$root" "$mirror" >"$logs/$key.debootstrap.log" 2>&1; then
		tail -n 30 "$logs/$key.debootstrap.log" | sed "s/^/[$suite] /"
		echo "== $name: debootstrap failed in $(($(date +%s) - t0)) s"
		teardown
		return 1
	fi
	t=$(($(date +%s) - t0))
	echo "== $name: made in $t s"
	notes+=("${3:-root} made in $t s")
	# services are installed, not started, in a chroot
	printf '#!/bin/sh\n# roots.sh: no service starts in this chroot\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
	chmod 755 "$root/usr/sbin/policy-rc.d"
	[ -s "$root/etc/resolv.conf" ] || cp /etc/resolv.conf "$root/etc/resolv.conf"
	# A mirror that serves this suite's Release past its Valid-Until (a
	# frozen copy of the archive; seen for sid): apt-get update would refuse
	# it, so the root's apt is told not to check the date
	vu=$(sed -n 's/^Valid-Until: //p' "$root"/var/lib/apt/lists/*_InRelease 2>/dev/null | head -n 1)
	if [ -n "$vu" ] && [ "$(date -d "$vu" +%s 2>/dev/null || echo 0)" -lt "$(date +%s)" ]; then
		echo 'Acquire::Check-Valid-Until "false";	// roots.sh: the mirror'"'"'s Release has expired' \
			>"$root/etc/apt/apt.conf.d/99shopping_upload-roots"
		notes+=("mirror's $suite Release expired $(date -u -d "$vu" +%F): apt told not to check")
	fi
	# packages downloaded by an earlier run (hard links where possible)
	for f in "$cdir"/apt/*.deb; do
		[ -e "$f" ] || continue
		[ -e "$root/var/cache/apt/archives/${f##*/}" ] ||
			ln "$f" "$root/var/cache/apt/archives/" 2>/dev/null || cp -p "$f" "$root/var/cache/apt/archives/"
	done
	for m in proc sys dev dev/pts dev/shm; do
		[ -d "/$m" ] && mountpoint -q "/$m" || continue
		mkdir -p "$root/$m"
		mount --bind "/$m" "$root/$m" || { echo "roots.sh: cannot bind /$m" >&2; }
	done
	mkdir -p "$root/root/shopping_upload"
	tar -C "$here" --exclude=.git --exclude=./dist --exclude='*.o' --exclude='*.so' --exclude='*.bc' --exclude='*.d' \
		--exclude=tmp_check --exclude=results --exclude=log --exclude=output_iso \
		-cf - . | tar -C "$root/root/shopping_upload" -xf -
}

# keep_apt_cache SUITE: keeps what apt downloaded in $root for the next run,
# and forgets what has not been downloaded for a month
keep_apt_cache() {
	local cdir=$cache/$1 f
	for f in "$root"/var/cache/apt/archives/*.deb; do
		[ -e "$f" ] || continue
		[ -e "$cdir/apt/${f##*/}" ] || ln "$f" "$cdir/apt/" 2>/dev/null || cp -p "$f" "$cdir/apt/"
	done
	find "$cdir" -name '*.deb' -mtime +30 -delete 2>/dev/null
}

# root_major: the PostgreSQL major(s) installed in $root
root_major() {
	local m
	m=$(ls "$root/usr/lib/postgresql" 2>/dev/null | sort -V | tr '\n' ' ')
	m=${m% }
	echo "${m:-?}"
}

# counts LOG RC: sets p and f from LOG's last "N passed, N failed" line (none,
# or a failed exit with no failure counted: one failure)
counts() {
	local line
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$1" | tail -n 1)
	if [ -n "$line" ]; then
		p=${line%% passed*}
		f=${line#*passed, }
		f=${f%% failed*}
		[ "$2" != 0 ] && [ "$f" = 0 ] && f=1
	else
		p=0
		f=1
	fi
}

# look_at SUITE NAME...: lists the noise of each NAME.log, notes it
look_at() {
	local suite=$1 log
	shift
	for log in "$@"; do
		if [ -n "$(noise "$logs/$log.log")" ]; then
			echo "== $log: lines to look at:"
			noise "$logs/$log.log" | sed "s/^/[$suite]   /"
			notes+=("$log printed $(noise "$logs/$log.log" | wc -l) suspicious line(s), listed above")
		fi
	done
}

one_root() {
	local suite=$1 t0 rc major demo_s test_s ca_s p f tp tf notes=() dstate
	if ! make_root "$suite" "root $suite"; then
		summary+=("root $suite: debootstrap failed")
		total_failed=$((total_failed + 1))
		return
	fi

	# --- the README's two commands -------------------------------------------
	t0=$(date +%s)
	run_in "$suite" "$logs/$suite.demo.log" 'bash scripts/demo.sh'
	rc=$?
	demo_s=$(($(date +%s) - t0))
	if [ "$rc" = 0 ]; then dstate=ok; else dstate="FAILED (exit $rc)"; total_failed=$((total_failed + 1)); fi
	keep_apt_cache "$suite"

	t0=$(date +%s)
	run_in "$suite" "$logs/$suite.test.log" 'bash scripts/test.sh'
	rc=$?
	test_s=$(($(date +%s) - t0))
	counts "$logs/$suite.test.log" "$rc"
	tp=$p tf=$f
	total_passed=$((total_passed + p))
	total_failed=$((total_failed + f))

	# --- https verified by the system CA store (this root is thrown away) ---
	t0=$(date +%s)
	run_in "$suite" "$logs/$suite.system_ca.log" \
		'SU_THROWAWAY_ROOT=1 SU_INSTALLED=1 bash scripts/system_ca_check.sh'
	rc=$?
	ca_s=$(($(date +%s) - t0))
	counts "$logs/$suite.system_ca.log" "$rc"
	total_passed=$((total_passed + p))
	total_failed=$((total_failed + f))

	major=$(root_major)
	look_at "$suite" "$suite.demo" "$suite.test" "$suite.system_ca"
	[ -n "$soak" ] && notes+=("SOAK_SECONDS=$soak")
	[ -n "$fuzz" ] && notes+=("FUZZ_SECONDS=$fuzz")
	summary+=("root $suite (PostgreSQL $major): demo $dstate in $demo_s s; tests $tp passed, $tf failed in $test_s s; system CA check $p passed, $f failed in $ca_s s ($(join_by ', ' "${notes[@]}"))")
	teardown
}

# package_roots SUITE: the Debian package, from two more fresh roots of SUITE:
# one builds it (scripts/package.sh), the other installs it with
# apt-get install ./postgresql-NN-shopping-upload_*.deb and runs the demo
# against it (SU_INSTALLED=1: nothing built there).  One pass or one failure.
package_roots() {
	local suite=$1 t0 rc build_s= inst_s= major=? deb= state notes=() p f
	local pkgdir=$logs/package-$suite
	mkdir -p "$pkgdir"
	state=
	if ! make_root "$suite" "package $suite (build root)" "build root"; then
		state="FAILED: debootstrap of the build root"
	else
		t0=$(date +%s)
		run_in "$suite" "$logs/$suite.package.log" 'bash scripts/package.sh /root/dist'
		rc=$?
		build_s=$(($(date +%s) - t0))
		cp "$root"/root/dist/postgresql-*-shopping-upload_*.deb "$pkgdir/" 2>/dev/null
		deb=$(cd "$pkgdir" && ls postgresql-*-shopping-upload_*.deb 2>/dev/null | head -n 1)
		[ "$rc" = 0 ] && [ -n "$deb" ] || state="FAILED: scripts/package.sh (exit $rc)"
		keep_apt_cache "$suite"
		look_at "$suite" "$suite.package"
		teardown
	fi
	if [ -z "$state" ]; then
		if ! make_root "$suite" "package $suite (install root)" "install root"; then
			state="FAILED: debootstrap of the install root"
		else
			# in /tmp, where apt's unprivileged downloader may read it
			cp "$pkgdir/$deb" "$root/tmp/"
			chmod 644 "$root/tmp/$deb"
			t0=$(date +%s)
			run_in "$suite" "$logs/$suite.install.log" \
				"(cd /tmp && apt-get update -qq && apt-get install -y -q ./$deb) >/tmp/apt-install.log 2>&1 ||
					{ cat /tmp/apt-install.log; echo 'apt-get install ./$deb failed'; exit 1; }
				 echo 'apt-get install ./$deb: done'
				 SU_INSTALLED=1 bash scripts/demo.sh &&
				 SU_THROWAWAY_ROOT=1 bash scripts/quickstart.sh"
			rc=$?
			inst_s=$(($(date +%s) - t0))
			major=$(root_major)
			[ "$rc" = 0 ] || state="installed, demo and README quick start FAILED (exit $rc) in $inst_s s"
			keep_apt_cache "$suite"
			look_at "$suite" "$suite.install"
			teardown
		fi
	fi
	if [ -z "$state" ]; then
		state="installed, demo and README quick start ok in $inst_s s"
		total_passed=$((total_passed + 1))
	else
		total_failed=$((total_failed + 1))
	fi
	[ -n "$deb" ] && notes+=("$deb")
	summary+=("package $suite (PostgreSQL $major): built in ${build_s:-?} s; $state ($(join_by ', ' "${notes[@]}"))")
}

# roots left by a run that was killed (its roots.sh is gone)
for d in "$tmp"/shopping_upload-root-*.*; do
	[ -d "$d" ] && [ -f "$d.pid" ] || continue
	kill -0 "$(cat "$d.pid")" 2>/dev/null && continue
	echo "roots.sh: removing $d, left by an earlier run"
	teardown_root "$d" && rm -f "$d.pid"
done

for s in ${suites[@]+"${suites[@]}"}; do
	one_root "$s"
done
case $package in
0 | '') ;;
1) package_roots "${suites[0]}" ;;
*) for s in $package; do package_roots "$s"; done ;;
esac

for l in "${summary[@]}"; do
	echo "$l"
done
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" = 0 ]
