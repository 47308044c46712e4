#!/usr/bin/env bash
# stub_selftest.sh -- checks test/wechat_stub.py and test/make_test_ca.sh with curl.
#
# Starts the stub over HTTP and over HTTPS (with a CA made by make_test_ca.sh),
# each on a port of its own choosing, and exercises the imitated API, every fault
# kind, the records and the control API. Prints one "ok - ..." / "not ok - ..."
# line per check and "N passed, M failed" last; exits non-zero if any check failed.
# Every stub it starts is stopped on exit, however the script ends.
set -u

here=$(cd "$(dirname "$0")" && pwd)
stub="$here/wechat_stub.py"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/stub_selftest.XXXXXX")
pids=()
passed=0
failed=0

cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null
    done
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- reporting ---------------------------------------------------------------

ok()    { passed=$((passed + 1)); echo "ok - $1"; }
notok() { failed=$((failed + 1)); echo "not ok - $1${2:+  [$2]}"; }
# is NAME GOT EXPECTED
is() { if [ "$2" = "$3" ]; then ok "$1"; else notok "$1" "got '$2', expected '$3'"; fi; }
# isnt NAME GOT UNEXPECTED
isnt() { if [ "$2" != "$3" ]; then ok "$1"; else notok "$1" "got '$2'"; fi; }
# check NAME COMMAND...: passes if the command succeeds
check() { local name=$1; shift; if "$@"; then ok "$name"; else notok "$name"; fi; }
# refute NAME COMMAND...: passes if the command fails
refute() { local name=$1; shift; if "$@"; then notok "$name"; else ok "$name"; fi; }
# like NAME STRING ERE
like() {
    if [[ "$2" =~ $3 ]]; then ok "$1"; else notok "$1" "'$2' !~ /$3/"; fi
}

# ---- helpers -----------------------------------------------------------------

# j EXPR: evaluate a Python expression over the JSON document on stdin (as d);
# strings print raw, anything else as JSON.
j() {
    python3 -c '
import json, re, sys
raw = sys.stdin.read()
try:
    d = json.loads(raw)
except ValueError:
    print("<not json: %r>" % raw[:80]); sys.exit(0)
try:
    v = eval(sys.argv[1], {"d": d, "re": re, "len": len})
except Exception as e:
    print("<error: %s>" % e); sys.exit(0)
print(v if isinstance(v, str) else json.dumps(v, sort_keys=True))' "$1"
}

# start_stub NAME ARGS...: start a stub, wait for its port file; sets PORT and PID.
start_stub() {
    local name=$1; shift
    rm -f "$tmp/$name.port"
    python3 "$stub" --port 0 --port-file "$tmp/$name.port" "$@" \
        >"$tmp/$name.out" 2>"$tmp/$name.err" &
    PID=$!
    pids+=("$PID")
    local i
    for i in $(seq 100); do
        [ -s "$tmp/$name.port" ] && break
        sleep 0.1
    done
    PORT=$(cat "$tmp/$name.port" 2>/dev/null)
    [ -n "$PORT" ]
}

CURL=(curl -sS --max-time 10)
# call METHOD URL [BODY]: prints "STATUS BODY" on one line (body last).
call() {
    local out status
    if [ $# -ge 3 ]; then
        status=$("${CURL[@]}" "${CURL_EXTRA[@]}" -o "$tmp/body" -w '%{http_code}' -X "$1" \
            -H 'Content-Type: application/json' --data-binary "$3" "$2" 2>"$tmp/curl.err")
    else
        status=$("${CURL[@]}" "${CURL_EXTRA[@]}" -o "$tmp/body" -w '%{http_code}' -X "$1" \
            "$2" 2>"$tmp/curl.err")
    fi
    CURL_RC=$?
    STATUS=$status
    BODY=$(cat "$tmp/body" 2>/dev/null)
    # the raw bytes stay for rawpy
    rm -f "$tmp/last_body"
    [ -e "$tmp/body" ] && mv -f "$tmp/body" "$tmp/last_body"
}
CURL_EXTRA=()

# rawpy EXPR: evaluate a Python expression over the last answer's raw body
# (b, bytes); utf8(x) says whether x decodes as UTF-8.
rawpy() {
    python3 -c '
import json, sys
try:
    b = open(sys.argv[2], "rb").read()
except OSError:
    b = None
def utf8(x):
    try:
        x.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False
try:
    print(eval(sys.argv[1]))
except Exception as e:
    print("<error: %s>" % e)' "$1" "$tmp/last_body"
}

ACC='"grant_type":"client_credential","appid":"wxtestappid","secret":"testsecret"'
token()         { call POST "$BASE/cgi-bin/stable_token" "{$ACC}"; }
token_refresh() { call POST "$BASE/cgi-bin/stable_token" "{$ACC,\"force_refresh\":true}"; }
DEFAULT_ORDER='{"order_key":{"order_number_type":1}}'
upload()        { call POST "$BASE/user-order/orders?access_token=$1" "${2:-$DEFAULT_ORDER}"; }
fault()         { call POST "$BASE/__stub/fault" "$1"; }
errcode()       { printf '%s' "$BODY" | j 'd.get("errcode")'; }
field()         { printf '%s' "$BODY" | j "$1"; }

RID_RE=' rid: [0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}$'

# ============================================================================
echo "# HTTP stub"
if ! start_stub http --log "$tmp/http.log" --seed 7 \
        --accounts wxtestappid:testsecret,wxother:othersecret; then
    notok "HTTP stub starts"; cat "$tmp/http.err"; exit 1
fi
HTTP_PID=$PID
BASE="http://127.0.0.1:$PORT"
ok "HTTP stub starts (port $PORT)"
is "stdout announces the address" "$(head -n1 "$tmp/http.out")" "listening on $BASE"

# ---- tokens
token
T1=$(field 'd["access_token"]')
is "stable_token: HTTP 200" "$STATUS" 200
check "stable_token: token of 40+ characters" [ "${#T1}" -ge 40 ]
is "stable_token: expires_in 7200" "$(field 'd["expires_in"]')" 7200
token
is "stable_token again: the same token" "$(field 'd["access_token"]')" "$T1"
check "stable_token again: expires_in <= 7200" [ "$(field 'd["expires_in"]')" -le 7200 ]
token_refresh
T2=$(field 'd["access_token"]')
isnt "force_refresh: a new token" "$T2" "$T1"
check "force_refresh: token of 40+ characters" [ "${#T2}" -ge 40 ]
upload "$T1"
is "force_refresh: the old token is rejected (40001)" "$(errcode)" 40001
upload "$T2"
is "force_refresh: the new token works" "$(errcode)" 0
token
is "stable_token after force_refresh: the new token" "$(field 'd["access_token"]')" "$T2"
call POST "$BASE/cgi-bin/stable_token" '{"grant_type":"client_credential","appid":"wxother","secret":"othersecret"}'
TO=$(field 'd["access_token"]')
check "second account gets a token of its own" [ -n "$TO" -a "$TO" != "$T2" ]
upload "$TO"
is "second account's token works" "$(errcode)" 0
call POST "$BASE/cgi-bin/stable_token" '{"grant_type":"client_credential","appid":"wxtestappid","secret":"wrong"}'
is "wrong secret: 40125" "$(errcode)" 40125
like "wrong secret: errmsg + rid" "$(field 'd["errmsg"]')" "^invalid appsecret$RID_RE"
call POST "$BASE/cgi-bin/stable_token" '{"grant_type":"client_credential","appid":"wxnobody","secret":"testsecret"}'
is "unknown appid: 40125" "$(errcode)" 40125
call POST "$BASE/cgi-bin/stable_token" '{"grant_type":"password","appid":"wxtestappid","secret":"testsecret"}'
is "wrong grant_type: 40002" "$(errcode)" 40002
like "wrong grant_type: errmsg + rid" "$(field 'd["errmsg"]')" "^invalid grant_type$RID_RE"
call GET "$BASE/__stub/tokens"
is "/__stub/tokens: current token of each appid" \
    "$(field 'sorted(d)'),$(field 'd["wxtestappid"]["access_token"]')" "[\"wxother\", \"wxtestappid\"],$T2"

# ---- uploads
T=$T2
upload "$T" '{"order_key":{"order_number_type":2,"transaction_id":"42"},"payer":{"openid":"中文"}}'
is "upload: HTTP 200" "$STATUS" 200
is "upload: errcode 0, errmsg ok" "$(field '[d["errcode"], d["errmsg"]]')" '[0, "ok"]'
upload "bogus-token"
is "upload with a bad token: 40001" "$(errcode)" 40001
like "upload with a bad token: errmsg + rid" \
    "$(field 'd["errmsg"]')" "^invalid credential, access_token is invalid or not latest$RID_RE"
call POST "$BASE/user-order/orders" '{}'
is "upload without a token: 40001" "$(errcode)" 40001
upload "$T" '[1,2]'
is "upload of a JSON array: 47001" "$(errcode)" 47001
like "47001: errmsg + rid" "$(field 'd["errmsg"]')" "^data format error$RID_RE"
upload "$T" 'not json'
is "upload of garbage: 47001" "$(errcode)" 47001
printf '{"a":"\xff"}' >"$tmp/badutf8"
upload "$T" "@$tmp/badutf8"
is "upload of invalid UTF-8: 47001" "$(errcode)" 47001
call GET "$BASE/no/such/path"
is "unknown path: HTTP 404" "$STATUS" 404
is "unknown path: JSON body" "$(field 'd["error"]')" "not found"
call GET "$BASE/user-order/orders?access_token=$T"
is "GET on the upload path: HTTP 404" "$STATUS" 404
CURL_EXTRA=(-H 'Transfer-Encoding: chunked')
upload "$T" '{"chunked":true}'
is "chunked request body: accepted" "$(errcode)" 0
CURL_EXTRA=(-H 'Expect: 100-continue')
upload "$T" '{"expect":true}'
is "Expect: 100-continue: accepted" "$(errcode)" 0
CURL_EXTRA=()
conns=$("${CURL[@]}" -o /dev/null -o /dev/null -w '%{num_connects} ' \
    "$BASE/__stub/stats" "$BASE/__stub/stats")
is "keep-alive: second request reuses the connection" "$conns" "1 0 "

# ---- records
call POST "$BASE/__stub/reset"
is "reset: ok" "$(field 'd["ok"]')" true
call GET "$BASE/__stub/requests"
is "reset: no records left" "$BODY" "[]"
lines_before=$(wc -l <"$tmp/http.log")
token
token_refresh
T=$(field 'd["access_token"]')
upload "$T" '{"name":"中文 \"q\""}'
upload "nope"
call GET "$BASE/__stub/requests"
is "records: 4 requests, control calls not recorded" "$(field 'len(d)')" 4
is "records: seq from 1" "$(field '[r["seq"] for r in d]')" "[1, 2, 3, 4]"
is "records: paths" "$(field '[r["path"] for r in d]')" \
    '["/cgi-bin/stable_token", "/cgi-bin/stable_token", "/user-order/orders", "/user-order/orders"]'
is "records: every field" "$(field 'sorted(d[2])')" \
    '["answer", "body", "done", "errcode", "fault", "headers", "method", "path", "query", "seq", "target", "time"]'
is "records: raw body kept" "$(field 'd[2]["body"]')" '{"name":"中文 \"q\""}'
is "records: query parsed" "$(field 'd[2]["query"]["access_token"]')" "$T"
is "records: headers lowercased" "$(field 'd[2]["headers"]["content-type"]')" "application/json"
is "records: answer" "$(field '[d[2]["answer"], d[3]["errcode"], d[2]["fault"]]')" \
    '[{"json": {"errcode": 0, "errmsg": "ok"}, "status": 200}, 40001, null]'
check "records: time is unix time" [ "$(field 'abs(d[0]["time"] - __import__("time").time()) < 60')" = true ]
check "records: done is unix time, not before time" [ "$(field 'd[0]["time"] <= d[0]["done"] < d[0]["time"] + 60')" = true ]
call GET "$BASE/__stub/requests?path=/user-order/orders"
is "records: ?path= filters" "$(field '[r["seq"] for r in d]')" "[3, 4]"
call GET "$BASE/__stub/requests?since=3"
is "records: ?since= filters" "$(field '[r["seq"] for r in d]')" "[4]"
is "log: one line per recorded request" "$(( $(wc -l <"$tmp/http.log") - lines_before ))" 4
is "log: lines are the records" \
    "$(tail -n1 "$tmp/http.log" | j '[d["seq"], d["errcode"]]')" "[4, 40001]"

# ---- stats
call GET "$BASE/__stub/stats"
is "stats: per path" "$(field 'd["by_path"]')" '{"/cgi-bin/stable_token": 2, "/user-order/orders": 2}'
is "stats: per errcode" "$(field 'd["by_errcode"]')" '{"0": 1, "40001": 1}'
is "stats: tokens issued, force_refresh" "$(field '[d["tokens_issued"], d["force_refresh"], d["requests"]]')" "[1, 1, 4]"

# ---- faults
call POST "$BASE/__stub/reset"
fault '{"kind":"errcode:-1"}'
is "fault errcode:-1: queued" "$(field '[d["ok"], d["fault"]["kind"], d["fault"]["count"]]')" '[true, "errcode:-1", 1]'
upload "$T"
is "fault errcode:-1: answered" "$(errcode)" -1
like "fault errcode:-1: errmsg + rid" "$(field 'd["errmsg"]')" "^system error$RID_RE"
upload "$T"
is "fault errcode:-1: used up after 1" "$(errcode)" 0

for code in 45009 45011 48001 268485194; do
    fault "{\"kind\":\"errcode:$code\"}"
    upload "$T"
    is "fault errcode:$code: answered" "$(errcode)" "$code"
    like "fault errcode:$code: errmsg + rid" \
    "$(field 'd["errmsg"]')" "$RID_RE"
done

fault '{"kind":"errcode:40001"}'
upload "$T"
is "fault errcode:40001: answered" "$(errcode)" 40001
upload "$T"
is "fault errcode:40001: the token is invalidated" "$(errcode)" 40001
token
TN=$(field 'd["access_token"]')
isnt "fault errcode:40001: stable_token gives a new token" "$TN" "$T"
T=$TN
upload "$T"
is "fault errcode:40001: new token works" "$(errcode)" 0

fault '{"kind":"http500"}'
upload "$T"
is "fault http500: HTTP 500" "$STATUS" 500
like "fault http500: HTML body" "$BODY" '^<html>.*500'
fault '{"kind":"http502"}'
upload "$T"
is "fault http502: HTTP 502" "$STATUS" 502
fault '{"kind":"notjson"}'
upload "$T"
is "fault notjson: HTTP 200 + <html>oops</html>" "$STATUS $BODY" "200 <html>oops</html>"

fault '{"kind":"delay","delay_ms":400}'
start=$(date +%s%N)
upload "$T"
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
is "fault delay: normal answer" "$(errcode)" 0
check "fault delay: took >= 400 ms (${elapsed} ms)" [ "$elapsed" -ge 400 ]

fault '{"kind":"drop"}'
upload "$T"
is "fault drop: curl sees an empty reply (52)" "$CURL_RC" 52
upload "$T"
is "fault drop: next request fine" "$(errcode)" 0

fault '{"kind":"http500","delay_ms":300}'
start=$(date +%s%N)
upload "$T"
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
check "delay_ms with another kind: slow 500 (${elapsed} ms)" [ "$STATUS" = 500 -a "$elapsed" -ge 300 ]

fault '{"kind":"errcode:-1","count":2}'
upload "$T"; a=$(errcode); upload "$T"; b=$(errcode); upload "$T"; c=$(errcode)
is "fault count 2" "$a $b $c" "-1 -1 0"

fault '{"kind":"errcode:45011"}'
fault '{"kind":"errcode:45009"}'
upload "$T"; a=$(errcode); upload "$T"; b=$(errcode); upload "$T"; c=$(errcode)
is "faults queue in order" "$a $b $c" "45011 45009 0"

fault '{"kind":"http502","count":0}'
upload "$T"; a=$STATUS; upload "$T"; b=$STATUS; upload "$T"; c=$STATUS
is "fault count 0: always" "$a $b $c" "502 502 502"
call GET "$BASE/__stub/faults"
is "faults list: the pending one" "$(field '[(f["kind"], f["applied"]) for f in d]')" '[["http502", 3]]'
call POST "$BASE/__stub/faults/clear"
is "faults/clear: cleared 1" "$(field 'd["cleared"]')" 1
upload "$T"
is "faults/clear: back to normal" "$(errcode)" 0

fault '{"kind":"http500","fraction":0.5}'
n500=0
for i in $(seq 40); do
    upload "$T"
    [ "$STATUS" = 500 ] && n500=$((n500 + 1))
done
check "fault fraction 0.5: some but not all of 40 ($n500)" [ "$n500" -ge 5 -a "$n500" -le 35 ]
call GET "$BASE/__stub/faults"
is "fault fraction: stays until cleared" "$(field 'len(d)')" 1
call POST "$BASE/__stub/faults/clear"

fault '{"kind":"errcode:-1","path":"/cgi-bin/stable_token"}'
upload "$T"
is "stable_token fault: uploads unaffected" "$(errcode)" 0
token
is "stable_token fault: answered there" "$(errcode)" -1
token
is "stable_token fault: used up" "$(field 'd["access_token"]')" "$T"

fault '{"kind":"expire_tokens"}'
check "expire_tokens: immediate" [ "$(field 'd["ok"]')" = true -a "$(field 'd["expired"]')" -ge 1 ]
upload "$T"
is "expire_tokens: old token rejected" "$(errcode)" 40001
call GET "$BASE/__stub/faults"
is "expire_tokens: nothing queued" "$BODY" "[]"
token
T=$(field 'd["access_token"]')
upload "$T"
is "expire_tokens: a fresh token works" "$(errcode)" 0

# ---- hostile answers: bodies that are not UTF-8, odd stable_token answers
fault '{"kind":"badutf8"}'
upload "$T"
is "fault badutf8: HTTP 200" "$STATUS" 200
is "fault badutf8: exactly the raw bytes" \
    "$(rawpy 'b == b"{\"errcode\":-1,\"errmsg\":\"bad \xff\xfe bytes\"}"')" True
is "fault badutf8: the body is not UTF-8" "$(rawpy 'utf8(b)')" False
call GET "$BASE/__stub/requests?path=/user-order/orders"
is "fault badutf8: recorded with errcode -1, text with U+FFFD" \
    "$(field '[d[-1]["fault"], d[-1]["errcode"], "\ufffd" in d[-1]["answer"]["text"]]')" \
    '["badutf8", -1, true]'
upload "$T"
is "fault badutf8: used up" "$(errcode)" 0

fault '{"kind":"badutf8:40001"}'
upload "$T"
is "fault badutf8:40001: errcode 40001" "$(rawpy 'json.loads(b.decode("latin-1"))["errcode"]')" 40001
is "fault badutf8:40001: the errmsg holds the raw byte 0xff, not UTF-8" \
    "$(rawpy 'utf8(b) or b"\xff rid: " not in b')" False
like "fault badutf8:40001: errmsg + rid" "$(rawpy 'json.loads(b.decode("latin-1"))["errmsg"].replace("\xff", "~")')" \
    "^invalid credential, access_token is invalid or not latest ~$RID_RE"
upload "$T"
is "fault badutf8:40001: the token is invalidated" "$(errcode)" 40001
token
T=$(field 'd["access_token"]')

fault '{"kind":"long_errmsg:3000000"}'
upload "$T"
is "fault long_errmsg:3000000: errcode -1 with an errmsg of 3,000,000 x and a rid" \
    "$(field '[d["errcode"], d["errmsg"].count("x"), bool(re.search(" rid: ", d["errmsg"]))]')" \
    "[-1, 3000000, true]"
upload "$T"
is "fault long_errmsg: used up" "$(errcode)" 0
fault '{"kind":"long_errmsg:0"}'
like "fault long_errmsg:0: refused" "$BODY" 'long_errmsg length must be 1'

TOKFAULT='"path":"/cgi-bin/stable_token"'
fault "{\"kind\":\"long_token\",$TOKFAULT}"
token
is "fault long_token: an access_token of 2000 characters" \
    "$(field '[len(d["access_token"]), d["expires_in"], bool(re.fullmatch("[A-Za-z0-9_-]+", d["access_token"]))]')" \
    "[2000, 7200, true]"
upload "$(field 'd["access_token"]')"
is "fault long_token: that token is never valid" "$(errcode)" 40001
fault "{\"kind\":\"long_token:50\",$TOKFAULT}"
token
is "fault long_token:50: 50 characters" "$(field 'len(d["access_token"])')" 50
upload "$T"
is "fault long_token: the current token still works" "$(errcode)" 0

fault "{\"kind\":\"expires_in:\\\"7200\\\"\",$TOKFAULT}"
is "fault expires_in:\"7200\": queued" "$(field 'd["fault"]["kind"]')" 'expires_in:"7200"'
token
is "fault expires_in:\"7200\": expires_in is a string" "$(field 'type(d["expires_in"]).__name__ + d["expires_in"]')" str7200
upload "$(field 'd["access_token"]')"
is "fault expires_in: the token is valid" "$(errcode)" 0
fault "{\"kind\":\"expires_in:-5\",$TOKFAULT}"
token
is "fault expires_in:-5: expires_in -5" "$(field 'd["expires_in"]')" -5
fault "{\"kind\":\"expires_in:1e30\",$TOKFAULT}"
token
is "fault expires_in:1e30: written as given" "$(rawpy 'b.endswith(b",\"expires_in\":1e30}")')" True
fault "{\"kind\":\"expires_in:-5\",$TOKFAULT}"
call POST "$BASE/cgi-bin/stable_token" '{"grant_type":"client_credential","appid":"wxtestappid","secret":"wrong"}'
is "fault expires_in: a wrong secret still gets 40125" "$(errcode)" 40125

fault "{\"kind\":\"no_token\",$TOKFAULT}"
token
is "fault no_token: {\"errcode\":0} and nothing else" "$BODY" '{"errcode":0}'
token
T=$(field 'd["access_token"]')
check "fault no_token: used up" [ "${#T}" -ge 40 ]

fault '{"kind":"badutf8:x"}'
is "bad badutf8 fault: HTTP 400" "$STATUS" 400
fault '{"kind":"long_token:0"}'
is "long_token of 0: HTTP 400" "$STATUS" 400
fault '{"kind":"expires_in:nope"}'
is "expires_in fault that is not JSON: HTTP 400" "$STATUS" 400

fault '{"kind":"bogus"}'
is "bad fault kind: HTTP 400" "$STATUS" 400
fault '{"kind":"errcode:abc"}'
is "bad errcode fault: HTTP 400" "$STATUS" 400
fault '{"kind":"drop","count":-1}'
is "negative count: HTTP 400" "$STATUS" 400
fault '{"kind":"drop","fraction":2}'
is "fraction out of range: HTTP 400" "$STATUS" 400
call GET "$BASE/__stub/nothing"
is "unknown control endpoint: HTTP 404" "$STATUS" 404

call GET "$BASE/__stub/stats"
is "stats: faults applied counted" "$(field '[d["faults_applied"]["errcode:-1"], d["faults_applied"]["drop"]]')" "[4, 1]"
check "stats: drops counted" [ "$(field 'd["by_status"]["drop"]')" = 1 ]

# ---- reset keeps tokens unless asked
fault '{"kind":"drop","count":0}'
call POST "$BASE/__stub/reset"
call GET "$BASE/__stub/stats"
is "reset: counters and faults cleared" \
    "$(field '[d["requests"], d["tokens_issued"], d["force_refresh"], d["faults_pending"], d["by_path"]]')" \
    "[0, 0, 0, 0, {}]"
upload "$T"
is "reset: tokens kept" "$(errcode)" 0
call POST "$BASE/__stub/reset" '{"tokens":true}'
upload "$T"
is "reset {tokens:true}: tokens dropped" "$(errcode)" 40001

# ---- verify and shippings: the remembered orders
VERIFY_PATH=/user-order/shoppinginfo/verify
SHIP_PATH=/user-order/orders/shippings
verify() { call POST "$BASE$VERIFY_PATH?access_token=$1" "$2"; }
ship()   { call POST "$BASE$SHIP_PATH?access_token=$1" "$2"; }
orders() { call GET "$BASE/__stub/orders"; }
vresult() { call POST "$BASE/__stub/verify_result" "$1"; }
# edit BASE_JSON STMT: the JSON document with the Python statement STMT applied to it (d)
edit() {
    printf '%s' "$1" | python3 -c '
import json, sys
d = json.load(sys.stdin)
exec(sys.argv[1])
print(json.dumps(d, ensure_ascii=False))' "$2"
}
# variants BASE_JSON <TABLE: for each line "FIELD|...|STMT" of TABLE, writes BASE_JSON
# edited by STMT to $tmp/case.N and prints "N|FIELD|..." (one python for a whole table)
variants() {
    python3 -c '
import json, sys
for n, line in enumerate(sys.stdin.read().splitlines()):
    *head, stmt = line.split("|")
    d = json.loads(sys.argv[1])
    exec(stmt)
    with open("%s.%d" % (sys.argv[2], n), "w", encoding="utf-8") as f:
        f.write(json.dumps(d, ensure_ascii=False))
    print("|".join([str(n)] + head))' "$1" "$tmp/case"
}
K1='{"order_key":{"order_number_type":1,"mchid":"1230000109","out_trade_no":"SHIP_000001"}'
K2='{"order_key":{"order_number_type":2,"transaction_id":"4200000001"}'
K3='{"order_key":{"order_number_type":1,"mchid":"1230000109","out_trade_no":"NEVER_UPLOADED"}'
P1='"payer":{"openid":"oPayer1"}'
P2='"payer":{"openid":"oPayer2"}'
UP1="$K1,\"order_list\":[{\"merchant_order_no\":\"m1\",\"item_list\":[{\"merchant_item_id\":\"sku-1\"},{\"merchant_item_id\":\"sku-2\"}]},{\"merchant_order_no\":\"m2\",\"item_list\":[{\"merchant_item_id\":\"sku-3\"}]}],$P1,\"upload_time\":\"2024-05-20T10:00:00+08:00\"}"
SHIP1="$K1,$P1,\"upload_time\":\"2024-05-20T11:00:00+08:00\",\"delivery_mode\":1,\"shipping_list\":[{\"tracking_no\":\"SF100\",\"express_company\":\"SF\",\"contact\":{\"consignor_contact\":\"189****1234\",\"receiver_contact\":\"139****5678\"}}]}"
SPLIT="$K1,$P1,\"upload_time\":\"2024-05-20T12:00:00+08:00\",\"delivery_mode\":2,\"shipping_list\":[{\"tracking_no\":\"SF200\",\"express_company\":\"SF\",\"item_list\":[{\"merchant_item_id\":\"sku-1\"},{\"merchant_item_id\":\"sku-3\"}]},{\"tracking_no\":\"YT300\",\"express_company\":\"YTO\",\"item_list\":[{\"merchant_item_id\":\"sku-2\"}]}]}"

call POST "$BASE/__stub/reset" '{"orders":true}'
token
T=$(field 'd["access_token"]')
orders
is "orders: none after reset {orders:true}" "$BODY" "[]"

verify "$T" "$K1,$P1}"
is "verify of an order never uploaded: errcode 0, verify_result unlinked" \
    "$(field '[d["errcode"], d["errmsg"], d["verify_result"]]')" '[0, "ok", "unlinked"]'
upload "$T" "$UP1"
is "upload of an order to verify: accepted" "$(errcode)" 0
verify "$T" "$K1,$P1}"
is "verify of an accepted order, its payer: verify_result linked" \
    "$(field '[d["errcode"], d["errmsg"], d["verify_result"]]')" '[0, "ok", "linked"]'
verify "$T" "$K1,$P2}"
is "verify of an accepted order, another openid: unlinked" "$(field 'd["verify_result"]')" unlinked
upload "$T" "$K2,$P1,\"upload_time\":\"2024-05-20T10:00:00+08:00\"}"
verify "$T" "$K2,$P1}"
is "verify of an accepted order_number_type 2 order: linked" "$(field 'd["verify_result"]')" linked
verify "$T" "{\"order_key\":{\"order_number_type\":2,\"transaction_id\":\"SHIP_000001\"},$P1}"
is "verify of another transaction_id: unlinked" "$(field 'd["verify_result"]')" unlinked
verify "bogus-token" "$K1,$P1}"
is "verify with a bad token: 40001" "$(errcode)" 40001
like "verify with a bad token: errmsg + rid" \
    "$(field 'd["errmsg"]')" "^invalid credential, access_token is invalid or not latest$RID_RE"
verify "$T" '[1]'
is "verify of a JSON array: 47001" "$(errcode)" 47001
verify "$T" "@$tmp/badutf8"
is "verify of invalid UTF-8: 47001" "$(errcode)" 47001
verify "$T" "{$P1}"
is "verify without order_key: 268435461" "$(errcode)" 268435461
like "verify without order_key: errmsg says so + rid" "$(field 'd["errmsg"]')" "^param error: order_key is missing$RID_RE"
variants "$K1,$P1}" >"$tmp/cases" <<'CASES'
order_key not an object|d["order_key"] = "SHIP_000001"
order_number_type 3|d["order_key"]["order_number_type"] = 3
order_number_type "1"|d["order_key"]["order_number_type"] = "1"
type 1 without out_trade_no|del d["order_key"]["out_trade_no"]
type 1 without mchid|del d["order_key"]["mchid"]
out_trade_no of 5 characters|d["order_key"]["out_trade_no"] = "ABCDE"
out_trade_no with a dot|d["order_key"]["out_trade_no"] = "SHIP.000001"
type 2 without transaction_id|d["order_key"] = {"order_number_type": 2}
no payer|del d["payer"]
empty openid|d["payer"]["openid"] = ""
openid of 129 bytes|d["payer"]["openid"] = "o" * 129
openid not a string|d["payer"]["openid"] = 42
CASES
while IFS='|' read -r n name; do
    verify "$T" "@$tmp/case.$n"
    is "verify, $name: 268435461" "$(errcode)" 268435461
done <"$tmp/cases"
call GET "$BASE$VERIFY_PATH?access_token=$T"
is "GET on the verify path: HTTP 404" "$STATUS" 404

# verify_result settings
call GET "$BASE/__stub/verify_result"
is "verify_result settings: defaults" "$BODY" '{"linked": "linked", "unlinked": "unlinked", "overrides": []}'
vresult '{"linked":"已关联","unlinked":"NOT_LINKED"}'
is "verify_result: set linked and unlinked" "$(field '"%s %s %s" % (d["ok"], d["linked"], d["unlinked"])')" "True 已关联 NOT_LINKED"
verify "$T" "$K1,$P1}"
is "verify_result: the linked value answered verbatim" "$(field 'd["verify_result"]')" "已关联"
verify "$T" "$K1,$P2}"
is "verify_result: the unlinked value answered" "$(field 'd["verify_result"]')" NOT_LINKED
vresult "$K1,\"verify_result\":\"FROZEN\"}"
is "verify_result: per-order override set" "$(field 'd["overrides"]')" \
    '[{"id": ["mchid", "1230000109", "SHIP_000001"], "verify_result": "FROZEN"}]'
verify "$T" "$K1,$P1}"
a=$(field 'd["verify_result"]')
verify "$T" "$K1,$P2}"
b=$(field 'd["verify_result"]')
verify "$T" "$K2,$P1}"
c=$(field 'd["verify_result"]')
is "verify_result override: that order answers it whatever the openid; others unaffected" \
    "$a $b $c" "FROZEN FROZEN 已关联"
vresult "$K3,\"verify_result\":\"PENDING\"}"
verify "$T" "$K3,$P1}"
is "verify_result override of an order never uploaded" "$(field 'd["verify_result"]')" PENDING
vresult "$K1,\"verify_result\":null}"
is "verify_result override removed by null" "$(field '[o["verify_result"] for o in d["overrides"]]')" '["PENDING"]'
verify "$T" "$K1,$P1}"
is "verify_result after removing the override: linked value again" "$(field 'd["verify_result"]')" "已关联"
vresult '{"linked":5}'
is "verify_result: a linked value that is not a string: HTTP 400" "$STATUS" 400
vresult '{"order_key":{"order_number_type":3},"verify_result":"x"}'
is "verify_result: an order_key naming no order: HTTP 400" "$STATUS" 400
vresult "$K1}"
is "verify_result: order_key without verify_result: HTTP 400" "$STATUS" 400
vresult '{"bogus":1}'
is "verify_result: unknown field: HTTP 400" "$STATUS" 400
vresult '[1]'
is "verify_result: not an object: HTTP 400" "$STATUS" 400
call POST "$BASE/__stub/reset"
call GET "$BASE/__stub/verify_result"
is "reset: verify_result defaults back, overrides gone" "$BODY" '{"linked": "linked", "unlinked": "unlinked", "overrides": []}'
verify "$T" "$K1,$P1}"
is "reset: orders survive (verify still linked)" "$(field 'd["verify_result"]')" linked
call GET "$BASE/__stub/stats"
is "stats: orders remembered" "$(field 'd["orders"]')" 2

# shippings
ship "$T" "$SHIP1"
is "shippings, unified delivery: errcode 0, errmsg ok" "$(field '[d["errcode"], d["errmsg"]]')" '[0, "ok"]'
orders
is "orders: the accepted orders, in order" "$(field '[o["id"] for o in d]')" \
    '[["mchid", "1230000109", "SHIP_000001"], ["tx", "4200000001"]]'
is "orders: upload kept, with openid and upload_time" \
    "$(field '[d[0]["openid"], d[0]["upload_time"], d[0]["upload"]["order_list"][1]["merchant_order_no"], d[0]["uploads"], d[0]["order_key"]["out_trade_no"]]')" \
    '["oPayer1", "2024-05-20T10:00:00+08:00", "m2", 1, "SHIP_000001"]'
is "orders: shipping kept with its upload_time" \
    "$(field '[d[0]["shipping_time"], d[0]["shipping"]["shipping_list"][0]["tracking_no"], d[0]["shippings"], d[0]["shippings_stale"]]')" \
    '["2024-05-20T11:00:00+08:00", "SF100", 1, 0]'
is "orders: no shipping yet for the other order" "$(field '[d[1]["shipping"], d[1]["shipping_time"], d[1]["shippings"]]')" '[null, null, 0]'
ship "$T" "$SPLIT"
is "shippings, split delivery with items of the order: 0" "$(errcode)" 0
orders
is "shippings: the newer body replaces the kept one" \
    "$(field '[d[0]["shipping_time"], d[0]["shipping"]["delivery_mode"], d[0]["shippings"]]')" \
    '["2024-05-20T12:00:00+08:00", 2, 2]'
ship "bogus-token" "$SHIP1"
is "shippings with a bad token: 40001" "$(errcode)" 40001
ship "$T" '[1]'
is "shippings of a JSON array: 47001" "$(errcode)" 47001
ship "$T" 'not json'
is "shippings of garbage: 47001" "$(errcode)" 47001
ship "$T" "@$tmp/badutf8"
is "shippings of invalid UTF-8: 47001" "$(errcode)" 47001
ship "$T" "$(edit "$SHIP1" 'd["order_key"]["out_trade_no"] = "NEVER_UPLOADED"')"
is "shippings of an order never uploaded: 268435461" "$(errcode)" 268435461
like "shippings of an order never uploaded: errmsg says so + rid" "$(field 'd["errmsg"]')" "^param error: order not uploaded.*$RID_RE"
ship "$T" "$(edit "$SHIP1" 'd["payer"]["openid"] = "oPayer2"')"
is "shippings with another payer than the upload's: 268435461" "$(errcode)" 268435461
ship "$T" "$(edit "$SPLIT" 'd["shipping_list"][1]["item_list"].append({"merchant_item_id": "sku-9"})')"
is "shippings, split, an item not of the order: 268435461" "$(errcode)" 268435461
like "shippings, split, an item not of the order: errmsg names it" "$(field 'd["errmsg"]')" \
    "^param error: shipping_list\\[1\\]\\.item_list\\[1\\]\\.merchant_item_id is not an item of the order$RID_RE"
ship "$T" "$(edit "$SHIP1" 'd["shipping_list"][0]["item_list"] = [{"merchant_item_id": "sku-9"}]')"
is "shippings, unified: item_list not checked against the order" "$(errcode)" 0
orders
is "shippings accepted with an older upload_time: not kept, counted stale" \
    "$(field '[d[0]["shipping_time"], d[0]["shipping"]["delivery_mode"], d[0]["shippings"], d[0]["shippings_stale"]]')" \
    '["2024-05-20T12:00:00+08:00", 2, 3, 1]'
ship "$T" "$(edit "$SHIP1" 'd["shipping_list"].append(dict(d["shipping_list"][0]))')"
is "shippings, unified with 2 shipments: 268485228" "$(errcode)" 268485228
like "268485228: errmsg + rid" "$(field 'd["errmsg"]')" "^unified delivery needs exactly one shipment: .*$RID_RE"
ship "$T" "$(edit "$SHIP1" 'd["shipping_list"] = []')"
is "shippings, unified with 0 shipments: 268485228" "$(errcode)" 268485228
ship "$T" "$(edit "$SHIP1" 'd["shipping_list"][0]["tracking_no"] = ""')"
is "shippings, empty tracking_no: 268485226" "$(errcode)" 268485226
ship "$T" "$(edit "$SPLIT" 'del d["shipping_list"][1]["tracking_no"]')"
is "shippings, missing tracking_no: 268485226" "$(errcode)" 268485226
variants "$SPLIT" >"$tmp/cases" <<'CASES'
268485194|no order_key|del d["order_key"]
268485194|order_number_type 3|d["order_key"]["order_number_type"] = 3
268485196|type 1 without mchid|del d["order_key"]["mchid"]
268485197|type 1 with an empty out_trade_no|d["order_key"]["out_trade_no"] = ""
268485195|type 2 without transaction_id|d["order_key"] = {"order_number_type": 2}
268435461|order_key not an object|d["order_key"] = []
268435461|out_trade_no with a space|d["order_key"]["out_trade_no"] = "SHIP 000001"
268485192|no payer|del d["payer"]
268485192|empty openid|d["payer"]["openid"] = ""
268435461|openid of 129 bytes|d["payer"]["openid"] = "o" * 129
268485214|no upload_time|del d["upload_time"]
268485216|upload_time not RFC 3339|d["upload_time"] = "2024-05-20 12:00:00"
268485216|upload_time on February 30|d["upload_time"] = "2024-02-30T12:00:00Z"
268435461|upload_time a number|d["upload_time"] = 1716177600
268435461|no delivery_mode|del d["delivery_mode"]
268435461|delivery_mode 3|d["delivery_mode"] = 3
268435461|delivery_mode "2"|d["delivery_mode"] = "2"
268435461|no shipping_list|del d["shipping_list"]
268435461|shipping_list an object|d["shipping_list"] = d["shipping_list"][0]
268435461|split with 0 shipments|d["shipping_list"] = []
268435461|split with 11 shipments|d["shipping_list"] = d["shipping_list"][:1] * 11
268435461|a shipment not an object|d["shipping_list"][0] = "SF200"
268435461|tracking_no of 129 bytes|d["shipping_list"][0]["tracking_no"] = "9" * 129
268435461|tracking_no a number|d["shipping_list"][0]["tracking_no"] = 100
268435461|no express_company|del d["shipping_list"][0]["express_company"]
268435461|empty express_company|d["shipping_list"][0]["express_company"] = ""
268435461|split without item_list|del d["shipping_list"][0]["item_list"]
268435461|split with an empty item_list|d["shipping_list"][0]["item_list"] = []
268435461|item_list not an array|d["shipping_list"][0]["item_list"] = "sku-1"
268435461|an item without merchant_item_id|d["shipping_list"][0]["item_list"][0] = {}
268435461|merchant_item_id of 65 bytes|d["shipping_list"][0]["item_list"][0] = {"merchant_item_id": "s" * 65}
268435461|contact not an object|d["shipping_list"][0]["contact"] = "189****1234"
268435461|receiver_contact a number|d["shipping_list"][0]["contact"] = {"receiver_contact": 1891234}
CASES
while IFS='|' read -r n code name; do
    ship "$T" "@$tmp/case.$n"
    is "shippings, $name: $code" "$(errcode)" "$code"
done <"$tmp/cases"
orders
is "refused shippings change nothing" "$(field '[d[0]["shipping_time"], d[0]["shippings"], d[0]["shippings_stale"]]')" \
    '["2024-05-20T12:00:00+08:00", 3, 1]'
call GET "$BASE$SHIP_PATH?access_token=$T"
is "GET on the shippings path: HTTP 404" "$STATUS" 404

# a newer upload_time replaces; an older one is answered 0 and not kept (stale)
call POST "$BASE/__stub/reset"
ship "$T" "$(edit "$SPLIT" 'd["upload_time"] = "2024-05-20T11:59:59.999+08:00"; d["shipping_list"][0]["tracking_no"] = "OLD"')"
is "shippings with an older upload_time: still errcode 0" "$(errcode)" 0
orders
is "shippings with an older upload_time: not kept, counted stale" \
    "$(field '[d[0]["shipping_time"], d[0]["shipping"]["shipping_list"][0]["tracking_no"], d[0]["shippings_stale"]]')" \
    '["2024-05-20T12:00:00+08:00", "SF200", 2]'
ship "$T" "$SPLIT"
is "shippings repeated (same upload_time, same body): 0" "$(errcode)" 0
ship "$T" "$(edit "$SPLIT" 'd["shipping_list"][0]["tracking_no"] = "OTHER"')"
is "shippings with the same upload_time, another body: 0" "$(errcode)" 0
orders
is "same upload_time: a repeat is not stale, another body is" \
    "$(field '[d[0]["shipping"]["shipping_list"][0]["tracking_no"], d[0]["shippings"], d[0]["shippings_stale"]]')" \
    '["SF200", 6, 3]'
ship "$T" "$(edit "$SPLIT" 'd["upload_time"] = "2024-05-20T04:00:00.5Z"; d["shipping_list"][0]["tracking_no"] = "NEWER"')"
orders
is "shippings: a later instant in another offset replaces" \
    "$(field '[d[0]["shipping_time"], d[0]["shipping"]["shipping_list"][0]["tracking_no"], d[0]["shippings_stale"]]')" \
    '["2024-05-20T04:00:00.5Z", "NEWER", 3]'
upload "$T" "$(edit "$UP1" 'd["upload_time"] = "2024-05-20T09:00:00+08:00"; d["payer"]["openid"] = "oOld"')"
is "upload with an older upload_time: still errcode 0" "$(errcode)" 0
orders
is "upload with an older upload_time: not kept, counted stale" \
    "$(field '[d[0]["openid"], d[0]["upload_time"], d[0]["uploads"], d[0]["uploads_stale"]]')" \
    '["oPayer1", "2024-05-20T10:00:00+08:00", 2, 1]'
call GET "$BASE/__stub/stats"
is "stats: stale bodies per path since the reset" "$(field 'd["stale"]')" \
    '{"/user-order/orders": 1, "/user-order/orders/shippings": 2}'
upload "$T" "$(edit "$UP1" 'd["upload_time"] = "2024-05-20T13:00:00+08:00"; d["payer"]["openid"] = "oPayer2"; d["order_list"] = d["order_list"][:1]')"
orders
is "upload with a newer upload_time replaces the kept one" \
    "$(field '[d[0]["openid"], d[0]["upload_time"], d[0]["uploads_stale"]]')" \
    '["oPayer2", "2024-05-20T13:00:00+08:00", 1]'
verify "$T" "$K1,$P1}"
a=$(field 'd["verify_result"]')
verify "$T" "$K1,$P2}"
is "verify follows the kept upload's payer" "$a $(field 'd["verify_result"]')" "unlinked linked"
ship "$T" "$(edit "$SPLIT" 'd["payer"]["openid"] = "oPayer2"; d["upload_time"] = "2024-05-20T14:00:00+08:00"')"
is "shippings, split: sku-3 no longer an item of the kept upload" "$(errcode)" 268435461
ship "$T" "$(edit "$SHIP1" 'd["payer"]["openid"] = "oPayer2"; d["upload_time"] = "2024-05-20T14:00:00+08:00"')"
is "shippings with the kept upload's payer: 0" "$(errcode)" 0
upload "$T" "$DEFAULT_ORDER"
is "upload whose order_key names no order: still accepted" "$(errcode)" 0
call GET "$BASE/__stub/stats"
is "upload whose order_key names no order: not remembered" "$(field 'd["orders"]')" 2

# faults on the new paths
call POST "$BASE/__stub/reset"
fault "{\"kind\":\"errcode:-1\",\"path\":\"$SHIP_PATH\"}"
is "fault on the shippings path: queued there" "$(field 'd["fault"]["path"]')" "$SHIP_PATH"
verify "$T" "$K1,$P2}"
is "shippings fault: verify unaffected" "$(errcode)" 0
upload "$T" "$UP1"
is "shippings fault: uploads unaffected" "$(errcode)" 0
ship "$T" "$(edit "$SHIP1" 'd["payer"]["openid"] = "oPayer2"; d["upload_time"] = "2024-05-20T15:00:00+08:00"')"
is "shippings fault: answered there" "$(errcode)" -1
like "shippings fault: errmsg + rid" "$(field 'd["errmsg"]')" "^system error$RID_RE"
orders
is "a faulted shippings changes no order" "$(field '[d[0]["shipping_time"], d[0]["shippings"]]')" '["2024-05-20T14:00:00+08:00", 8]'
fault "{\"kind\":\"http500\",\"path\":\"$VERIFY_PATH\"}"
verify "$T" "$K1,$P2}"
is "fault http500 on the verify path" "$STATUS" 500
verify "$T" "$K1,$P2}"
is "verify fault: used up" "$(field 'd["verify_result"]')" linked
fault '{"kind":"drop","path":"*","count":2}'
verify "$T" "$K1,$P2}"
a=$CURL_RC
ship "$T" "$SHIP1"
is "fault path \"*\": covers verify and shippings (curl 52)" "$a $CURL_RC" "52 52"
fault '{"kind":"errcode:45011"}'
ship "$T" "$(edit "$SHIP1" 'd["payer"]["openid"] = "oPayer2"; d["upload_time"] = "2024-05-20T16:00:00+08:00"')"
a=$(errcode)
verify "$T" "$K1,$P2}"
b=$(errcode)
upload "$T" "$UP1"
is "fault with the default path: uploads only, not the sibling paths" "$a $b $(errcode)" "0 0 45011"
fault "{\"kind\":\"errcode:40001\",\"path\":\"$VERIFY_PATH\"}"
verify "$T" "$K1,$P2}"
a=$(errcode)
ship "$T" "$SHIP1"
is "fault errcode:40001 on verify: the token is invalidated for every call" "$a $(errcode)" "40001 40001"
token
T=$(field 'd["access_token"]')

# records and stats of the new paths
call GET "$BASE/__stub/requests?path=$SHIP_PATH"
is "records: shippings requests recorded, faulted and refused ones too" \
    "$(field '[(r["fault"], r["errcode"]) for r in d]')" \
    '[["errcode:-1", -1], ["drop", null], [null, 0], [null, 40001]]'
is "records: shippings body kept raw" "$(field 'd[2]["body"]')" \
    "$(edit "$SHIP1" 'd["payer"]["openid"] = "oPayer2"; d["upload_time"] = "2024-05-20T16:00:00+08:00"')"
call GET "$BASE/__stub/requests?path=$VERIFY_PATH"
is "records: verify answers recorded" "$(field '[r["answer"]["json"]["verify_result"] for r in d if r["errcode"] == 0]')" \
    '["linked", "linked", "linked"]'
call GET "$BASE/__stub/stats"
is "stats: by_path counts the verify and shippings paths" \
    "$(field '[d["by_path"][p] for p in ["/user-order/shoppinginfo/verify", "/user-order/orders/shippings", "/user-order/orders"]]')" \
    "[6, 4, 2]"

# reset semantics of the orders
call POST "$BASE/__stub/reset" '{"tokens":true}'
orders
is "reset {tokens:true}: orders survive" "$(field 'len(d)')" 2
call POST "$BASE/__stub/reset" '{"orders":true}'
orders
is "reset {orders:true}: orders dropped" "$BODY" "[]"
token
T=$(field 'd["access_token"]')
verify "$T" "$K1,$P2}"
a=$(field 'd["verify_result"]')
ship "$T" "$SHIP1"
is "reset {orders:true}: verify unlinked, shippings refused (not uploaded)" "$a $(errcode)" "unlinked 268435461"

# ---- the order shipping management service (/wxa/sec/order/...)
TR=/wxa/sec/order
# tcall NAME BODY: POST BODY to /wxa/sec/order/NAME with the token $T
tcall()  { call POST "$BASE$TR/$1?access_token=$T" "$2"; }
treg()   { call POST "$BASE/__stub/trade/payments" "$1"; }
tstate() { call POST "$BASE/__stub/trade/state" "$1"; }
tconf()  { call POST "$BASE/__stub/trade/config" "$1"; }
tevent() { call POST "$BASE/__stub/trade/event" "$1"; }
# tpay EXPR: EXPR over the stub's view of the payment $TPAY_KEY names (as p)
tpay() {
    call GET "$BASE/__stub/trade/payments"
    field "[(lambda p: $1)(p) for p in d if $TPAY_KEY][0]"
}
call POST "$BASE/__stub/reset" '{"tokens":true,"orders":true}'
token
T=$(field 'd["access_token"]')
PAY1='{"order_number_type":2,"transaction_id":"4200000101"}'
BUYER='"payer":{"openid":"oBuyer1"}'
TUNI="{\"order_key\":$PAY1,\"logistics_type\":1,\"delivery_mode\":1,\"shipping_list\":[{\"tracking_no\":\"SF1001\",\"express_company\":\"SF\",\"item_desc\":\"微信红包抱枕*1个\",\"contact\":{\"receiver_contact\":\"139****5678\"}}],\"upload_time\":\"2024-05-20T13:29:35.120+08:00\",$BUYER}"
TPAY_KEY='p["transaction_id"] == "4200000101"'

tcall upload_shipping_info "$TUNI"
is "trade upload of a payment never registered: 10060001" "$(errcode)" 10060001
like "10060001: errmsg + rid" "$(field 'd["errmsg"]')" "^payment not found: no payment with transaction_id 4200000101$RID_RE"
call POST "$BASE$TR/upload_shipping_info?access_token=bogus" "$TUNI"
is "trade upload with a bad token: 40001" "$(errcode)" 40001
tcall get_order '[1]'
is "trade call with a JSON array: 47001" "$(errcode)" 47001
call GET "$BASE$TR/get_order?access_token=$T"
is "GET on a trade path: HTTP 404" "$STATUS" 404

treg '{"payments":[{"transaction_id":"4200000101","mchid":"1230000109","out_trade_no":"TRADE_000101","openid":"oBuyer1","paid_amount":2990,"pay_time":1716180000},{"order_key":{"order_number_type":1,"mchid":"1230000109","out_trade_no":"TRADE_000102"},"found_after_lookups":2}]}'
is "trade/payments: registered" "$(field '[d["ok"], len(d["payments"]), d["payments"][0]["found"], d["payments"][1]["found"], d["payments"][1]["found_after_lookups"]]')" \
    '[true, 2, true, false, 2]'

variants "$TUNI" >"$tmp/cases" <<'CASES'
268485194|no order_key|del d["order_key"]
268485194|order_number_type 3|d["order_key"]["order_number_type"] = 3
268485195|type 2 without transaction_id|d["order_key"] = {"order_number_type": 2}
268485196|type 1 without mchid|d["order_key"] = {"order_number_type": 1, "out_trade_no": "TRADE_000101"}
268485197|type 1 without out_trade_no|d["order_key"] = {"order_number_type": 1, "mchid": "1230000109"}
47001|order_key an array|d["order_key"] = []
10060005|no logistics_type|del d["logistics_type"]
10060005|logistics_type 5|d["logistics_type"] = 5
10060005|logistics_type "1"|d["logistics_type"] = "1"
268485224|no delivery_mode|del d["delivery_mode"]
268485224|delivery_mode 3|d["delivery_mode"] = 3
10060006|split with logistics_type 2|d.update(delivery_mode=2, logistics_type=2, is_all_delivered=True)
10060007|split without is_all_delivered|d["delivery_mode"] = 2
47001|is_all_delivered "true"|d.update(delivery_mode=2, is_all_delivered="true")
47001|no shipping_list|del d["shipping_list"]
47001|shipping_list an object|d["shipping_list"] = d["shipping_list"][0]
47001|empty shipping_list|d["shipping_list"] = []
268485228|unified with 2 parcels|d["shipping_list"] = d["shipping_list"] * 2
10060024|split with 16 parcels|d.update(delivery_mode=2, is_all_delivered=True, shipping_list=[dict(d["shipping_list"][0], tracking_no="SF%d" % i) for i in range(16)])
47001|a parcel not an object|d["shipping_list"][0] = "SF1001"
268485226|express without tracking_no|del d["shipping_list"][0]["tracking_no"]
10060026|tracking_no of 129 bytes|d["shipping_list"][0]["tracking_no"] = "9" * 129
268485227|express with an empty express_company|d["shipping_list"][0]["express_company"] = ""
10060025|express_company of 129 bytes|d["shipping_list"][0]["express_company"] = "Y" * 129
10060008|no item_desc|del d["shipping_list"][0]["item_desc"]
10060009|item_desc of 121 characters|d["shipping_list"][0]["item_desc"] = "抱" * 121
47001|item_desc a number|d["shipping_list"][0]["item_desc"] = 1
47001|SF without contact|del d["shipping_list"][0]["contact"]
47001|SF with empty phones|d["shipping_list"][0]["contact"] = {"consignor_contact": "", "receiver_contact": ""}
47001|a phone whose last digits are masked|d["shipping_list"][0]["contact"]["receiver_contact"] = "1395678****"
47001|contact not an object|d["shipping_list"][0]["contact"] = "139****5678"
47001|a phone of 1025 bytes|d["shipping_list"][0]["contact"]["receiver_contact"] = "*" * 1021 + "5678"
268485214|no upload_time|del d["upload_time"]
268485216|upload_time not RFC 3339|d["upload_time"] = "2024-05-20 13:29:35"
47001|upload_time a number|d["upload_time"] = 1716182975
268485192|no payer|del d["payer"]
268485192|empty openid|d["payer"]["openid"] = ""
47001|openid of 129 bytes|d["payer"]["openid"] = "o" * 129
10060031|another payer than the payment's|d["payer"]["openid"] = "oBuyer2"
10060001|a transaction_id not registered|d["order_key"]["transaction_id"] = "4200000199"
CASES
while IFS='|' read -r n code name; do
    tcall upload_shipping_info "@$tmp/case.$n"
    is "trade upload, $name: $code" "$(errcode)" "$code"
done <"$tmp/cases"
is "refused trade uploads leave the payment unshipped (one refused once found)" \
    "$(tpay '[p["order"]["order_state"], p["order"]["shipping"], p["uploads_accepted"], p["uploads_refused"]]')" '[1, {}, 0, 1]'

tcall upload_shipping_info "$TUNI"
is "trade upload, unified express: errcode 0, errmsg ok" "$(field '[d["errcode"], d["errmsg"]]')" '[0, "ok"]'
is "trade upload: the payment is shipped, finished, no re-ship" \
    "$(tpay '[p["order"]["order_state"], p["finish_shipping"], p["uploads_accepted"], p["reship_used"], p["shipped_time"], p["estimated_settlement_time"] - p["shipped_time"]]')" \
    '[2, true, 1, false, 1716182975, 864000]'
tcall upload_shipping_info "$TUNI"
is "trade upload repeated: 10060023 (unchanged)" "$(errcode)" 10060023
like "10060023: errmsg + rid" "$(field 'd["errmsg"]')" "^shipping information unchanged: .*$RID_RE"
tcall upload_shipping_info "$(edit "$TUNI" 'd["upload_time"] = "2024-05-21T09:00:00+08:00"')"
is "trade upload, same content, later upload_time: 10060023" "$(errcode)" 10060023
tcall get_order '{"transaction_id":"4200000101"}'
is "get_order by transaction_id: the order" \
    "$(field '[d["errcode"], d["errmsg"]] + [d["order"][k] for k in ("transaction_id", "merchant_id", "sub_merchant_id", "merchant_trade_no", "paid_amount", "openid", "pay_time", "order_state", "in_complaint")]')" \
    '[0, "ok", "4200000101", "1230000109", "", "TRADE_000101", 2990, "oBuyer1", 1716180000, 2, false]'
is "get_order: description, the item_desc" "$(field 'd["order"]["description"]')" "微信红包抱枕*1个"
is "get_order: its shipping" "$(field 'dict(d["order"]["shipping"], shipping_list=[dict(x, goods_desc=x["goods_desc"] == "微信红包抱枕*1个") for x in d["order"]["shipping"]["shipping_list"]])')" \
    '{"delivery_mode": 1, "finish_shipping": true, "finish_shipping_count": 1, "goods_desc": "", "logistics_type": 1, "shipping_list": [{"contact": {"consignor_contact": "", "receiver_contact": "139****5678"}, "express_company": "SF", "goods_desc": true, "tracking_no": "SF1001", "upload_time": 1716182975}]}'
tcall get_order '{"merchant_id":"1230000109","merchant_trade_no":"TRADE_000101"}'
is "get_order by merchant_id + merchant_trade_no: the same payment" "$(field '[d["errcode"], d["order"]["transaction_id"]]')" '[0, "4200000101"]'
tcall get_order '{"merchant_id":"1230000109"}'
is "get_order without a whole key: 10060014" "$(errcode)" 10060014
tcall get_order '{"transaction_id":42}'
is "get_order, transaction_id a number: 47001" "$(errcode)" 47001
tcall get_order '{"transaction_id":"4200000199"}'
is "get_order of an unknown payment: 10060001" "$(errcode)" 10060001
tcall get_order '{"merchant_id":"1230000109","merchant_trade_no":"TRADE_000101","sub_merchant_id":"1900000001"}'
is "get_order with another sub_merchant_id: 10060001" "$(errcode)" 10060001

# the one re-ship
TRE=$(edit "$TUNI" 'd["upload_time"] = "2024-05-21T09:00:00+08:00"; d["shipping_list"][0]["tracking_no"] = "SF2002"')
tcall upload_shipping_info "$(edit "$TRE" 'd["upload_time"] = "2024-05-20T12:00:00+08:00"')"
is "trade upload, changed, upload_time earlier than the last: 268485216" "$(errcode)" 268485216
tcall upload_shipping_info "$TRE"
is "trade re-ship (changed after the shipping finished): 0" "$(errcode)" 0
tcall get_order '{"transaction_id":"4200000101"}'
is "re-ship: finish_shipping_count 2, the new parcel replaces the old" \
    "$(field '[d["order"]["shipping"]["finish_shipping_count"], [x["tracking_no"] for x in d["order"]["shipping"]["shipping_list"]], d["order"]["shipping"]["shipping_list"][0]["upload_time"]]')" \
    '[2, ["SF2002"], 1716253200]'
is "re-ship: the stub's view" "$(tpay '[p["reship_used"], p["uploads_accepted"], p["last_upload_time"], p["shipped_time"]]')" \
    '[true, 2, "2024-05-21T09:00:00+08:00", 1716253200]'
tcall upload_shipping_info "$(edit "$TRE" 'd["upload_time"] = "2024-05-22T09:00:00+08:00"; d["shipping_list"][0]["tracking_no"] = "SF3003"')"
is "trade upload after the re-ship: 10060003" "$(errcode)" 10060003
like "10060003: errmsg + rid" "$(field 'd["errmsg"]')" "^re-ship chance used up: .*$RID_RE"
tcall upload_shipping_info "$(edit "$TRE" 'd["upload_time"] = "2024-05-22T09:00:00+08:00"')"
is "trade upload identical to the re-ship: 10060023, not 10060003" "$(errcode)" 10060023

# notify_confirm_receive
tcall notify_confirm_receive '{"transaction_id":"4200000101"}'
is "notify without received_time: 47001" "$(errcode)" 47001
tcall notify_confirm_receive '{"transaction_id":"4200000101","received_time":1716253200000}'
is "notify with a millisecond received_time: 10060029" "$(errcode)" 10060029
tcall notify_confirm_receive '{"transaction_id":"4200000101","received_time":1716253199}'
is "notify with received_time before the shipping: 10060029" "$(errcode)" 10060029
tcall notify_confirm_receive '{"transaction_id":"4200000199","received_time":1716300000}'
is "notify of an unknown payment: 10060001" "$(errcode)" 10060001
tcall notify_confirm_receive '{"merchant_id":"1230000109","merchant_trade_no":"TRADE_000101","received_time":1716300000}'
is "notify: 0" "$(errcode)" 0
tcall notify_confirm_receive '{"transaction_id":"4200000101","received_time":1716300001}'
is "notify a second time: 10060030" "$(errcode)" 10060030
is "notify: the stub's view" "$(tpay '[p["receipt_reminder_sent"], p["received_time"], p["order"]["order_state"]]')" '[true, 1716300000, 2]'

# split delivery, a payment found only at its third lookup, payer from the first upload
TPAY_KEY='p["out_trade_no"] == "TRADE_000102"'
SPLIT1='{"order_key":{"order_number_type":1,"mchid":"1230000109","out_trade_no":"TRADE_000102"},"logistics_type":1,"delivery_mode":2,"is_all_delivered":false,"shipping_list":[{"tracking_no":"YT100","express_company":"YTO","item_desc":"mug*1","contact":{"consignor_contact":"021-****1234"}}],"upload_time":"2024-05-20T10:00:00+08:00","payer":{"openid":"oBuyer2"}}'
tcall upload_shipping_info "$SPLIT1"
a=$(errcode)
tcall upload_shipping_info "$SPLIT1"
b=$(errcode)
tcall upload_shipping_info "$SPLIT1"
is "found_after_lookups 2: 10060001 twice, then found" "$a $b $(errcode)" "10060001 10060001 0"
is "split, part 1: shipped, not finished; payer taken from the upload" \
    "$(tpay '[p["order"]["order_state"], p["finish_shipping"], p["order"]["shipping"]["finish_shipping_count"], p["order"]["openid"], p["lookups"], p["lookups_refused"]]')" \
    '[2, false, 0, "oBuyer2", 3, 2]'
tcall notify_confirm_receive '{"merchant_id":"1230000109","merchant_trade_no":"TRADE_000102","received_time":1716300000}'
is "notify while a split shipping is not finished: 10060028" "$(errcode)" 10060028
tcall upload_shipping_info "$(edit "$SPLIT1" 'd["upload_time"] = "2024-05-20T11:00:00+08:00"')"
is "split, part 1 again: 10060023" "$(errcode)" 10060023
tcall upload_shipping_info "$(edit "$SPLIT1" 'd["upload_time"] = "2024-05-20T11:00:00+08:00"; d["shipping_list"][0]["item_desc"] = "mug*2"')"
is "split, part 1 changed before the end: accepted, no re-ship" "$(errcode)" 0
tcall upload_shipping_info "$(edit "$SPLIT1" 'd["upload_time"] = "2024-05-20T12:00:00+08:00"; d["is_all_delivered"] = True; d["shipping_list"][0].update(tracking_no="ZT200", express_company="ZTO", item_desc="plate*1")')"
is "split, part 2 with is_all_delivered: 0" "$(errcode)" 0
is "split, finished: parcels merged, finish_shipping_count 1, no re-ship" \
    "$(tpay '[[(x["tracking_no"], x["goods_desc"], x["upload_time"]) for x in p["order"]["shipping"]["shipping_list"]], p["order"]["shipping"]["finish_shipping_count"], p["reship_used"], p["order"]["description"]]')" \
    '[[["YT100", "mug*2", 1716174000], ["ZT200", "plate*1", 1716177600]], 1, false, "mug*2;plate*1"]'
tcall upload_shipping_info "$(edit "$SPLIT1" 'd["upload_time"] = "2024-05-20T13:00:00+08:00"; d["delivery_mode"] = 1; d.pop("is_all_delivered")')"
is "split finished, then unified: the re-ship, 0" "$(errcode)" 0
tcall upload_shipping_info "$(edit "$SPLIT1" 'd["upload_time"] = "2024-05-20T14:00:00+08:00"; d["is_all_delivered"] = True')"
is "then split again: 10060003" "$(errcode)" 10060003
is "re-ship by a delivery_mode change: the stub's view" \
    "$(tpay '[p["reship_used"], p["uploads_accepted"], p["uploads_refused"], p["order"]["shipping"]["delivery_mode"], p["order"]["shipping"]["finish_shipping_count"]]')" \
    '[true, 4, 2, 1, 2]'

# virtual goods; a delivery_mode change before the end is the re-ship too; the description cut
treg '[{"transaction_id":"4200000104"},{"transaction_id":"4200000105","openid":"oBuyer1"}]'
tcall upload_shipping_info '{"order_key":{"order_number_type":2,"transaction_id":"4200000104"},"logistics_type":3,"delivery_mode":1,"shipping_list":[{"item_desc":"会员卡*1"}],"upload_time":"2024-05-20T10:00:00Z","payer":{"openid":"oBuyer3"}}'
is "virtual goods: one parcel with only item_desc, 0" "$(errcode)" 0
tcall get_order '{"transaction_id":"4200000104"}'
is "virtual goods: get_order" "$(field '[d["order"]["shipping"]["logistics_type"], d["order"]["shipping"]["shipping_list"][0]["tracking_no"], d["order"]["shipping"]["shipping_list"][0]["express_company"], d["order"]["openid"]]')" \
    '[3, "", "", "oBuyer3"]'
tcall notify_confirm_receive '{"transaction_id":"4200000104","received_time":1716300000}'
is "notify of virtual goods: 10060032" "$(errcode)" 10060032
P5='{"order_key":{"order_number_type":2,"transaction_id":"4200000105"},"logistics_type":1,"delivery_mode":2,"is_all_delivered":false,"shipping_list":[{"tracking_no":"YD1","express_company":"YD","item_desc":"'"$(printf 'a%.0s' $(seq 100))"'"}],"upload_time":"2024-05-20T10:00:00Z","payer":{"openid":"oBuyer1"}}'
tcall upload_shipping_info "$P5"
a=$(errcode)
tcall upload_shipping_info "$(edit "$P5" 'd["upload_time"] = "2024-05-20T11:00:00Z"; d["shipping_list"][0].update(tracking_no="YD2", item_desc="b" * 100)')"
b=$(errcode)
tcall get_order '{"transaction_id":"4200000105"}'
is "split parts of 100 characters: the description cut to 117 + ..." \
    "$a $b $(field '[len(d["order"]["description"]), d["order"]["description"][-5:]]')" '0 0 [120, "bb..."]'
tcall upload_shipping_info "$(edit "$P5" 'd["upload_time"] = "2024-05-20T12:00:00Z"; d["delivery_mode"] = 1; d["is_all_delivered"] = None')"
a=$(errcode)
tcall upload_shipping_info "$(edit "$P5" 'd["upload_time"] = "2024-05-20T13:00:00Z"; d["shipping_list"][0]["tracking_no"] = "YD9"; d["is_all_delivered"] = True')"
is "split not finished, then unified (the re-ship), then changed again: 0, 10060003" "$a $(errcode)" "0 10060003"

# WeChat's state of a payment, set by a test
TPAY_KEY='p["transaction_id"] == "4200000101"'
tstate '{"transaction_id":"4200000101","in_complaint":true}'
is "trade/state: in_complaint" "$(field '[d["ok"], d["payment"]["order"]["in_complaint"]]')" '[true, true]'
tcall get_order '{"transaction_id":"4200000101"}'
is "get_order: in_complaint true" "$(field 'd["order"]["in_complaint"]')" true
tstate '{"transaction_id":"4200000101","order_state":3}'
is "trade/state order_state 3: confirm_receive_time and method set" \
    "$(field '[d["payment"]["order"]["order_state"], d["payment"]["confirm_receive_method"], d["payment"]["confirm_receive_time"] > 1700000000, d["payment"]["settlement_time"]]')" \
    '[3, 1, true, null]'
tcall upload_shipping_info "$(edit "$TRE" 'd["upload_time"] = "2024-05-23T09:00:00+08:00"; d["shipping_list"][0]["tracking_no"] = "SF4004"')"
is "trade upload after receipt was confirmed: 10060002" "$(errcode)" 10060002
tstate '{"order_key":{"order_number_type":2,"transaction_id":"4200000101"},"order_state":4,"settlement_time":1717000000}'
is "trade/state order_state 4 (settled) with settlement_time" "$(field '[d["payment"]["order"]["order_state"], d["payment"]["settlement_time"]]')" '[4, 1717000000]'
tstate '{"transaction_id":"4200000104","order_state":5}'
tcall upload_shipping_info '{"order_key":{"order_number_type":2,"transaction_id":"4200000104"},"logistics_type":4,"delivery_mode":1,"shipping_list":[{"item_desc":"自提*1"}],"upload_time":"2024-05-21T10:00:00Z","payer":{"openid":"oBuyer3"}}'
is "trade upload of a refunded payment: 10060004" "$(errcode)" 10060004
tstate '{"transaction_id":"4200000199","order_state":5}'
is "trade/state of an unknown payment: HTTP 400" "$STATUS" 400
tstate '{"transaction_id":"4200000101","order_state":7}'
is "trade/state order_state 7: HTTP 400" "$STATUS" 400

# push events
tevent '{"event":"trade_manage_order_settlement","transaction_id":"4200000101"}'
is "event trade_manage_order_settlement, settled: its fields" \
    "$(field '[d[k] for k in ("MsgType", "Event", "transaction_id", "merchant_id", "sub_merchant_id", "merchant_trade_no", "pay_time", "shipped_time", "confirm_receive_method", "settlement_time")] + [bool(re.fullmatch("gh_[0-9a-f]{12}", d["ToUserName"])), "estimated_settlement_time" in d]')" \
    '["event", "trade_manage_order_settlement", "4200000101", "1230000109", "", "TRADE_000101", 1716180000, 1716253200, 1, 1717000000, true, false]'
tevent '{"event":"trade_manage_order_settlement","transaction_id":"4200000101","stage":"shipping","fields":{"CreateTime":1}}'
is "event at shipping: estimated_settlement_time; fields override" \
    "$(field '[d["estimated_settlement_time"], "settlement_time" in d, d["CreateTime"]]')" '[1717117200, false, 1]'
tevent '{"event":"trade_manage_remind_shipping","mchid":"1230000109","out_trade_no":"TRADE_000102"}'
is "event trade_manage_remind_shipping" "$(field '[d["Event"], d["transaction_id"], d["merchant_trade_no"], len(d["msg"]) > 0]')" \
    '["trade_manage_remind_shipping", "", "TRADE_000102", true]'
tevent '{"event":"trade_manage_remind_access_api","msg":"hello"}'
is "event trade_manage_remind_access_api: no payment needed" "$(field '[d["Event"], d["msg"], sorted(d)]')" \
    '["trade_manage_remind_access_api", "hello", ["CreateTime", "Event", "FromUserName", "MsgType", "ToUserName", "msg"]]'
tevent '{"event":"trade_manage_bogus"}'
is "event of an unknown kind: HTTP 400" "$STATUS" 400

# found_after_seconds; a fault is no lookup
treg '{"transaction_id":"4200000106","found_after_seconds":1.5}'
tcall get_order '{"transaction_id":"4200000106"}'
a=$(errcode)
sleep 1.6
tcall get_order '{"transaction_id":"4200000106"}'
is "found_after_seconds 1.5: 10060001 at once, found after" "$a $(errcode)" "10060001 0"
treg '{"transaction_id":"4200000107","found_after_lookups":1}'
fault "{\"kind\":\"drop\",\"path\":\"$TR/get_order\"}"
tcall get_order '{"transaction_id":"4200000107"}'
a=$CURL_RC
tcall get_order '{"transaction_id":"4200000107"}'
b=$(errcode)
tcall get_order '{"transaction_id":"4200000107"}'
is "fault drop on get_order: no lookup used; then 10060001, then found" "$a $b $(errcode)" "52 10060001 0"
fault "{\"kind\":\"errcode:10060012\",\"path\":\"$TR/upload_shipping_info\"}"
tcall upload_shipping_info "$(edit "$TUNI" 'd["order_key"]["transaction_id"] = "4200000107"')"
like "fault errcode:10060012 on the trade upload: answered, errmsg + rid" "$(errcode) $(field 'd["errmsg"]')" "^10060012 .*$RID_RE"
TPAY_KEY='p["transaction_id"] == "4200000107"'
is "a faulted trade upload changes no payment" "$(tpay '[p["uploads_accepted"], p["uploads_refused"], p["order"]["shipping"], p["lookups"]]')" '[0, 0, {}, 2]'

# combined payments
treg '{"transaction_id":"4200000200","openid":"oBuyer1","sub_orders":[{"transaction_id":"4200000201"},{"transaction_id":"4200000202"}]}'
is "trade/payments: a combined payment and its sub-orders" \
    "$(field '[len(d["payments"]), d["payments"][0]["sub_orders"][1]["transaction_id"], d["payments"][1]["parent"]["transaction_id"], d["payments"][2]["order"]["openid"]]')" \
    '[3, "4200000202", "4200000200", "oBuyer1"]'
SUB='{"order_key":{"order_number_type":2,"transaction_id":"4200000201"},"logistics_type":1,"delivery_mode":1,"shipping_list":[{"tracking_no":"ST1","express_company":"STO","item_desc":"cup*1"}]}'
COMB="{\"order_key\":{\"order_number_type\":2,\"transaction_id\":\"4200000200\"},\"sub_orders\":[$SUB,$(edit "$SUB" 'd["order_key"]["transaction_id"] = "4200000202"; d["shipping_list"][0]["tracking_no"] = "ST2"')],\"upload_time\":\"2024-05-20T10:00:00+08:00\",$BUYER}"
variants "$COMB" >"$tmp/cases" <<'CASES'
47001|no sub_orders|del d["sub_orders"]
268485253|a sub-order of another key type|d["sub_orders"][1]["order_key"] = {"order_number_type": 1, "mchid": "1230000109", "out_trade_no": "TRADE_000102"}
10060013|a sub-order twice|d["sub_orders"][1]["order_key"] = d["sub_orders"][0]["order_key"]
10060005|a sub-order with logistics_type 0|d["sub_orders"][1]["logistics_type"] = 0
10060001|a payment that is not its sub-order|d["sub_orders"][1]["order_key"]["transaction_id"] = "4200000101"
10060031|another payer|d["payer"]["openid"] = "oBuyer2"
CASES
while IFS='|' read -r n code name; do
    tcall upload_combined_shipping_info "@$tmp/case.$n"
    is "combined upload, $name: $code" "$(errcode)" "$code"
done <"$tmp/cases"
tcall upload_combined_shipping_info "$COMB"
a=$(errcode)
tcall get_order '{"transaction_id":"4200000202"}'
is "combined upload: 0; each sub-order shipped" "$a $(field '[d["order"]["order_state"], d["order"]["shipping"]["shipping_list"][0]["tracking_no"]]')" '0 [2, "ST2"]'
tcall upload_combined_shipping_info "$(edit "$COMB" 'd["upload_time"] = "2024-05-20T11:00:00+08:00"')"
is "combined upload repeated: 10060023" "$(errcode)" 10060023

# opspecialorder
treg '{"transaction_id":"4200000300","mchid":"1230000109","out_trade_no":"PRESALE_0001","pay_time":1716180000}'
tcall opspecialorder '{"order_id":"4200000300","type":3}'
is "opspecialorder, type 3: 268546000" "$(errcode)" 268546000
tcall opspecialorder '{"order_id":"4200000300","type":1}'
is "opspecialorder, pre-sale without delay_to: 268546001" "$(errcode)" 268546001
tcall opspecialorder '{"order_id":"4200000300","type":1,"delay_to":1717044000}'
is "opspecialorder, pre-sale 10 days after payment: 268546001" "$(errcode)" 268546001
tcall opspecialorder '{"order_id":"NO_SUCH_ORDER","type":2}'
is "opspecialorder of an unknown order: 268546002" "$(errcode)" 268546002
tcall opspecialorder '{"order_id":"4200000101","type":2}'
is "opspecialorder of a shipped payment: 268546002" "$(errcode)" 268546002
tcall opspecialorder '{"type":2}'
is "opspecialorder without order_id: 47001" "$(errcode)" 47001
tcall opspecialorder '{"order_id":"PRESALE_0001","type":1,"delay_to":1717908000}'
a=$(errcode)
TPAY_KEY='p["transaction_id"] == "4200000300"'
is "opspecialorder by out_trade_no, pre-sale 20 days after payment: 0, kept" "$a $(tpay 'p["special"]')" '0 {"delay_to": 1717908000, "type": 1}'

# the app: is_trade_managed, confirmation, the jump path, get_delivery_list
tcall is_trade_managed '{"appid":"wxtestappid"}'
is "is_trade_managed of the caller's appid: true" "$(field '[d["errcode"], d["errmsg"], d["is_trade_managed"]]')" '[0, "ok", true]'
tcall is_trade_management_confirmation_completed '{"appid":"wxtestappid"}'
is "is_trade_management_confirmation_completed: true" "$(field '[d["errcode"], d["completed"]]')" '[0, true]'
tcall is_trade_managed '{}'
is "is_trade_managed without appid: 40097" "$(errcode)" 40097
tcall is_trade_managed '{"appid":"wxnobody"}'
is "is_trade_managed of an unknown appid: 40013" "$(errcode)" 40013
tcall is_trade_managed '{"appid":"wxother"}'
is "is_trade_managed of another account's appid: 61003" "$(errcode)" 61003
tcall set_msg_jump_path '{"path":"pages/order/detail"}'
a=$(errcode)
tcall set_msg_jump_path '{}'
is "set_msg_jump_path: 0; without path: 47001" "$a $(errcode)" "0 47001"
tconf '{"apps":{"wxtestappid":{"is_trade_managed":false,"completed":false}}}'
is "trade/config: the app's settings" "$(field '[d["ok"], d["auto_payments"], d["apps"]["wxtestappid"], d["apps"]["wxother"]["is_trade_managed"]]')" \
    '[true, false, {"completed": false, "is_trade_managed": false, "msg_jump_path": "pages/order/detail"}, true]'
tcall is_trade_managed '{"appid":"wxtestappid"}'
a=$(field 'd["is_trade_managed"]')
tcall is_trade_management_confirmation_completed '{"appid":"wxtestappid"}'
is "an app outside the service: is_trade_managed false, completed false" "$a $(field 'd["completed"]')" "false false"
tcall get_order '{"transaction_id":"4200000101"}'
a=$(errcode)
tcall upload_shipping_info "$TUNI"
is "an app outside the service: get_order and uploads 48001" "$a $(errcode)" "48001 48001"
call POST "$BASE/cgi-bin/express/delivery/open_msg/get_delivery_list?access_token=$T" '{}'
is "get_delivery_list (not subject to 48001): SF and others, count" \
    "$(field '[d["errcode"], d["count"] == len(d["delivery_list"]) >= 5, [x["delivery_id"] for x in d["delivery_list"]][:2], d["delivery_list"][0]["delivery_name"] == "顺丰速运"]')" \
    '[0, true, ["SF", "YD"], true]'
call POST "$BASE/cgi-bin/express/delivery/open_msg/get_delivery_list?access_token=bogus" '{}'
is "get_delivery_list with a bad token: 40001" "$(errcode)" 40001
tconf '{"apps":{"wxtestappid":{"is_trade_managed":true}}}'
tconf '{"apps":{"wxtestappid":{"bogus":true}}}'
is "trade/config with an unknown app setting: HTTP 400" "$STATUS" 400

# records, stats, reset
call GET "$BASE/__stub/requests?path=$TR/notify_confirm_receive"
is "records: trade calls recorded with their errcodes" "$(field '[r["errcode"] for r in d]')" \
    '[47001, 10060029, 10060029, 10060001, 0, 10060030, 10060028, 10060032]'
call GET "$BASE/__stub/stats"
is "stats: trade paths and payments counted" "$(field '[d["by_path"]["/wxa/sec/order/notify_confirm_receive"], d["payments"]]')" '[8, 10]'
call POST "$BASE/__stub/reset" '{"trade":false}'
call GET "$BASE/__stub/stats"
is "reset {trade:false}: payments kept" "$(field 'd["payments"]')" 10
call POST "$BASE/__stub/reset"
call GET "$BASE/__stub/trade/payments"
a=$BODY
call GET "$BASE/__stub/trade/config"
is "plain reset: payments and app settings cleared" "$a $(field '[d["auto_payments"], d["apps"]["wxtestappid"]["msg_jump_path"]]')" "[] [false, null]"

# get_order_list
treg '[{"transaction_id":"4200000401","openid":"oA","pay_time":1000},{"transaction_id":"4200000403","openid":"oB","pay_time":3000},{"transaction_id":"4200000402","openid":"oA","pay_time":2000},{"transaction_id":"4200000404","pay_time":2500,"found_after_lookups":1}]'
tcall get_order_list '{"page_size":2}'
LAST=$(field 'd["last_index"]')
is "get_order_list page 1: by pay_time, has_more; one not yet found left out" \
    "$(field '[d["errcode"], d["has_more"], [o["transaction_id"] for o in d["order_list"]], bool(re.fullmatch("[0-9a-f]{18}", d["last_index"]))]')" \
    '[0, true, ["4200000401", "4200000402"], true]'
tcall get_order_list "{\"page_size\":2,\"last_index\":\"$LAST\"}"
is "get_order_list page 2: the rest" "$(field '[d["has_more"], [o["transaction_id"] for o in d["order_list"]]]')" '[false, ["4200000403"]]'
tcall get_order_list '{"openid":"oA","pay_time_range":{"begin_time":1500}}'
is "get_order_list by openid and pay_time_range" "$(field '[o["transaction_id"] for o in d["order_list"]]')" '["4200000402"]'
tcall get_order_list '{"order_state":2}'
is "get_order_list by order_state: none shipped" "$(field '[d["errcode"], d["order_list"], d["has_more"]]')" '[0, [], false]'
tcall get_order_list '{"last_index":"092dd3cecbc6926301"}'
is "get_order_list with a last_index it did not give: 10060011" "$(errcode)" 10060011
tcall get_order_list '{"page_size":"2"}'
is "get_order_list, page_size a string: 47001" "$(errcode)" 47001

# auto_payments
tconf '{"auto_payments":true}'
tcall upload_shipping_info "$(edit "$TUNI" 'd["order_key"]["transaction_id"] = "4200000999"')"
a=$(errcode)
TPAY_KEY='p["transaction_id"] == "4200000999"'
is "auto_payments: an unregistered payment is found and shipped" "$a $(tpay '[p["auto"], p["order"]["order_state"], p["order"]["openid"]]')" '0 [true, 2, "oBuyer1"]'
call POST "$BASE/__stub/reset"
tcall get_order '{"transaction_id":"4200000999"}'
is "reset: auto_payments off again, the payment gone" "$(errcode)" 10060001

# control input errors
treg '{"openid":"oA"}'
is "trade/payments without a key: HTTP 400" "$STATUS" 400
treg '{"transaction_id":"1","bogus":1}'
is "trade/payments with an unknown field: HTTP 400" "$STATUS" 400
treg '{"mchid":"1230000109"}'
is "trade/payments, mchid without out_trade_no: HTTP 400" "$STATUS" 400
call GET "$BASE/__stub/trade/payments"
is "refused registrations register nothing" "$BODY" "[]"

# ---- concurrency: requests are served in parallel
token
T=$(field 'd["access_token"]')
fault '{"kind":"delay","delay_ms":500,"count":0}'
start=$(date +%s%N)
cpids=()
for i in $(seq 20); do
    "${CURL[@]}" -o "$tmp/par.$i" -d '{}' "$BASE/user-order/orders?access_token=$T" &
    cpids+=($!)
done
wait "${cpids[@]}"
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
call POST "$BASE/__stub/faults/clear"
nok=$(grep -l '"errcode": 0' "$tmp"/par.* | wc -l)
is "20 concurrent delayed uploads all answered" "$nok" 20
check "20 concurrent 500 ms uploads took < 3 s (${elapsed} ms)" [ "$elapsed" -lt 3000 ]

# ---- clients misbehaving
fault '{"kind":"delay","delay_ms":1500}'
"${CURL[@]}" --max-time 0.3 -o /dev/null -d '{}' "$BASE/user-order/orders?access_token=$T" 2>/dev/null
is "client gives up during a delay (curl 28)" "$?" 28
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
printf 'POST /user-order/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"a"' >&3
exec 3>&-
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
printf 'GARBAGE\r\n\r\n' >&3
exec 3>&-
sleep 1.5
token
check "stub survives clients dropping connections" [ -n "$(field 'd.get("access_token")')" ]
check "stub keeps stderr quiet" [ ! -s "$tmp/http.err" ]

# ---- refuses other hosts
python3 "$stub" --host 0.0.0.0 --port 0 --port-file "$tmp/bad.port" >/dev/null 2>"$tmp/bad.err" &
bad=$!
pids+=("$bad")
wait "$bad"
is "--host 0.0.0.0 refused (exit 2)" "$?" 2
check "--host 0.0.0.0: no port file" [ ! -e "$tmp/bad.port" ]

# ============================================================================
echo "# TLS material"
cadir="$tmp/ca"
check "make_test_ca.sh runs" "$here/make_test_ca.sh" "$cadir"
for f in ca.crt ca.key server.crt server.key other-ca.crt; do
    check "make_test_ca.sh made $f" [ -s "$cadir/$f" ]
done
sum1=$(cat "$cadir"/* | cksum)
"$here/make_test_ca.sh" "$cadir"
is "make_test_ca.sh is idempotent" "$(cat "$cadir"/* | cksum)" "$sum1"
verifies() { openssl verify -CAfile "$1" "$cadir/server.crt" >/dev/null 2>&1; }
check "server.crt verifies against ca.crt" verifies "$cadir/ca.crt"
refute "server.crt does not verify against other-ca.crt" verifies "$cadir/other-ca.crt"
check "server.crt has SAN DNS:localhost, IP:127.0.0.1" \
    grep -q "DNS:localhost, IP Address:127.0.0.1" \
    <(openssl x509 -in "$cadir/server.crt" -noout -text)

echo "# HTTPS stub"
if ! start_stub https --tls-cert "$cadir/server.crt" --tls-key "$cadir/server.key" \
        --token-ttl 6 --accounts wxa:sa,wxb:sb; then
    notok "HTTPS stub starts"; cat "$tmp/https.err"
else
    HTTPS_PID=$PID
    BASE="https://127.0.0.1:$PORT"
    ok "HTTPS stub starts (port $PORT)"
    is "stdout announces the https address" "$(head -n1 "$tmp/https.out")" "listening on $BASE"
    CURL_EXTRA=(--cacert "$cadir/ca.crt")
    call POST "$BASE/cgi-bin/stable_token" '{"grant_type":"client_credential","appid":"wxa","secret":"sa"}'
    TA=$(field 'd["access_token"]')
    check "HTTPS with --cacert ca.crt works" [ "$CURL_RC" = 0 -a "${#TA}" -ge 40 ]
    is "HTTPS: expires_in = --token-ttl" "$(field 'd["expires_in"]')" 6
    call POST "https://localhost:$PORT/cgi-bin/stable_token" '{"grant_type":"client_credential","appid":"wxb","secret":"sb"}'
    TB=$(field 'd["access_token"]')
    check "HTTPS via localhost (SAN DNS) works" [ "$CURL_RC" = 0 -a "${#TB}" -ge 40 ]
    isnt "HTTPS: per-appid tokens" "$TA" "$TB"
    call POST "$BASE/cgi-bin/stable_token" "{$ACC}"
    is "--accounts replaces the default account" "$(errcode)" 40125
    upload "$TA"
    is "HTTPS upload ok" "$(errcode)" 0
    conns=$("${CURL[@]}" "${CURL_EXTRA[@]}" -o /dev/null -o /dev/null -w '%{num_connects} ' \
        "$BASE/__stub/stats" "$BASE/__stub/stats")
    is "HTTPS keep-alive" "$conns" "1 0 "

    CURL_EXTRA=(--cacert "$cadir/other-ca.crt")
    call POST "$BASE/cgi-bin/stable_token" '{"grant_type":"client_credential","appid":"wxa","secret":"sa"}'
    is "HTTPS with --cacert other-ca.crt fails (curl 60)" "$CURL_RC" 60
    CURL_EXTRA=()
    call GET "http://127.0.0.1:$PORT/__stub/stats"
    isnt "plain HTTP to the HTTPS port fails" "$CURL_RC:$STATUS" "0:200"
    CURL_EXTRA=(--cacert "$cadir/ca.crt")
    call GET "$BASE/__stub/stats"
    is "HTTPS stub survives failed handshakes" "$STATUS" 200
    is "failed handshakes are not recorded" "$(field 'd["requests"]')" 4

    fault '{"kind":"drop"}'
    upload "$TA"
    check "HTTPS fault drop: curl fails (rc $CURL_RC)" [ "$CURL_RC" != 0 ]
    fault '{"kind":"http500"}'
    upload "$TA"
    is "HTTPS fault http500" "$STATUS" 500
    fault '{"kind":"errcode:45011"}'
    upload "$TA"
    is "HTTPS fault errcode:45011" "$(errcode)" 45011

    # the token was issued at most 6 s ago: once they are over, it is expired
    sleep 6.2
    upload "$TA"
    is "token expires after --token-ttl" "$(errcode)" 40001
    call POST "$BASE/cgi-bin/stable_token" '{"grant_type":"client_credential","appid":"wxa","secret":"sa"}'
    isnt "stable_token after expiry: a new token" "$(field 'd["access_token"]')" "$TA"
    check "HTTPS stub keeps stderr quiet" [ ! -s "$tmp/https.err" ]
    CURL_EXTRA=()
fi

# ============================================================================
echo "# shutdown"
# stop_stub NAME PID: SIGTERM, expect exit 0 and the port file gone.
stop_stub() {
    local name=$1 pid=$2 rc
    kill -TERM "$pid"
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        notok "$name stub exits on SIGTERM"
        kill -KILL "$pid" 2>/dev/null
        return
    fi
    wait "$pid"; rc=$?
    is "$name stub exits 0 on SIGTERM" "$rc" 0
    check "$name stub removed its port file" [ ! -e "$tmp/$name.port" ]
}
stop_stub http "$HTTP_PID"
[ -n "${HTTPS_PID:-}" ] && stop_stub https "$HTTPS_PID"

left=0
for p in "${pids[@]}"; do
    kill -0 "$p" 2>/dev/null && left=$((left + 1))
done
is "no stub left running" "$left" 0

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
