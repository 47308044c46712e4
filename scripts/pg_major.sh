# Sourced by scripts/deps.sh and scripts/lib.sh: which PostgreSQL major to
# build and test against.
#
#   su_pg_major    prints it, or fails when nothing tells
#
# In order: $PG_MAJOR; the major the installed "postgresql" metapackage
# depends on; the one its candidate in apt's lists depends on (what this
# Debian suite ships: bookworm 15, trixie 17, sid 18); the newest
# /usr/lib/postgresql/NN with server headers.  Never /usr/bin/pg_config: on
# Debian that is a wrapper that runs the newest pg_config installed, which
# need not be the server that runs the tests.
su_pg_major() {
	local m
	if [ -n "${PG_MAJOR:-}" ]; then
		case $PG_MAJOR in
		*[!0-9]*)
			echo "PG_MAJOR=$PG_MAJOR is not a PostgreSQL major version (15, 17, ...)" >&2
			return 1
			;;
		esac
		echo "$PG_MAJOR"
		return 0
	fi
	# "postgresql-17", "postgresql-17 (>= …)", possibly among others
	m=$(dpkg-query -W -f='${Status}|${Depends}\n' postgresql 2>/dev/null |
		sed -n 's/^install ok installed|.*postgresql-\([0-9][0-9]*\).*/\1/p' | head -n 1)
	if [ -z "$m" ]; then
		m=$(apt-cache show --no-all-versions postgresql 2>/dev/null |
			sed -n 's/^Depends:.*postgresql-\([0-9][0-9]*\).*/\1/p' | head -n 1)
	fi
	if [ -z "$m" ]; then
		m=$(ls -d /usr/lib/postgresql/*/bin/pg_config 2>/dev/null | sort -V | tail -n 1 |
			sed -n 's|^/usr/lib/postgresql/\([0-9][0-9]*\)/bin/pg_config$|\1|p')
	fi
	[ -n "$m" ] || return 1
	echo "$m"
}
