#!/usr/bin/env bash
# Builds the Debian package postgresql-NN-shopping-upload (debian/, pg_buildext)
# for the PostgreSQL major of this Debian suite (scripts/pg_major.sh: bookworm
# 15, trixie 17, sid 18; PG_MAJOR=NN for another that apt can install):
#
#   bash scripts/package.sh [DIR]        (as root; DIR default: dist/ here)
#
# As root it apt-get installs what the build needs and says which
# (build-essential, dpkg-dev, debhelper, postgresql-server-dev-all,
# postgresql-server-dev-NN, libcurl4-openssl-dev, libjson-c-dev, pkg-config,
# gcc, make); as another user they must be there already.  The build runs
# with dpkg-buildpackage -us -uc -b in a temporary copy of this tree (without
# .git and build output), with debian/control made anew for that one major
# (PG_SUPPORTED_VERSIONS=NN pg_buildext updatecontrol) and without the tests
# (scripts/test.sh runs them).  The package is left in DIR, and its path
# printed; the build's output is shown only when it fails.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/scripts/pg_major.sh"
dist=${1:-$here/dist}

export DEBIAN_FRONTEND=noninteractive
work=$(mktemp -d /tmp/shopping_upload-package.XXXXXX)
trap 'rm -rf "$work"' EXIT
log=$work/log

# what the build needs (deps.sh --package: it finds the major, as root
# installs what is missing and says which, as another user names it)
bash "$here/scripts/deps.sh" --package
major=$(su_pg_major)

# build in a copy: dpkg-buildpackage writes debian/ and the parent folder
src=$work/shopping-upload
mkdir -p "$src"
tar -C "$here" --exclude=.git --exclude=./dist --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
	--exclude='*.d' --exclude=tmp_check --exclude=results --exclude=log --exclude=output_iso \
	-cf - . | tar -C "$src" -xf -
export PG_SUPPORTED_VERSIONS=$major DEB_BUILD_OPTIONS="nocheck${DEB_BUILD_OPTIONS:+ $DEB_BUILD_OPTIONS}"
unset PG_CONFIG
if ! (cd "$src" && pg_buildext updatecontrol && dpkg-buildpackage -us -uc -b) >"$log" 2>&1; then
	cat "$log" >&2
	echo "package.sh: dpkg-buildpackage failed (above)" >&2
	exit 1
fi

debs=("$work"/postgresql-"$major"-shopping-upload_*.deb)
if [ ! -f "${debs[0]}" ]; then
	cat "$log" >&2
	echo "package.sh: the build made no postgresql-$major-shopping-upload_*.deb" >&2
	exit 1
fi
mkdir -p "$dist"
cp "${debs[@]}" "$dist/"
dist=$(cd "$dist" && pwd)
for d in "${debs[@]}"; do
	echo "package.sh: $dist/${d##*/}"
done
