#!/usr/bin/env bash
# Installs, as root, the Debian packages that build and test shopping_upload:
# PostgreSQL of the major this Debian suite ships (bookworm 15, trixie 17,
# sid 18; PG_MAJOR=NN for another that apt can install) with its server
# headers, libcurl, json-c, the test tools, and clang with libFuzzer's
# runtime for the fuzzer.  Prints nothing when all is there; one line when it
# installs; apt's output only when apt fails.
#
# Installing postgresql-NN creates and starts Debian's default cluster (NN
# main, port 5432) and nginx-light starts nginx with its default site (port
# 80) where services can start; the tests use neither (their clusters run on
# Unix sockets in temporary folders, their nginx on ports of their own) and
# leave both as Debian made them.
#
#   bash scripts/deps.sh --installed
#
# only what runs the demo and scripts/system_ca_check.sh against an extension
# already installed (the Debian package of scripts/package.sh): the server
# (postgresql-NN, its pg_config is in postgresql-client-NN), python3 for the
# stand-in, openssl and ca-certificates; no headers, compilers or test tools;
#
#   bash scripts/deps.sh --package
#
# what scripts/package.sh builds the Debian package with: debian/control.in's
# Build-Depends, the server headers of the major, dpkg-buildpackage's tools.
set -euo pipefail

mode=all
case ${1:-} in
'') ;;
--installed) mode=installed ;;
--package) mode=package ;;
*)
	echo "usage: deps.sh [--installed | --package]" >&2
	exit 2
	;;
esac

here=$(cd "$(dirname "$0")" && pwd)
. "$here/pg_major.sh"

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp /tmp/shopping_upload-deps.XXXXXX)
trap 'rm -f "$log"' EXIT

updated=
apt_update() {
	[ -z "$updated" ] || return 0
	updated=1
	# a failed update (one unreachable source) need not stop the install:
	# say so, and let apt-get install decide
	apt-get update -qq >"$log" 2>&1 || {
		cat "$log" >&2
		echo "deps.sh: apt-get update failed (above); trying with the lists apt has" >&2
	}
}

if ! major=$(su_pg_major 2>"$log"); then
	if [ "$(id -u)" = 0 ] && [ -z "${PG_MAJOR:-}" ]; then
		apt_update
		major=$(su_pg_major) || {
			echo "deps.sh: apt knows no package \"postgresql\": which PostgreSQL? Set PG_MAJOR=NN" >&2
			exit 1
		}
	else
		cat "$log" >&2
		echo "deps.sh: which PostgreSQL? Set PG_MAJOR=NN, or run as root" >&2
		exit 1
	fi
fi

if [ "$mode" = installed ]; then
	packages=("postgresql-$major" python3 openssl ca-certificates)
elif [ "$mode" = package ]; then
	# the Build-Depends of debian/control.in, the server headers of this
	# major, and the tools of dpkg-buildpackage
	packages=(build-essential dpkg-dev debhelper postgresql-server-dev-all "postgresql-server-dev-$major"
		libcurl4-openssl-dev libjson-c-dev pkg-config gcc make)
else
	packages=(
		# (pgbench is part of postgresql-NN: postgresql-contrib is only a name
		# for it, a virtual one from trixie on)
		"postgresql-$major" "postgresql-server-dev-$major"
		libcurl4-openssl-dev libjson-c-dev pkg-config make gcc
		libipc-run-perl openssl python3 curl ca-certificates nginx-light wrk
		# the fuzzer (test/fuzz): clang and libFuzzer's runtime, the versions
		# that are this suite's default (bookworm: clang-14, libclang-rt-14-dev)
		clang libclang-rt-dev
	)
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing=()
for p in "${packages[@]}"; do
	installed "$p" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "deps.sh: missing packages (${missing[*]}); run as root" >&2
	exit 1
fi
echo "deps.sh: installing ${missing[*]}"
apt_update
if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
	cat "$log" >&2
	echo "deps.sh: apt-get install failed" >&2
	exit 1
fi
# the server is the one the scripts will use
if [ ! -x "/usr/lib/postgresql/$major/bin/pg_config" ]; then
	echo "deps.sh: /usr/lib/postgresql/$major/bin/pg_config is missing after the install" >&2
	exit 1
fi
