#!/usr/bin/env bash
# HTTPS with the system CA store: an upload to the stand-in WeChat server over
# https with shopping_upload.ca_file unset, so that what verifies the server
# is libcurl's default CA path, the one update-ca-certificates keeps.
#
#   SU_THROWAWAY_ROOT=1 bash scripts/system_ca_check.sh     (as root)
#
# It ADDS A TEST CA TO THE SYSTEM'S TRUST STORE for a while
# (/usr/local/share/ca-certificates, update-ca-certificates), so it is only
# for throwaway machines (scripts/roots.sh runs it in its debootstrap roots)
# and refuses to run without SU_THROWAWAY_ROOT=1.  The CA is removed again at
# the end (update-ca-certificates --fresh), whatever happened.
#
# With a test CA and a server certificate for 127.0.0.1/localhost
# (test/make_test_ca.sh), the stand-in serving https on 127.0.0.1, and a
# throwaway cluster (as postgres, Unix socket only; api_base_url
# https://127.0.0.1:PORT, ca_file unset, allow_insecure_http off), the same
# order is uploaded with upload_shopping_info() three times, each from a new
# session (libcurl reads the store anew):
#
#   1. before the CA is in the store: refused, a TLS failure; nothing reached
#      the stand-in
#   2. with the CA in the store: errcode 0, HTTP 200, the stand-in has it
#   3. after the CA is removed from the store: refused again
#
# Ends with "N passed, N failed".  SU_INSTALLED=1: use the extension already
# installed (after scripts/test.sh, or the Debian package) instead of building
# this tree.
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
if [ "${SU_THROWAWAY_ROOT:-}" != 1 ]; then
	echo "system_ca_check.sh: this adds a test CA to the system's trust store: only for a throwaway" >&2
	echo "machine or root (scripts/roots.sh runs it in one).  Set SU_THROWAWAY_ROOT=1 to run it." >&2
	echo "0 passed, 1 failed"
	exit 1
fi
if [ "$(id -u)" != 0 ]; then
	echo "system_ca_check.sh: run as root (it writes the system's CA store)" >&2
	echo "0 passed, 1 failed"
	exit 1
fi
installed=${SU_INSTALLED:-0}
if [ "$installed" = 1 ]; then
	bash "$here/scripts/deps.sh" --installed || { echo "0 passed, 1 failed"; exit 1; }
else
	bash "$here/scripts/deps.sh" || { echo "0 passed, 1 failed"; exit 1; }
fi
. "$here/scripts/lib.sh"

work=$(mktemp -d /tmp/shopping_upload-system-ca.XXXXXX)
chmod 755 "$work"
chown "$PG_USER" "$work"
store=/usr/local/share/ca-certificates/shopping_upload-test-ca-$$.crt
stub_pid=
ca_in_store=
passed=0
failed=0

ca_remove() {
	[ -n "$ca_in_store" ] || return 0
	rm -f "$store"
	update-ca-certificates --fresh >"$work/update-ca.log" 2>&1 || {
		cat "$work/update-ca.log" >&2
		return 1
	}
	ca_in_store=
}
cleanup() {
	[ -f "$work/pg/postmaster.pid" ] && as_pg pg_ctl -D "$work/pg" -m fast stop >/dev/null 2>&1
	[ -n "$stub_pid" ] && kill "$stub_pid" 2>/dev/null && wait "$stub_pid" 2>/dev/null
	ca_remove
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

check() {						# check NAME CONDITION-COMMAND...
	local name=$1
	shift
	if "$@"; then
		echo "ok - $name"
		passed=$((passed + 1))
	else
		echo "not ok - $name"
		failed=$((failed + 1))
	fi
}
finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" = 0 ]
	exit
}
fatal() {
	echo "system_ca_check.sh: $*" >&2
	failed=$((failed + 1))
	finish
}

if [ "$installed" = 1 ]; then
	[ -f "$("$PG_CONFIG" --sharedir)/extension/shopping_upload.control" ] ||
		fatal "SU_INSTALLED=1 but shopping_upload is not installed for PostgreSQL $PG_MAJOR_VERSION"
else
	build_and_install "$here" "$work/tree" || fatal "the build failed"
fi
command -v update-ca-certificates >/dev/null || fatal "no update-ca-certificates (package ca-certificates)"

# the test CA and the stand-in's certificate; the stand-in runs as root and
# reads its key from here
bash "$here/test/make_test_ca.sh" "$work/tls" || fatal "test/make_test_ca.sh failed"
[ -e "$store" ] && fatal "$store exists already"
bundle=/etc/ssl/certs/ca-certificates.crt
in_bundle() {
	[ -f "$bundle" ] && openssl verify -CAfile "$bundle" "$work/tls/server.crt" >/dev/null 2>&1
}
check "the test CA is not in the system store to begin with" eval '! in_bundle'

python3 "$here/test/wechat_stub.py" --port 0 --port-file "$work/stub.port" \
	--tls-cert "$work/tls/server.crt" --tls-key "$work/tls/server.key" \
	--accounts wxtestappid:testsecret >"$work/stub.log" 2>&1 &
stub_pid=$!
for _ in $(seq 100); do [ -s "$work/stub.port" ] && break; sleep 0.1; done
[ -s "$work/stub.port" ] || { cat "$work/stub.log" >&2; fatal "the stand-in did not start"; }
stub_url="https://127.0.0.1:$(cat "$work/stub.port")"

# what the stand-in received: uploads to /user-order/orders (its control API
# is read with the test CA given explicitly)
uploads_received() {
	python3 - "$stub_url" "$work/tls/ca.crt" <<'PY'
import json, ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
reqs = json.load(urllib.request.urlopen(sys.argv[1] + "/__stub/requests", context=ctx))
print(sum(1 for r in reqs if r["path"] == "/user-order/orders"))
PY
}

as_pg initdb -D "$work/pg" -A trust -E UTF8 --locale="$SU_LOCALE" >/dev/null || fatal "initdb failed"
printf 'testsecret\n' >"$work/app_secret"
chmod 600 "$work/app_secret"
chown "$PG_USER" "$work/app_secret"
# No shared_preload_libraries: no worker, and a token cache per session, so
# that no session inherits the backoff of an earlier session's failed token
# request.  ca_file is left unset: libcurl's default CA path verifies.
cat >>"$work/pg/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$work'
shopping_upload.api_base_url = '$stub_url'
shopping_upload.appid = 'wxtestappid'
shopping_upload.secret_file = '$work/app_secret'
shopping_upload.allow_insecure_http = off
timezone = 'Asia/Shanghai'
CONF
as_pg pg_ctl -D "$work/pg" -l "$work/pg.log" -w start >/dev/null || { cat "$work/pg.log" >&2; fatal "the cluster did not start"; }
psql_() { as_pg psql -X -h "$work" -d postgres -v ON_ERROR_STOP=1 "$@"; }

psql_ -q -c 'CREATE EXTENSION shopping_upload' || fatal "CREATE EXTENSION failed"
order=$(cat "$here/test/demo_order.json")
id=$(psql_ -qAt -c "SET shopping_upload.auto_upload = off" \
	-c "SELECT shopping_upload.import_order(\$json\$$order\$json\$)") || fatal "import_order failed"
check "shopping_upload.ca_file is unset" \
	test -z "$(psql_ -qAt -c "LOAD 'shopping_upload'" -c "SHOW shopping_upload.ca_file")"

# upload: one new session, one upload_shopping_info(); prints "errcode|http_status|errmsg"
upload() {
	psql_ -qAt -c "SELECT errcode, http_status, errmsg FROM shopping_upload.upload_shopping_info($id)"
}
refused_for_tls() {				# refused_for_tls RESULT
	local code=${1%%|*}
	[ -n "$code" ] && [ "$code" != 0 ] && [[ $1 == *"TLS failure with 127.0.0.1"*certificate* ]]
}

# 1. before: the system store does not know the test CA
r=$(upload 2>&1)
echo "before the CA is in the store: $r"
check "without the test CA in the system store the upload is refused for TLS" refused_for_tls "$r"
check "nothing reached the stand-in" test "$(uploads_received)" = 0

# 2. the test CA in the system store
cp "$work/tls/ca.crt" "$store"
chmod 644 "$store"
ca_in_store=1
update-ca-certificates >"$work/update-ca.log" 2>&1 || { cat "$work/update-ca.log" >&2; fatal "update-ca-certificates failed"; }
check "update-ca-certificates put the test CA in $bundle" in_bundle
r=$(upload 2>&1)
echo "with the CA in the store: $r"
check "with the test CA in the system store the upload succeeds (errcode 0, HTTP 200)" \
	test "${r%|*}" = "0|200"
check "the stand-in received the upload" test "$(uploads_received)" = 1

# 3. after: removed again
ca_remove || fatal "update-ca-certificates --fresh failed"
check "the test CA is gone from $bundle again" eval '! in_bundle'
r=$(upload 2>&1)
echo "after the CA is removed from the store: $r"
check "with the test CA removed the upload is refused for TLS again" refused_for_tls "$r"
check "nothing more reached the stand-in" test "$(uploads_received)" = 1

finish
