# Shared by scripts/test.sh and scripts/demo.sh: where things are, and how
# to run a command as the unprivileged OS user that owns test clusters.
# Source it after scripts/deps.sh has run: it needs PostgreSQL installed.

# The server: $PG_CONFIG when set, else /usr/lib/postgresql/NN/bin/pg_config
# of the major deps.sh installs (scripts/pg_major.sh), never the
# /usr/bin/pg_config wrapper (the newest installed, whatever runs the tests).
if [ -z "${PG_CONFIG:-}" ]; then
	. "$(dirname "${BASH_SOURCE[0]}")/pg_major.sh"
	PG_CONFIG=/usr/lib/postgresql/$(su_pg_major 2>/dev/null || echo NN)/bin/pg_config
fi
if [ ! -x "$PG_CONFIG" ]; then
	echo "lib.sh: no $PG_CONFIG: run scripts/deps.sh as root (it installs postgresql-server-dev-NN), or set PG_CONFIG" >&2
	exit 1
fi
PG_BIN=$("$PG_CONFIG" --bindir)
PG_VERSION=$("$PG_CONFIG" --version)		# "PostgreSQL 17.6 (Debian 17.6-0+deb13u1)"
PG_MAJOR_VERSION=$(echo "$PG_VERSION" | sed -n 's/^PostgreSQL \([0-9][0-9]*\).*/\1/p')
export PG_CONFIG PATH="$PG_BIN:$PATH"

# Every cluster and client speaks UTF-8, whatever the caller's locale (a bare
# environment means C: SQL_ASCII clusters, psql padding multibyte text by
# bytes).  C.UTF-8 is part of Debian's libc; messages stay in English.
# pg_regress and PostgreSQL::Test::Utils drop LC_ALL, so LANG is what their
# initdb runs read.
if locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$'; then
	SU_LOCALE=C.UTF-8
else
	SU_LOCALE=C
fi
export LANG=$SU_LOCALE LC_ALL=$SU_LOCALE PGCLIENTENCODING=UTF8
unset LANGUAGE LC_CTYPE LC_COLLATE LC_MESSAGES LC_NUMERIC LC_MONETARY LC_TIME

# PostgreSQL refuses to run as root: as root, clusters run as "postgres",
# from / (the caller's folder, root's home say, is no place postgres may
# enter: initdb and psql would say "could not change directory").  Paths
# given to as_pg are absolute.
if [ "$(id -u)" = 0 ]; then
	PG_USER=postgres
	as_pg() { (cd / && runuser -u "$PG_USER" -- env PATH="$PATH" PG_CONFIG="$PG_CONFIG" "$@"); }
else
	PG_USER=$(id -un)
	as_pg() { "$@"; }
fi

# Copies the source tree (without .git) into a folder the cluster user owns,
# builds it there and installs it.  Prints nothing on success.
build_and_install() {
	local src=$1 dst=$2
	mkdir -p "$dst"
	tar -C "$src" --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' --exclude='*.d' \
		-cf - . | tar -C "$dst" -xf -
	chown -R "$PG_USER" "$dst"
	as_pg make -C "$dst" -s PG_CONFIG="$PG_CONFIG" WERROR=1 >"$dst/build.log" 2>&1 || {
		cat "$dst/build.log" >&2
		return 1
	}
	if grep -qi 'warning' "$dst/build.log"; then
		cat "$dst/build.log" >&2
		echo "build: warnings are errors here" >&2
		return 1
	fi
	if [ -w "$("$PG_CONFIG" --pkglibdir)" ]; then
		make -C "$dst" -s install PG_CONFIG="$PG_CONFIG" >/dev/null
	else
		sudo make -C "$dst" -s install PG_CONFIG="$PG_CONFIG" >/dev/null
	fi
}
