#!/usr/bin/env bash
# The README's production quick start, followed block by block as a new user
# would, on a Debian root where the package is installed (scripts/roots.sh's
# install root runs it after the demo):
#
#   SU_THROWAWAY_ROOT=1 bash scripts/quickstart.sh     (as root)
#
# It changes the machine as the quick start says (a secret file in
# /etc/postgresql, a conf.d file of Debian's cluster, a database "shop"): it
# refuses to run unless SU_THROWAWAY_ROOT=1 says the root is thrown away
# afterwards.
#
# The blocks are read from README.md, section "Production quick start", in
# their order, each found by what it says; one that is missing or changed
# fails the run, so that the README and the product cannot drift apart
# unnoticed.  What is not taken as written:
#   - NN is the major of the one cluster in /etc/postgresql;
#   - the package is installed already (the block's command is only checked);
#   - the secret is typed into the block's "cat >" by this script: the
#     stand-in WeChat (test/wechat_stub.py, on 127.0.0.1) knows the README's
#     appid with that secret;
#   - the settings' file gets two more lines: api_base_url pointing at the
#     stand-in, and allow_insecure_http (the stand-in speaks plain http);
#   - Debian's cluster is started first (apt started it on a real machine;
#     in the root, services do not start), on its Unix socket only (a root
#     shares the machine's network, whose port 5432 may be taken), and the
#     restart is the block's "or:" command (no systemd in a root);
#   - the interactive psql of the block runs the SQL blocks that follow it,
#     with -X -v ON_ERROR_STOP=1 and unaligned output.
# Checked: every check_setup() row is ok (or NULL), and the example order is
# seen "uploaded" in order_status without a call by hand.  Prints each step
# with its time, and ends with one line "N passed, N failed" (1 or 0 each).
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
readme=$here/README.md
secret=quickstart-secret-$$
started=${EPOCHREALTIME/./}
stub_pid=
work=

fail() {
	echo "quickstart.sh: $*" >&2
	echo "0 passed, 1 failed"
	exit 1
}
cleanup() {
	[ -n "$stub_pid" ] && kill "$stub_pid" 2>/dev/null && wait "$stub_pid" 2>/dev/null
	[ -n "$work" ] && rm -rf "$work"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || fail "run it as root"
[ "${SU_THROWAWAY_ROOT:-0}" = 1 ] ||
	fail "it changes /etc/postgresql and the cluster as the README says: set SU_THROWAWAY_ROOT=1 in a root you throw away"

step() {						# step TEXT: prints it with the time since the start
	local us=$((${EPOCHREALTIME/./} - started))
	printf '[+%3d.%d s] %s\n' $((us / 1000000)) $((us % 1000000 / 100000)) "$*"
}

# the blocks of the quick start, in order: block_N files and block_N.lang
work=$(mktemp -d /tmp/shopping_upload-quickstart.XXXXXX)
chmod 755 "$work"
awk -v dir="$work" '
	/^## Production quick start/ { inside = 1; next }
	inside && /^## / { inside = 0 }
	!inside { next }
	/^```/ {
		if (!fence) { fence = 1; n++; lang = substr($0, 4); print lang > (dir "/block_" n ".lang"); close(dir "/block_" n ".lang"); printf "" > (dir "/block_" n); next }
		fence = 0; close(dir "/block_" n); next
	}
	fence { print >> (dir "/block_" n) }
	END { print n > (dir "/count") }
' "$readme"
nblocks=$(cat "$work/count" 2>/dev/null || echo 0)
[ "$nblocks" -ge 7 ] || fail "README.md's quick start has $nblocks code blocks, not the 7 or more it had"

# find LANG REGEX: the first block of LANG (after the last one found) whose
# text matches REGEX; its file name in $found
last=0
find_block() {
	local lang=$1 re=$2 i
	for ((i = last + 1; i <= nblocks; i++)); do
		if [ "$(cat "$work/block_$i.lang")" = "$lang" ] && grep -qE "$re" "$work/block_$i"; then
			found=$work/block_$i
			last=$i
			return 0
		fi
	done
	fail "README.md's quick start has no $lang block matching /$re/ (after block $last): the README and this check drifted apart"
}

nn=$(ls /etc/postgresql 2>/dev/null | head -n 1)
[ -n "$nn" ] && [ -d "/etc/postgresql/$nn/main" ] || fail "no Debian cluster in /etc/postgresql (is the package installed?)"
step "Debian's cluster $nn main; the README's quick start has $nblocks code blocks"

# 2. the package: only checked
find_block sh '^apt install \./dist/postgresql-\*-shopping-upload_\*\.deb$'
dpkg -s "postgresql-$nn-shopping-upload" >/dev/null 2>&1 || fail "the package postgresql-$nn-shopping-upload is not installed"
step "2. the package postgresql-$nn-shopping-upload is installed (the block: $(cat "$found"))"

# Debian's cluster runs, as apt would have started it; on the Unix socket
# only (a root shares the machine's network: its port 5432 may be taken)
echo "listen_addresses = ''    # quickstart.sh: a root shares the machine's ports" \
	>"/etc/postgresql/$nn/main/conf.d/00-quickstart-socket-only.conf"
pg_ctlcluster "$nn" main start 2>/dev/null || pg_ctlcluster "$nn" main status >/dev/null || fail "could not start cluster $nn main"

# 3. the secret file: the block as written, the secret typed in
find_block sh '^install -o postgres -g postgres -m 0600 /dev/null /etc/postgresql/shop_app_secret$'
grep -q '^cat > /etc/postgresql/shop_app_secret$' "$found" || fail "the secret block no longer writes the file with cat"
printf '%s\n' "$secret" | bash -e "$found" || fail "the secret file's block failed"
[ "$(stat -c '%U %a' /etc/postgresql/shop_app_secret)" = "postgres 600" ] || fail "the secret file is not postgres's, mode 600"
step "3. the secret file, as the block makes it: $(stat -c '%U %a' /etc/postgresql/shop_app_secret)"

# 3. the settings' file, and the stand-in it points at
find_block ini '^shared_preload_libraries = .shopping_upload.$'
conf=$(head -n 1 "$found" | sed -n 's/^# *\(\/etc\/postgresql\/NN\/main\/conf\.d\/[a-z_]*\.conf\)$/\1/p')
[ -n "$conf" ] || fail "the settings' block does not name its file in its first line"
conf=${conf//NN/$nn}
appid=$(sed -n "s/^shopping_upload\.appid = '\([^']*\)'.*/\1/p" "$found")
# the database served: shopping_upload.databases, a list of one name here
# (database_name, the 1.1 setting, is still read if the block uses it)
dbname=$(sed -n "s/^shopping_upload\.databases = '\([^',*!\" ]*\)'.*/\1/p" "$found")
[ -n "$dbname" ] || dbname=$(sed -n "s/^shopping_upload\.database_name = '\([^']*\)'.*/\1/p" "$found")
[ -n "$appid" ] && [ -n "$dbname" ] || fail "the settings' block sets no appid, or no single database in shopping_upload.databases"
python3 "$here/test/wechat_stub.py" --port 0 --port-file "$work/stub.port" \
	--accounts "$appid:$secret" >"$work/stub.log" 2>&1 &
stub_pid=$!
for _ in $(seq 100); do [ -s "$work/stub.port" ] && break; sleep 0.1; done
[ -s "$work/stub.port" ] || fail "the stand-in WeChat did not start: $(cat "$work/stub.log")"
port=$(cat "$work/stub.port")
{
	cat "$found"
	echo "shopping_upload.api_base_url = 'http://127.0.0.1:$port'      # the stand-in (quickstart.sh)"
	echo "shopping_upload.allow_insecure_http = on                   # the stand-in speaks http"
} >"$conf"
grep -qE "^include_dir = 'conf\.d'" "/etc/postgresql/$nn/main/postgresql.conf" ||
	fail "Debian's postgresql.conf does not include conf.d, as the README says"
step "3. the settings in $conf (appid $appid, database $dbname), the stand-in on 127.0.0.1:$port"

# 3. the restart: the block's "or:" command (no systemd in a root)
find_block sh '^systemctl restart postgresql@NN-main +# or: pg_ctlcluster NN main restart$'
restart=$(sed -n 's/.*# or: \(pg_ctlcluster NN main restart\)$/\1/p' "$found")
${restart//NN/$nn} || fail "$restart failed"
step "3. restarted: ${restart//NN/$nn}"

# 4. the database; psql for the SQL blocks
find_block sh '^su - postgres -c "createdb shop"$'
grep -q '^su - postgres -c "psql -d shop"$' "$found" || fail "the database block no longer opens psql on shop"
[ "$dbname" = shop ] || fail "the settings name database $dbname, the block creates shop"
su - postgres -c "createdb shop" || fail "createdb shop failed"
psql_shop() { su - postgres -c "psql -d shop -X -q -v ON_ERROR_STOP=1 -A -F '|' -t"; }
step "4. createdb shop"

# the worker starts for the new database within seconds (the launcher looks every second)
for _ in $(seq 100); do
	[ "$(su - postgres -c "psql -d shop -X -A -t -c \"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker'\"")" = 1 ] && break
	sleep 0.1
done

# 4. the extension and check_setup()
find_block sql '^CREATE EXTENSION shopping_upload;$'
grep -q 'shopping_upload.check_setup()' "$found" || fail "the extension's block no longer runs check_setup()"
out=$(psql_shop <"$found" 2>&1) || fail "the extension's block failed: $out"
echo "$out" | sed 's/^/    /'
bad=$(echo "$out" | grep -E '^[a-z_]+\|f\|' || true)
[ -z "$bad" ] || fail "check_setup() finds a problem in the README's set-up: $bad"
echo "$out" | grep -qE '^token\|t\|' || fail "check_setup() got no token from the stand-in"
step "4. CREATE EXTENSION; check_setup(): every row ok"

# 5. the example order, then the worker's upload
find_block sql 'shopping_upload\.import_order\('
grep -q "\"appid\": \"$appid\"" "$found" || fail "the example order's links do not carry the settings' appid $appid"
order=$(psql_shop <"$found" 2>&1) || fail "the example order was refused: $order"
step "5. import_order: order $order"
find_block sql 'FROM shopping_upload\.order_status'
state=
for _ in $(seq 100); do
	state=$(psql_shop <"$found" 2>&1) || fail "the order_status block failed: $state"
	echo "$state" | grep -qE "^$order\|uploaded\|" && break
	sleep 0.1
done
echo "$state" | sed 's/^/    /'
echo "$state" | grep -qE "^$order\|uploaded\|" || fail "the example order is not uploaded: $state"
step "5. order $order uploaded by the worker, no call by hand"

sent=$(python3 - "$port" <<'PY'
import json, sys, urllib.request
stats = json.load(urllib.request.urlopen("http://127.0.0.1:%s/__stub/stats" % sys.argv[1]))
print(stats["by_path"].get("/user-order/orders", 0))
PY
)
[ "$sent" = 1 ] || fail "the stand-in got $sent uploads of the order, not 1"
step "the stand-in got 1 upload: the README's quick start works as written"
pg_ctlcluster "$nn" main stop >/dev/null 2>&1
echo "1 passed, 0 failed"
