#!/usr/bin/env bash
# The main job, end to end, on a fresh Debian machine (12 or later; run as root):
# installs what is needed, builds and installs shopping_upload, starts a
# throwaway cluster and the stand-in WeChat server on 127.0.0.1, and shows
# an order imported, validated, built and uploaded: once by hand with
# upload_shopping_info(), once by the background worker after a plain
# INSERT-and-COMMIT; then the payment's life at WeChat's order shipping
# management service: its shipment uploaded once WeChat finds the payment,
# get_trade_order() showing it shipped, the receipt reminder sent, and a
# settlement event received.  Everything it started is stopped at the end.
#
# SU_INSTALLED=1: the extension is already installed (the Debian package
# postgresql-NN-shopping-upload of scripts/package.sh, say): nothing is built;
# as root only the server, python3, openssl and ca-certificates are installed
# (scripts/deps.sh --installed), and the demo stops at once unless
# $(pg_config --sharedir)/extension/shopping_upload.control is there.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
installed=${SU_INSTALLED:-0}
if [ "$(id -u)" = 0 ]; then
	if [ "$installed" = 1 ]; then
		bash "$here/scripts/deps.sh" --installed
	else
		bash "$here/scripts/deps.sh"
	fi
fi
. "$here/scripts/lib.sh"

work=$(mktemp -d /tmp/shopping_upload-demo.XXXXXX)
chmod 755 "$work"
chown "$PG_USER" "$work"
stub_pid=
cleanup() {
	[ -f "$work/pg/postmaster.pid" ] && as_pg pg_ctl -D "$work/pg" -m fast stop >/dev/null 2>&1
	[ -n "$stub_pid" ] && kill "$stub_pid" 2>/dev/null && wait "$stub_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ "$installed" = 1 ]; then
	control=$("$PG_CONFIG" --sharedir)/extension/shopping_upload.control
	say "Using the shopping_upload installed for PostgreSQL $PG_MAJOR_VERSION (nothing is built)"
	if [ ! -f "$control" ]; then
		echo "demo.sh: SU_INSTALLED=1 but there is no $control: install postgresql-$PG_MAJOR_VERSION-shopping-upload first" >&2
		exit 1
	fi
	echo "$control: $(sed -n "s/^default_version *= *//p" "$control")"
else
	say "Building and installing shopping_upload"
	build_and_install "$here" "$work/tree"
fi

say "Starting the stand-in WeChat server on 127.0.0.1"
python3 "$here/test/wechat_stub.py" --port 0 --port-file "$work/stub.port" \
	--accounts wxtestappid:testsecret >"$work/stub.log" 2>&1 &
stub_pid=$!
for _ in $(seq 100); do [ -s "$work/stub.port" ] && break; sleep 0.1; done
stub_url="http://127.0.0.1:$(cat "$work/stub.port")"
echo "stand-in: $stub_url"
stub_post() { python3 - "$stub_url$1" "$2" <<'PY'
import sys, urllib.request
req = urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(), method="POST",
                             headers={"Content-Type": "application/json"})
print(urllib.request.urlopen(req).read().decode())
PY
}
# the second order's payment, as WeChat Pay made it: found on the second look
stub_post /__stub/trade/payments '{"mchid": "1230000109", "out_trade_no": "DEMO_20261126_0002",
	"openid": null, "found_after_lookups": 1}' >/dev/null

say "Starting a throwaway PostgreSQL $PG_MAJOR_VERSION cluster (Unix socket in $work)"
as_pg initdb -D "$work/pg" -A trust -E UTF8 --locale="$SU_LOCALE" >/dev/null
# the app secret lives in a file only the server's user can read
printf 'testsecret\n' >"$work/app_secret"
chmod 600 "$work/app_secret"
chown "$PG_USER" "$work/app_secret"
cat >>"$work/pg/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$work'
shared_preload_libraries = 'shopping_upload'
shopping_upload.api_base_url = '$stub_url'
shopping_upload.appid = 'wxtestappid'
shopping_upload.secret_file = '$work/app_secret'
shopping_upload.allow_insecure_http = on	# the local stand-in speaks plain http
shopping_upload.verify_delay = '2s'	# default 1min: WeChat links uploads later
timezone = 'Asia/Shanghai'
CONF
as_pg pg_ctl -D "$work/pg" -l "$work/pg.log" -w start >/dev/null
psql_() { as_pg psql -X -h "$work" -d postgres -v ON_ERROR_STOP=1 "$@"; }

psql_ -q -c 'CREATE EXTENSION shopping_upload'
order=$(cat "$here/test/demo_order.json")

say "Importing an order (test/demo_order.json) with auto_upload off"
id=$(psql_ -qAt -c "SET shopping_upload.auto_upload = off" \
	-c "SELECT shopping_upload.import_order(\$json\$$order\$json\$)")
echo "order_id = $id"

say "Validating it against every rule of uploadShoppingInfo (no rows: valid)"
psql_ -c "SELECT * FROM shopping_upload.validate_order($id)"

say "The payload that will be sent"
psql_ -At -c "SELECT jsonb_pretty(shopping_upload.build_payload($id))"

say "A broken copy is refused before any request, with WeChat's errcodes"
psql_ -c "SELECT * FROM shopping_upload.validate_payload(
	jsonb_set(jsonb_set(\$json\$$order\$json\$::jsonb,
		'{order_list,0,item_list,0,unit_price}', '0'),
		'{payer}', '{}'), 'wxtestappid')"

say "Uploading it by hand: SELECT * FROM shopping_upload.upload_shopping_info($id)"
psql_ -c "SELECT * FROM shopping_upload.upload_shopping_info($id)"

# the worker asks WeChat at start whether the appid is in the order shipping
# management service; shipments committed before it knows go to /user-order only
for _ in $(seq 100); do
	[ "$(psql_ -qAt -c "SELECT count(*) FROM shopping_upload.trade_apps WHERE managed")" = 1 ] && break
	sleep 0.1
done

say "The background worker: an order and its shipment committed together; the worker"
say "uploads the order, then its shipping information, then verifies the upload"
id2=$(psql_ -qAt -c "BEGIN" -c "SELECT shopping_upload.import_order(
	jsonb_set(\$json\$$order\$json\$::jsonb, '{order_key,out_trade_no}', '\"DEMO_20261126_0002\"'))" \
	-c "SELECT shopping_upload.import_shipping('{
	  \"order_key\": {\"order_number_type\": 1, \"mchid\": \"1230000109\", \"out_trade_no\": \"DEMO_20261126_0002\"},
	  \"delivery_mode\": 1,
	  \"shipping_list\": [{\"tracking_no\": \"SF1234567890\", \"express_company\": \"SF\",
	                     \"contact\": {\"receiver_contact\": \"139****5678\"}}]}')" -c "COMMIT")
id2=${id2%%$'\n'*}	# import_order()'s answer (import_shipping()'s is the same)
echo "order_id = $id2, with one shipment"
loop=
for _ in $(seq 150); do
	loop=$(psql_ -qAt -c "SELECT state || ' ' || coalesce(shipping_state, '-') || ' ' || (verified_at IS NOT NULL)
		FROM shopping_upload.order_status WHERE order_id = $id2")
	[ "$loop" = "uploaded uploaded true" ] && break
	sleep 0.1
done
if [ "$loop" != "uploaded uploaded true" ]; then
	echo "demo.sh: order $id2 did not go through the whole loop (state, shipping_state, verified: $loop)" >&2
	exit 1
fi
psql_ -c "SELECT order_id, state, attempts, last_errcode, uploaded_version,
	shipping_state, shipping_errcode, verify_result, verified_at IS NOT NULL AS verified
	FROM shopping_upload.order_status ORDER BY order_id"
psql_ -c "SELECT audit_id, order_id, kind, via, upload_time, http_status, errcode, errmsg,
	verify_result, round(duration_ms::numeric, 1) AS ms
	FROM shopping_upload.audit ORDER BY audit_id"
psql_ -x -c "SELECT * FROM shopping_upload.stats"

say "What the stand-in received (the token travels in the URL only; shortened here)"
python3 - "$stub_url" <<'PY'
import json, sys, urllib.request
reqs = json.load(urllib.request.urlopen(sys.argv[1] + "/__stub/requests"))
for r in reqs:
    tok = r["query"].get("access_token", "")
    shown = (tok[:8] + "...") if tok else "-"
    body = r["body"]
    ans = r["answer"]["json"] if r["answer"] else None
    if isinstance(ans, dict) and "access_token" in ans:
        ans = dict(ans, access_token=ans["access_token"][:8] + "...")
    if r["path"] == "/cgi-bin/stable_token":
        body = "(grant_type, appid, secret: not shown)"
    print(f'{r["method"]} {r["path"]} access_token={shown} -> {json.dumps(ans, ensure_ascii=False)}')
    print(f'    {body[:160]}{"..." if len(body) > 160 else ""}')
PY

say "Getting paid: the shipment at WeChat's order shipping management service"
say "(the worker asked is_trade_managed at start; WeChat found the payment on its second look)"
psql_ -c "SELECT appid, managed, pinned, checked_at IS NOT NULL AS asked FROM shopping_upload.trade_apps"
loop=
for _ in $(seq 300); do
	loop=$(psql_ -qAt -c "SELECT trade_shipping_state FROM shopping_upload.order_status WHERE order_id = $id2")
	[ "$loop" = "uploaded" ] && break
	sleep 0.1
done
if [ "$loop" != "uploaded" ]; then
	echo "demo.sh: the shipment of order $id2 was not uploaded to the shipping management service ($loop)" >&2
	exit 1
fi
psql_ -c "SELECT audit_id, kind, via, errcode, errmsg FROM shopping_upload.audit
	WHERE kind = 'trade_shipping' ORDER BY audit_id"

say "get_trade_order(): WeChat's view of the payment (order_state 2: shipped)"
psql_ -At -c "SELECT jsonb_pretty(shopping_upload.get_trade_order($id2))"

say "The courier reports the parcel signed for: the worker sends the receipt reminder, once"
psql_ -q -c "UPDATE shopping_upload.shippings SET received_at = now() WHERE order_id = $id2"
loop=
for _ in $(seq 150); do
	loop=$(psql_ -qAt -c "SELECT confirm_notified_at IS NOT NULL FROM shopping_upload.trade_state WHERE order_id = $id2")
	[ "$loop" = "t" ] && break
	sleep 0.1
done
if [ "$loop" != "t" ]; then
	echo "demo.sh: no receipt reminder was sent for order $id2" >&2
	exit 1
fi
psql_ -c "SELECT audit_id, kind, via, errcode, errmsg FROM shopping_upload.audit
	WHERE kind = 'trade_confirm' ORDER BY audit_id"

say "WeChat settles the payment and pushes an event; the message endpoint hands it to receive_event()"
event=$(stub_post /__stub/trade/event '{"event": "trade_manage_order_settlement",
	"mchid": "1230000109", "out_trade_no": "DEMO_20261126_0002", "stage": "settlement"}')
echo "$event"
psql_ -c "SELECT shopping_upload.receive_event(\$e\$$event\$e\$) AS event_id"
psql_ -c "SELECT event_id, event, order_id, applied FROM shopping_upload.events"
psql_ -c "SELECT order_id, trade_shipping_state, wechat_order_state, in_complaint, reship_used
	FROM shopping_upload.order_status WHERE order_id = $id2"
psql_ -c "SELECT trade_shipped, trade_needs_reship, payments_awaiting_settlement, payments_settled
	FROM shopping_upload.stats"

say "Done: the cluster and the stand-in are stopped and removed"
