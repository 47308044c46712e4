# Shared by scripts/test.sh and scripts/demo.sh: where things are, and how
# to run a command as the unprivileged OS user that owns test clusters.
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PG_BIN=$("$PG_CONFIG" --bindir)
export PG_CONFIG PATH="$PG_BIN:$PATH"

# PostgreSQL refuses to run as root: as root, clusters run as "postgres".
if [ "$(id -u)" = 0 ]; then
	PG_USER=postgres
	as_pg() { runuser -u "$PG_USER" -- env PATH="$PATH" PG_CONFIG="$PG_CONFIG" "$@"; }
else
	PG_USER=$(id -un)
	as_pg() { "$@"; }
fi

# Copies the source tree (without .git) into a folder the cluster user owns,
# builds it there and installs it.  Prints nothing on success.
build_and_install() {
	local src=$1 dst=$2
	mkdir -p "$dst"
	tar -C "$src" --exclude=.git --exclude='*.o' --exclude='*.so' -cf - . | tar -C "$dst" -xf -
	chown -R "$PG_USER" "$dst"
	as_pg make -C "$dst" -s PG_CONFIG="$PG_CONFIG" >"$dst/build.log" 2>&1 || {
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
