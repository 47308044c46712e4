#!/usr/bin/env python3
"""Stand-in for the WeChat API, for the shopping_upload tests.

Imitates the calls the extension makes (see the specs, uploadShoppingInfo.md and
siblings.md):

    POST /cgi-bin/stable_token             access tokens ("stable token" semantics)
    POST /user-order/orders?access_token=T  uploadShoppingInfo
    POST /user-order/shoppinginfo/verify?access_token=T    verify an upload
    POST /user-order/orders/shippings?access_token=T       shipping information

and WeChat's order shipping management service (order-shipping.md; see "The
order shipping management service" below):

    POST /wxa/sec/order/upload_shipping_info?access_token=T
    POST /wxa/sec/order/upload_combined_shipping_info?access_token=T
    POST /wxa/sec/order/get_order?access_token=T
    POST /wxa/sec/order/get_order_list?access_token=T
    POST /wxa/sec/order/notify_confirm_receive?access_token=T
    POST /wxa/sec/order/set_msg_jump_path?access_token=T
    POST /wxa/sec/order/is_trade_managed?access_token=T
    POST /wxa/sec/order/is_trade_management_confirmation_completed?access_token=T
    POST /wxa/sec/order/opspecialorder?access_token=T
    POST /cgi-bin/express/delivery/open_msg/get_delivery_list?access_token=T

plus a control API under /__stub/ so that tests written in any language (Perl
TAP, shell) can inject faults and inspect what the client sent.  Python 3
standard library only.

Command line
============

    python3 test/wechat_stub.py [--host 127.0.0.1] [--port 0] [--port-file FILE]
                                [--tls-cert CRT --tls-key KEY]
                                [--accounts appid:secret,appid2:secret2]
                                [--token-ttl 7200] [--log FILE] [--seed N]
                                [--auto-payments] [--verbose]

* Listens on 127.0.0.1 only (any other --host is refused).  --port 0 (the
  default) picks a free port.  Once the socket is listening, the port number
  is written to --port-file (atomically: temp file + rename; a test waits for
  the file to appear) and "listening on http://127.0.0.1:PORT" (https with
  TLS) is printed on stdout.  The port file is removed on a clean exit.
* --tls-cert/--tls-key: serve HTTPS with that certificate (test/make_test_ca.sh
  makes one for localhost/127.0.0.1).
* --accounts: the appid:secret pairs that stable_token accepts (default
  "wxtestappid:testsecret").  --token-ttl: token lifetime in seconds.
* --log FILE: also append every recorded request to FILE, one JSON object a
  line, flushed at once.
* --seed N: seed the random generator that drives "fraction" faults (for
  reproducible runs).  --verbose: log each request and each connection error
  to stderr (quiet by default).
* --auto-payments: the order shipping management service finds every
  payment, registered or not (see there; default: only registered ones).
* SIGTERM / SIGINT: stop serving and exit with status 0.

HTTP/1.1 with keep-alive; every answer carries Content-Length.  Request bodies
may use Content-Length or chunked transfer coding; "Expect: 100-continue" is
honoured.

The imitated API
================

POST /cgi-bin/stable_token  body {"grant_type":"client_credential",
                                  "appid":..., "secret":..., "force_refresh":bool}
    body not a JSON object        -> {"errcode":47001,"errmsg":"data format error rid: R"}
    grant_type not client_credential
                                  -> {"errcode":40002,"errmsg":"invalid grant_type rid: R"}
    unknown appid or wrong secret -> {"errcode":40125,"errmsg":"invalid appsecret rid: R"}
    otherwise                     -> {"access_token":"<token>","expires_in":SECONDS}
    While the appid's current token is valid and force_refresh is not true,
    the SAME token is returned with its remaining lifetime (rounded up).
    force_refresh:true, or an expired/invalidated token, issues a new token;
    the previous token of that appid stops working at once.  Tokens are
    128+ characters of [A-Za-z0-9_-] (URL-safe, no escaping needed).

POST /user-order/orders?access_token=T
    T not a currently valid token of some appid
        -> {"errcode":40001,"errmsg":"invalid credential, access_token is invalid
            or not latest rid: R"}
    body not a JSON object (or not UTF-8)
        -> {"errcode":47001,"errmsg":"data format error rid: R"}
    otherwise -> {"errcode":0,"errmsg":"ok"}
    The payload itself is not validated: the extension's validator owns that.
    An accepted upload (errcode 0 answered) whose order_key names an order
    (see "Orders" below) is remembered; one whose order_key names none is
    answered the same and not remembered.

POST /user-order/shoppinginfo/verify?access_token=T
        body {"order_key": {...}, "payer": {"openid": "..."}}
    T not valid -> 40001, body not a JSON object (or not UTF-8) -> 47001, as
    for uploads.
    order_key naming no order, or payer.openid not a string of 1..128 bytes
        -> {"errcode":268435461,"errmsg":"param error: <what> rid: R"}
           (every malformed value: the stub's choice; the upload's specific
           errcodes are used by shippings, not here)
    otherwise -> {"errcode":0,"errmsg":"ok","verify_result":V}, V being
        - the order's override, if one is set (POST /__stub/verify_result),
          whatever the order's state or the openid;
        - else "linked" (the linked value) if the stub accepted an upload of
          that order and the latest kept upload has that payer.openid;
        - else "unlinked" (the unlinked value): never uploaded, or another
          openid.  An unknown order is errcode 0 with another verify_result,
          not an errcode: the stub's choice (WeChat does not publish its
          verify_result values, nor an errcode for this; clients keep
          verify_result verbatim).  The default strings "linked" and
          "unlinked" are the stub's own, not WeChat's.

POST /user-order/orders/shippings?access_token=T
        body {"order_key": {...}, "payer": {"openid": "..."},
              "upload_time": "2024-05-20T13:29:35+08:00", "delivery_mode": 1|2,
              "shipping_list": [{"tracking_no": "...", "express_company": "...",
                                 "item_list": [{"merchant_item_id": "..."}],
                                 "contact": {"consignor_contact": "...",
                                             "receiver_contact": "..."}}]}
    T not valid -> 40001, body not a JSON object (or not UTF-8) -> 47001.
    Then the body is checked in this order; the first violation is answered
    {"errcode":E,"errmsg":"<errmsg>: <what> rid: R"}:
      order_key (the upload's errcodes): missing 268485194;
        order_number_type missing or an integer other than 1, 2: 268485194;
        type 1: mchid missing/empty 268485196, out_trade_no missing/empty
        268485197; type 2: transaction_id missing/empty 268485195; a wrong
        JSON type, mchid/transaction_id over 32 bytes, out_trade_no not 6..32
        characters of 0-9 A-Z a-z _ - * |: 268435461
      payer / payer.openid missing or empty: 268485192; a wrong type or over
        128 bytes: 268435461
      upload_time missing or empty: 268485214; not a string: 268435461; not
        RFC 3339 (YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)): 268485216
      delivery_mode missing, or not the integer 1 or 2: 268435461
      shipping_list missing or not an array: 268435461; delivery_mode 1
        (unified) with other than exactly 1 shipment: 268485228; 0 or over 10
        shipments: 268435461
      each shipment: not an object 268435461; tracking_no missing/empty
        268485226, a wrong type or over 128 bytes 268435461; express_company
        not a string of 1..128 bytes 268435461; item_list (optional for
        delivery_mode 1, required and non-empty for 2) not an array of
        objects with a merchant_item_id of 1..64 bytes 268435461; contact not
        an object, or consignor_contact/receiver_contact not strings 268435461
        (the masked-phone form is not checked)
      the order: no upload of it was accepted -> 268435461 "param error:
        order not uploaded ..." (the stub's choice: the specs give no errcode
        for this); payer.openid not the openid of the order's latest kept
        upload -> 268435461
      delivery_mode 2: a merchant_item_id that is not an item of the order's
        latest kept upload (the merchant_item_id values of its
        order_list[].item_list[]) -> 268435461
    otherwise -> {"errcode":0,"errmsg":"ok"}, and the body becomes the
    order's latest shipping, unless it is stale (see "Orders").
    The errmsg texts before ":" are the stub's own, except "param error".

Any other method or path -> HTTP 404 with {"error":"not found","method":M,"path":P}
(a JSON object without errcode).

Every non-zero errcode's errmsg ends with " rid: R", R being WeChat-like random
hex in three dash-separated groups, e.g. "rid: 6478a1b2-1c2d3e4f-5a6b7c8d".
API answers are HTTP 200 with Content-Type application/json unless a fault
says otherwise.

Orders
======

The stub remembers every order it accepted an upload of, by the order's
identity taken from order_key: ("mchid", mchid, out_trade_no) for
order_number_type 1, ("tx", transaction_id) for 2 (so a type 1 and a type 2
upload of one payment are two orders to the stub).  An order_key names an
order when it passes the shippings checks of order_key above; an upload whose
order_key names none is answered errcode 0 (uploads are not validated) and not
remembered.  Per order it keeps the latest upload body and the latest shipping
body, each with its upload_time, the upload's payer.openid and order_key, and
how many were accepted.

A newer upload_time replaces an earlier upload.  A body answered errcode 0
whose upload_time is OLDER than the kept one's, or the same with another body,
is "stale": it is still answered {"errcode":0,"errmsg":"ok"} (as an upsert
that loses), but it is not kept; it counts in the order's uploads_stale /
shippings_stale and in /__stub/stats "stale".  The same upload_time with the
same body (a retry) is accepted and changes nothing.  A test that a client
sends a NEWER upload_time on change checks that the order's kept body is the
new one and that nothing was stale.  For uploads (not validated), a missing or
non-RFC 3339 upload_time on either side cannot be compared: the new upload is
kept.  Shippings always carry a valid upload_time.

Orders survive /__stub/reset unless its body has "orders": true.

The order shipping management service
======================================

WeChat's /wxa/sec/order/... calls (and the logistics service's
get_delivery_list), as the spec order-shipping.md gives them, the current
pages' figures where the sources disagree (at most 15 parcels, order_state
1..6).  Every one is POST ?access_token=T with a JSON object body and is
answered {"errcode":0,"errmsg":"ok", ...the call's fields} or
{"errcode":E,"errmsg":"<errmsg>: <what> rid: R"}.  For each, in this order:
    T not a currently valid token -> 40001 (as for the calls above)
    the token's appid not in the service (POST /__stub/trade/config), for
      every call but the two appid checks (is_trade_managed and
      is_trade_management_confirmation_completed) and get_delivery_list
      -> 48001 "api unauthorized"
    body not a JSON object (or not UTF-8, or empty) -> 47001
    then the body's checks, first violation answered.  Where the spec gives
    no errcode (a value of a wrong JSON type, a required one missing, a
    shipping_list that is not an array), 47001 "data format error" (the
    stub's choice, the extension's validator's too).

Payments.  The stub keeps the payments it was told exist (POST
/__stub/trade/payments); a payment has a transaction_id and/or a mchid +
out_trade_no (+ sub_mchid), and is found by either form it has: order_key
type 2 / transaction_id by its transaction_id; order_key type 1 /
merchant_id + merchant_trade_no by (mchid or sub_mchid, out_trade_no).  A
payment registered with an appid is found only with that appid's tokens
(default: any appid's).  A key naming no payment -> 10060001 "payment not
found", unless payments auto-exist (--auto-payments, or POST
/__stub/trade/config {"auto_payments": true}; default off): then such a key
creates a payment on the spot (known by that key only, of the caller's
appid, payer unknown).  Each call naming a payment is a lookup; a payment
registered with found_after_lookups N answers 10060001 to its first N
lookups, one with found_after_seconds S to every lookup in its first S
seconds ("not found right after payment, then found"); get_order_list does
not list it meanwhile (and is no lookup).  A faulted request is no lookup.
A payment whose openid is null (not registered) takes the payer.openid of
its first accepted upload.

POST /wxa/sec/order/upload_shipping_info
        body {"order_key": {...}, "logistics_type": 1..4, "delivery_mode": 1|2,
              "is_all_delivered": bool, "shipping_list": [{"tracking_no": "...",
              "express_company": "SF", "item_desc": "...", "contact":
              {"consignor_contact": "...", "receiver_contact": "..."}}],
              "upload_time": "RFC 3339", "payer": {"openid": "..."}}
    Checked in this order:
      order_key as for shippings above (missing or a bad order_number_type
        268485194; empty transaction_id 268485195, mchid 268485196,
        out_trade_no 268485197), but 47001 where shippings say 268435461
      logistics_type not the integer 1, 2, 3 or 4 (or missing): 10060005
      delivery_mode not the integer 1 or 2 (or missing): 268485224
      delivery_mode 2 with logistics_type other than 1: 10060006
      is_all_delivered missing in mode 2: 10060007; not a boolean: 47001
        (ignored in mode 1)
      shipping_list missing, not an array or empty: 47001; over 15 parcels:
        10060024; mode 1 with more than 1: 268485228
      each parcel: not an object 47001; tracking_no (required for
        logistics_type 1: missing/empty 268485226) over 128 bytes 10060026;
        express_company (required for 1: 268485227) over 128 bytes 10060025;
        item_desc missing/empty 10060008, over 120 characters 10060009;
        contact not an object, its phones not strings or over 1024 bytes,
        or a phone whose last 4 digits are not in clear (the extension's
        rule: "189****1234" yes, "18912345***" no): 47001; express_company
        "SF" without a non-empty consignor_contact or receiver_contact:
        47001.  express_company is not checked against get_delivery_list.
      upload_time missing/empty 268485214, not a string 47001, not RFC 3339
        268485216
      payer / payer.openid missing or empty 268485192; a wrong type or over
        128 bytes 47001
      the payment: none (or not yet found) 10060001; another payer than the
        payment's openid 10060031; order_state 5 (refunded) 10060004;
        order_state 3, 4 or 6 (receipt confirmed: shipping can no longer
        change) 10060002
      unchanged: the shipping the upload would leave is the payment's
        (delivery_mode, logistics_type, is_all_delivered, parcels; not the
        upload_time) -> 10060023
      upload_time earlier than the last accepted upload's -> 268485216 (an
        update must carry a later time; the same instant is let through)
      the one re-ship: see below -> 10060003
    otherwise -> {"errcode":0,"errmsg":"ok"}.
    The first accepted upload ships the payment (order_state 1 -> 2).  A
    unified upload (mode 1), or a split one (mode 2) with is_all_delivered
    true, finishes the shipping; while a split shipping is not finished, a
    further split express upload is accepted and merged: a parcel with the
    (express_company, tracking_no) of a kept one replaces it, others are
    appended (at most 15 in all: 10060024).  A re-ship is an accepted upload
    once the shipping is finished, or one that changes delivery_mode or
    logistics_type; it replaces the whole shipping; a payment has one
    (10060003 for a second).  finish_shipping_count: 0 not finished, 1
    finished, 2 finished with the re-ship used.  When the shipping gets
    finished, shipped_time becomes the upload_time (seconds) and
    estimated_settlement_time 10 days later (the stub's figure).

POST /wxa/sec/order/upload_combined_shipping_info
        body {"order_key": {...}, "sub_orders": [{"order_key": {...},
              "logistics_type", "delivery_mode", "is_all_delivered",
              "shipping_list"}, ...], "upload_time": "...", "payer": {...}}
    order_key as above; sub_orders missing, not an array or empty 47001 (the
    stub's choice); each: not an object 47001, order_key as above (the
    detail names sub_orders[i]), another order_number_type than the main
    key's 268485253, a sub-order named twice 10060013, then the delivery
    fields as above; upload_time, payer.  Then the main key must name a
    payment (10060001) of that payer (10060031), each sub-order key one of
    its sub_orders (registered with it; 10060001 otherwise), and each
    sub-order's upload passes the rules above; an unchanged sub-order is
    skipped, all unchanged -> 10060023; any other refusal refuses the
    whole call (nothing applied).

POST /wxa/sec/order/get_order
        body {"transaction_id": "..."} or {"merchant_id": "...",
             "merchant_trade_no": "...", "sub_merchant_id": "..."}
    a key field not a string 47001; neither form 10060014 (transaction_id
    wins when both are given); no such payment 10060001 (also when a
    sub_merchant_id is given and is not the payment's sub_mchid)
    -> {"errcode":0,"errmsg":"ok","order":{"transaction_id","merchant_id",
        "sub_merchant_id","merchant_trade_no","description","paid_amount",
        "openid","trade_create_time","pay_time","order_state","in_complaint",
        "shipping"}}
    description: the registered one, else the parcels' item_desc joined by
    ";" (over 120 characters: 117 and "...").  openid "" while unknown.
    shipping: {} before the first accepted upload, else {"delivery_mode",
    "logistics_type", "finish_shipping", "finish_shipping_count",
    "goods_desc": "", "shipping_list": [{"tracking_no", "express_company",
    "goods_desc" (the item_desc), "upload_time" (timestamp of the upload that
    brought the parcel), "contact": {"consignor_contact",
    "receiver_contact"}}]} ("" for what was not sent).

POST /wxa/sec/order/get_order_list
        body {"pay_time_range": {"begin_time": N, "end_time": N},
              "order_state": N, "openid": "...", "last_index": "...",
              "page_size": N}, every field optional
    a wrong type 47001; order_state not 1..6 or page_size < 1 10060014;
    last_index not one this stub gave 10060011 ("" = the first page)
    -> {"errcode":0,"errmsg":"ok","last_index":"<18 hex digits>",
        "has_more":bool,"order_list":[order as get_order's, ...]}
    The caller's app's payments found now, by pay_time then registration,
    pay_time in [begin_time (0), end_time (2^32-1)], page_size default 100.

POST /wxa/sec/order/notify_confirm_receive
        body the get_order key + {"received_time": N}
    key as get_order; received_time missing or not an integer 47001; no
    such payment 10060001; a reminder sent already 10060030; not shipped
    (order_state not 2, or the shipping not finished) 10060028;
    logistics_type not 1 10060032; received_time not a Unix time in seconds
    (> 10 digits, e.g. milliseconds) or before shipped_time 10060029
    -> {"errcode":0,"errmsg":"ok"}; once per payment.

POST /wxa/sec/order/set_msg_jump_path   body {"path": "pages/..."}
    path missing or not a string 47001 -> 0; kept per appid (trade/config).

POST /wxa/sec/order/is_trade_managed    body {"appid": "..."}
POST /wxa/sec/order/is_trade_management_confirmation_completed   same body
    appid missing or empty 40097; not an appid of --accounts 40013; another
    account's appid than the token's 61003 (no third-party authority here)
    -> {"errcode":0,"errmsg":"ok","is_trade_managed":bool} /
       {"errcode":0,"errmsg":"ok","completed":bool}
    (per appid, default true: POST /__stub/trade/config).  WeChat's 48001
    for an app without the service (a forum report) is a fault away.

POST /wxa/sec/order/opspecialorder
        body {"order_id": "...", "type": 1|2, "delay_to": N}
    order_id missing/empty or not a string 47001; type not 1 or 2
    268546000; type 1 without an integer delay_to 268546001; order_id not
    the transaction_id or out_trade_no of a payment found now, or one
    already shipped or not in order_state 1: 268546002; type 1 with delay_to
    not 15..330 days after pay_time 268546001 -> 0, kept as the payment's
    "special".  (No payment is created here when payments auto-exist.)

POST /cgi-bin/express/delivery/open_msg/get_delivery_list   body {}
    -> {"errcode":0,"errmsg":"ok","delivery_list":[{"delivery_id":"SF",
        "delivery_name":"顺丰速运"}, YD, YTO, ZTO, STO, EMS],"count":6}
    (a fixed sample; WeChat's list has ~1,500).  Not subject to 48001.

The trade state (payments, app settings, auto_payments back to the command
line's) is cleared by /__stub/reset unless its body has "trade": false.

Recording
=========

Every request to a non-control path (stable_token, uploads, verify,
shippings, the /wxa/sec/order calls and get_delivery_list, rejected ones,
404s) is recorded before it is answered, so a test
that has its answer (or saw the connection drop) always finds the record.  A record:

    {"seq": 1,                       # 1, 2, ... in arrival order; restarts at reset
     "time": 1716190175.123,         # unix time of arrival
     "done": 1716190175.125,         # unix time the answer was ready (after
                                     # any fault's delay), just before it is sent
     "method": "POST",
     "path": "/user-order/orders",   # without the query
     "target": "/user-order/orders?access_token=...",   # as sent
     "query": {"access_token": "..."},  # a repeated key gives a list of strings
     "headers": {"content-type": "application/json", ...},  # names lowercased;
                                                            # repeats joined by ", "
     "body": "{...}",                # raw body as text (UTF-8, invalid bytes
                                     # replaced by U+FFFD)
     "fault": "errcode:45011",       # the fault kind applied, or null
     "errcode": 45011,               # errcode answered, null if none
     "answer": {"status": 200, "json": {...}}      # JSON answers
            or {"status": 500, "text": "<html>..."}  # other answers (a body
                                                     # that is not UTF-8, from
                                                     # "badutf8", with invalid
                                                     # bytes as U+FFFD)
            or null                                  # fault "drop"
    }

Control API (JSON in, JSON out; never recorded)
===============================================

GET  /__stub/requests[?path=P][&since=SEQ]
        The records, in seq order; only those for path P / with seq > SEQ.
GET  /__stub/stats
        {"requests": N,                         # records since the last reset
         "by_path": {"/user-order/orders": N, ...},
         "by_errcode": {"0": N, "40001": N, ...},   # errcodes answered
         "by_status": {"200": N, "500": N, "drop": N},
         "faults_applied": {"errcode:-1": N, ...},
         "tokens_issued": N,                    # new tokens handed out
         "force_refresh": N,                    # accepted stable_token calls
                                                # with force_refresh:true
         "faults_pending": N,
         "stale": {"/user-order/orders": N,     # stale bodies (see "Orders"),
                   "/user-order/orders/shippings": N},  # answered 0, not kept
         "orders": N,                           # orders remembered (not
                                                # cleared by a plain reset)
         "payments": N}                         # payments of the order
                                                # shipping management service
        by_path counts every path, the verify, shippings and trade ones included.
POST /__stub/reset          body optional: {"tokens": true, "orders": true,
                                            "trade": false}
        Clears records, pending faults, all counters (seq restarts at 1) and
        the verify_result settings (the defaults "linked" and "unlinked"
        again, no override).  Tokens survive unless "tokens" is true; the
        remembered orders (with their kept bodies and their per-order counts)
        survive unless "orders" is true.  The order shipping management
        service's state (payments, app settings, auto_payments) is cleared
        unless "trade" is false.  -> {"ok": true}
POST /__stub/fault          body {"kind": K, "count": N, "fraction": F,
                                  "path": P, "delay_ms": MS}
        Queues a fault for requests to path P (default "/user-order/orders";
        "/cgi-bin/stable_token", "/user-order/shoppinginfo/verify",
        "/user-order/orders/shippings", "/wxa/sec/order/get_order" or any
        other path, matched exactly; "*" = every non-control path).  A
        faulted request changes no order and no payment and is no lookup of
        one (except under "delay", answered normally).
        Kinds K:
          "errcode:-1"   answer {"errcode":-1,"errmsg":"system error rid: R"}
          "errcode:NNN"  any integer, answered with a plausible errmsg + rid
                         (40001, 40014, 42001 also invalidate the request's
                         access_token, so the client's next stable_token call
                         without force_refresh gets a NEW token)
          "http500"      HTTP 500 with an HTML body
          "http502"      HTTP 502 with an HTML body
          "notjson"      HTTP 200, Content-Type text/html, body "<html>oops</html>"
          "delay"        sleep delay_ms (default 1000), then answer normally
          "drop"         close the connection without any response
          "badutf8"      HTTP 200, application/json, a body that is not UTF-8:
                         the raw bytes {"errcode":-1,"errmsg":"bad \xff\xfe bytes"}
          "badutf8:NNN"  errcode NNN with an errmsg holding the raw byte 0xff:
                         {"errcode":NNN,"errmsg":"<plausible errmsg> \xff rid: R"}
                         (40001, 40014, 42001 invalidate the token as above)
          "long_errmsg:N" errcode -1 with an errmsg of N (1..50000000) characters
                         ("x" repeated) and a rid: an errmsg no client should
                         keep whole
          "long_token"   (meant for /cgi-bin/stable_token) HTTP 200
          "long_token:N" {"access_token":"<N characters>","expires_in":7200}:
                         N (default 2000, 1..1000000) URL-safe characters, a
                         token that is never valid
          "expires_in:J" (meant for /cgi-bin/stable_token) answers the request
                         as usual, but a token's expires_in is the JSON text J
                         written as given: "expires_in:\"7200\"" (a string),
                         "expires_in:-5", "expires_in:1e30".  J must be JSON.
                         The token is issued and valid as usual; a refused
                         request gets its usual errcode answer (on another
                         path: a token "stub_not_a_token", never valid)
          "no_token"     (meant for /cgi-bin/stable_token) {"errcode":0} and
                         nothing else: no access_token
          "expire_tokens"  not queued: invalidates every token at once
                           -> {"ok": true, "expired": N}
        appid (optional): the fault applies only to requests of that appid
        (stable_token's body names it; another call's access_token was
        issued to it).
        count: the fault applies to the next N matching requests (default 1;
        0 = every matching request until cleared).  fraction (0..1): instead
        of a count, applies to that random fraction of matching requests,
        until cleared.  delay_ms is honoured by every kind (the stub sleeps
        that long before answering / dropping), which allows e.g. a slow 500.
        Faults queue in order: for each request the queue is walked from the
        oldest entry; the first fault whose path matches and that fires
        (count faults always fire, fraction faults fire with probability F)
        is applied, and its count is used up.
        -> {"ok": true, "fault": {"id":..,"kind":..,"path":..,"count":..,
                                   "fraction":..,"delay_ms":..,"applied":0}}
        Invalid input -> HTTP 400 {"error": "..."}.
GET  /__stub/faults         the pending faults (same shape as above)
POST /__stub/faults/clear   drops every pending fault -> {"ok": true, "cleared": N}
GET  /__stub/tokens         {"APPID": {"access_token": T, "expires_in": S}, ...}
                            the currently valid token of each appid
GET  /__stub/orders         the remembered orders, in the order of their first
                            accepted upload:
        [{"id": ["mchid", MCHID, OUT_TRADE_NO] or ["tx", TRANSACTION_ID],
          "order_key": {...},           # of the latest kept upload
          "openid": "...",              # its payer.openid (null if none)
          "upload_time": "...",         # its upload_time (null if none)
          "upload": {...},              # its body, as JSON
          "uploads": N,                 # uploads answered 0, stale ones too
          "uploads_stale": N,           # of which not kept
          "shipping_time": "...",       # of the latest kept shippings body,
          "shipping": {...},            #   null before the first one
          "shippings": N,               # shippings answered 0, stale ones too
          "shippings_stale": N}, ...]
GET  /__stub/verify_result  {"linked": V, "unlinked": V,
                             "overrides": [{"id": [...], "verify_result": V}, ...]}
POST /__stub/verify_result  body, any of:
        {"linked": "...", "unlinked": "..."}    the verify_result answered for
                                                an accepted order with its payer
                                                / for any other (strings)
        {"order_key": {...}, "verify_result": "..."}
                                                an override: verify of that
                                                order (it need not be uploaded)
                                                answers this string, whatever
                                                the openid; "verify_result":
                                                null removes the override
        -> the settings as GET, plus "ok": true.  An order_key naming no order
        (the rules above), a value of the wrong type, or an unknown field ->
        HTTP 400 {"error": "..."}.  /__stub/reset restores the defaults.

GET  /__stub/trade/payments
        Every payment, in registration order: [{"transaction_id", "mchid",
        "out_trade_no", "sub_mchid", "appid", "auto" (created by
        auto_payments), "order" (what get_order answers now),
        "found" (now), "found_after_lookups" (lookups still refused),
        "found_after_seconds" (seconds still to wait), "lookups",
        "lookups_refused", "shipped", "finish_shipping", "is_all_delivered",
        "uploads_accepted", "uploads_refused" (refused once found:
        10060031, 10060002, 10060004, 10060023, 268485216, 10060003,
        10060024), "reship_used", "last_upload_time", "last_upload" (the
        accepted body; a sub-order's for combined), "shipped_time",
        "estimated_settlement_time", "confirm_receive_time",
        "confirm_receive_method", "settlement_time",
        "receipt_reminder_sent", "received_time", "special" ({"type",
        "delay_to"} or null), "parent" / "sub_orders" (keys
        {"transaction_id","mchid","out_trade_no"} of combined payments)}, ...]
POST /__stub/trade/payments body {"payments": [P, ...]}, or [P, ...], or P
        Registers payments; P = {KEY, "openid": "o..." (null: the first
        upload's payer), "appid": "wx..." (null: any app), "paid_amount": N
        (fen, default 100), "description": "..." (default: from the
        parcels), "pay_time": N, "trade_create_time": N (default now),
        "order_state": 1..6 (default 1), "in_complaint": bool (false),
        "found_after_lookups": N, "found_after_seconds": S, "sub_orders":
        [P, ...] (a combined payment's; they inherit appid and openid)}.
        KEY: "transaction_id": "...", and/or "mchid" + "out_trade_no" (+
        "sub_mchid"), or "order_key": {order_number_type 1|2 ...}.  A
        payment that one of its keys names is replaced.  -> {"ok": true,
        "payments": [as GET, ...]}.  Invalid input -> HTTP 400.
POST /__stub/trade/state    body {KEY, field: value, ...}
        Sets the WeChat state of the payment KEY names: "order_state" 1..6,
        "in_complaint", "openid", "paid_amount", "description", "pay_time",
        "trade_create_time", "shipped_time", "estimated_settlement_time",
        "confirm_receive_time", "confirm_receive_method" (1|2),
        "settlement_time", "found_after_lookups", "found_after_seconds".
        order_state 3, 4 or 6 also sets confirm_receive_time (now) and
        confirm_receive_method (1) if unset; 4 settlement_time (now) if
        unset.  E.g. settled: {"transaction_id":"42..","order_state":4};
        refunded: 5; dispute: {"in_complaint":true}.  -> {"ok": true,
        "payment": {as GET}}; no such payment, or bad input -> HTTP 400.
GET  /__stub/trade/config   {"auto_payments": bool, "apps": {APPID:
        {"is_trade_managed": bool, "completed": bool, "msg_jump_path":
        "..." or null}, ...}} (every --accounts appid, defaults true/true)
POST /__stub/trade/config   body {"auto_payments": bool, "apps": {APPID:
        {"is_trade_managed": bool, "completed": bool}}}, parts optional
        -> the settings as GET, plus "ok": true.
POST /__stub/trade/event    body {"event": E, KEY, "stage": "shipping" |
        "settlement", "msg": "...", "appid": "...", "fields": {...}}
        The JSON of a push event of the payment KEY names, for a test to
        feed to the merchant's side (the stub sends nothing):
        {"ToUserName": "gh_<12 hex digits of the SHA-1 of the appid: the
        body's, the payment's, else the first of --accounts>",
        "FromUserName": "<system openid>", "CreateTime": now,
        "MsgType": "event", "Event": E, ...}:
          trade_manage_remind_access_api (no KEY needed): "msg"
          trade_manage_remind_shipping: "transaction_id", "merchant_id",
            "sub_merchant_id", "merchant_trade_no", "pay_time", "msg"
          trade_manage_order_settlement: the keys, "pay_time",
            "shipped_time"; stage "shipping" (default while the payment has
            no settlement_time): "estimated_settlement_time"; "settlement":
            "confirm_receive_method", "confirm_receive_time",
            "settlement_time" (the payment's, else 1 / now)
        "fields" are merged last (to fake any value).

Unknown /__stub/ paths answer 404 {"error": ...}.

Shell example:
    port=$(cat "$dir/stub.port")
    curl -s -d '{"kind":"errcode:45011","count":2}' \\
         http://127.0.0.1:$port/__stub/fault
"""

import argparse
import decimal
import hashlib
import http.server
import json
import math
import os
import random
import re
import secrets
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse

UPLOAD_PATH = "/user-order/orders"
TOKEN_PATH = "/cgi-bin/stable_token"
VERIFY_PATH = "/user-order/shoppinginfo/verify"
SHIPPINGS_PATH = "/user-order/orders/shippings"
CONTROL_PREFIX = "/__stub/"
# the order shipping management service (docs/order-shipping.md)
TRADE_PREFIX = "/wxa/sec/order/"
TRADE_UPLOAD_PATH = TRADE_PREFIX + "upload_shipping_info"
TRADE_COMBINED_PATH = TRADE_PREFIX + "upload_combined_shipping_info"
TRADE_GET_ORDER_PATH = TRADE_PREFIX + "get_order"
TRADE_ORDER_LIST_PATH = TRADE_PREFIX + "get_order_list"
TRADE_NOTIFY_PATH = TRADE_PREFIX + "notify_confirm_receive"
TRADE_JUMP_PATH = TRADE_PREFIX + "set_msg_jump_path"
TRADE_MANAGED_PATH = TRADE_PREFIX + "is_trade_managed"
TRADE_COMPLETED_PATH = TRADE_PREFIX + "is_trade_management_confirmation_completed"
TRADE_SPECIAL_PATH = TRADE_PREFIX + "opspecialorder"
DELIVERY_LIST_PATH = "/cgi-bin/express/delivery/open_msg/get_delivery_list"
# each call's answer: (TradeState, appid, body dict) -> answer dict, or Refusal
TRADE_CALLS = {
    TRADE_UPLOAD_PATH: lambda t, appid, d: t.upload(appid, d),
    TRADE_COMBINED_PATH: lambda t, appid, d: t.upload_combined(appid, d),
    TRADE_GET_ORDER_PATH: lambda t, appid, d: t.get_order(appid, d),
    TRADE_ORDER_LIST_PATH: lambda t, appid, d: t.get_order_list(appid, d),
    TRADE_NOTIFY_PATH: lambda t, appid, d: t.notify(appid, d),
    TRADE_JUMP_PATH: lambda t, appid, d: t.set_jump_path(appid, d),
    TRADE_MANAGED_PATH: lambda t, appid, d: t.app_flag(appid, d, "is_trade_managed",
                                                       "is_trade_managed"),
    TRADE_COMPLETED_PATH: lambda t, appid, d: t.app_flag(appid, d, "completed", "completed"),
    TRADE_SPECIAL_PATH: lambda t, appid, d: t.special(appid, d),
    DELIVERY_LIST_PATH: lambda t, appid, d: t.delivery_list(),
}
TRADE_PATHS = tuple(TRADE_CALLS)
# the calls an app outside the service is answered 48001 for
TRADE_MANAGED_ONLY = (TRADE_UPLOAD_PATH, TRADE_COMBINED_PATH, TRADE_GET_ORDER_PATH,
                      TRADE_ORDER_LIST_PATH, TRADE_NOTIFY_PATH, TRADE_JUMP_PATH,
                      TRADE_SPECIAL_PATH)

MAX_BODY = 16 * 1024 * 1024     # larger bodies are refused with HTTP 413
CONNECTION_TIMEOUT = 300        # seconds a keep-alive connection may idle
HANDSHAKE_TIMEOUT = 10          # seconds for a TLS handshake

# errmsg for errcodes the stub may answer (the rid is appended).
ERRMSGS = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40013: "invalid appid",
    40097: "invalid args",
    40014: "invalid access_token",
    40125: "invalid appsecret",
    41002: "appid missing",
    42001: "access_token expired",
    44002: "empty post data",
    45002: "content size out of limit",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit  mustslower  retry next minute",
    47001: "data format error",
    48001: "api unauthorized",
    61003: "component is not authorized by this account",
    61007: "api is unauthorized to component",
    268435461: "param error",
}
# Errcodes that, answered by a fault, also invalidate the request's token.
TOKEN_KILLING_ERRCODES = {40001, 40014, 42001}

MAX_LONG_ERRMSG = 50000000
SIMPLE_FAULTS = {"http500", "http502", "notjson", "delay", "drop",
                 "badutf8", "long_token", "no_token"}
DEFAULT_DELAY_MS = 1000
DEFAULT_LONG_TOKEN = 2000
MAX_LONG_TOKEN = 1000000
# the raw answer of fault "badutf8": not UTF-8
BADUTF8_BODY = b'{"errcode":-1,"errmsg":"bad \xff\xfe bytes"}'

HTML_500 = ("<html><head><title>500 Internal Server Error</title></head>"
            "<body><h1>500 Internal Server Error</h1></body></html>")
HTML_502 = ("<html><head><title>502 Bad Gateway</title></head>"
            "<body><h1>502 Bad Gateway</h1></body></html>")

# verify_result answered by default (the stub's own strings: WeChat does not
# publish its values).
DEFAULT_VERIFY_LINKED = "linked"
DEFAULT_VERIFY_UNLINKED = "unlinked"

# Limits of the spec (uploadShoppingInfo.md, siblings.md) that the stub checks
# in the bodies of verify and shippings.
KEY_ID_MAX = 32             # transaction_id, mchid: bytes
OUT_TRADE_NO_MIN = 6        # characters
OUT_TRADE_NO_MAX = 32       # characters
OPENID_MAX = 128            # bytes
SHIPPING_LIST_MAX = 10      # shipments
TRACKING_NO_MAX = 128       # bytes
EXPRESS_COMPANY_MAX = 128   # bytes
ITEM_ID_MAX = 64            # merchant_item_id: bytes
UNIFIED_DELIVERY = 1
SPLIT_DELIVERY = 2

# errcodes of the upload's table that verify/shippings bodies may earn, and
# the errmsg the stub gives them (its own wording; a detail and the rid follow)
ERR_PARAM = 268435461
ERR_PAYER_OPENID_MISSING = 268485192
ERR_ORDER_KEY_MISSING = 268485194
ERR_TRANSACTION_ID_MISSING = 268485195
ERR_MCHID_MISSING = 268485196
ERR_OUT_TRADE_NO_MISSING = 268485197
ERR_UPLOAD_TIME_MISSING = 268485214
ERR_UPLOAD_TIME_FORMAT = 268485216
ERR_TRACKING_NO_MISSING = 268485226
ERR_UNIFIED_NEEDS_ONE = 268485228
REFUSAL_ERRMSGS = {
    ERR_PARAM: "param error",
    ERR_PAYER_OPENID_MISSING: "payer openid missing",
    ERR_ORDER_KEY_MISSING: "order_key missing or invalid order_number_type",
    ERR_TRANSACTION_ID_MISSING: "transaction_id missing",
    ERR_MCHID_MISSING: "mchid missing",
    ERR_OUT_TRADE_NO_MISSING: "out_trade_no missing",
    ERR_UPLOAD_TIME_MISSING: "upload_time missing",
    ERR_UPLOAD_TIME_FORMAT: "upload_time format error",
    ERR_TRACKING_NO_MISSING: "tracking_no missing",
    ERR_UNIFIED_NEEDS_ONE: "unified delivery needs exactly one shipment",
}

# Limits and errcodes of the order shipping management service
# (docs/order-shipping.md: the current pages' figures)
TRADE_SHIPPING_LIST_MAX = 15    # parcels (10 on the older page, WxJava)
TRADE_ITEM_DESC_MAX = 120       # characters
TRADE_CONTACT_MAX = 1024        # bytes
TRADE_DESCRIPTION_MAX = 120     # get_order's description: characters
LOGISTICS_EXPRESS = 1
DELIVERY_ID_SF = "SF"
TRADE_PAGE_SIZE = 100           # get_order_list's default page_size
SETTLEMENT_DELAY = 10 * 86400   # shipped_time -> estimated_settlement_time (stub's)
PRESALE_MIN = 15 * 86400        # opspecialorder delay_to: after pay_time
PRESALE_MAX = 330 * 86400
# the push events' FromUserName (a system OpenID; the stub's own)
EVENT_FROM_USER = "o_stub_trade_manage_system00"
# get_delivery_list's answer (the stub's sample of WeChat's ~1,500 companies)
DELIVERY_COMPANIES = [("SF", "顺丰速运"), ("YD", "韵达速递"), ("YTO", "圆通速递"),
                      ("ZTO", "中通快递"), ("STO", "申通快递"), ("EMS", "EMS")]

ERR_DATA_FORMAT = 47001
ERR_API_UNAUTHORIZED = 48001
ERR_INVALID_APPID = 40013
ERR_APPID_MISSING = 40097
ERR_COMPONENT_UNAUTHORIZED = 61003
ERR_TRADE_NOT_FOUND = 10060001
ERR_TRADE_ALL_SHIPPED = 10060002
ERR_TRADE_RESHIP_USED = 10060003
ERR_TRADE_NOT_SHIPPABLE = 10060004
ERR_TRADE_LOGISTICS_TYPE = 10060005
ERR_TRADE_SPLIT_NOT_EXPRESS = 10060006
ERR_TRADE_ALL_DELIVERED_MISSING = 10060007
ERR_TRADE_ITEM_DESC_MISSING = 10060008
ERR_TRADE_ITEM_DESC_TOO_LONG = 10060009
ERR_TRADE_LAST_INDEX = 10060011
ERR_TRADE_SUB_ORDER_REPEATED = 10060013
ERR_TRADE_PARAM = 10060014
ERR_TRADE_UNCHANGED = 10060023
ERR_TRADE_LIST_TOO_LONG = 10060024
ERR_TRADE_EXPRESS_COMPANY_TOO_LONG = 10060025
ERR_TRADE_TRACKING_NO_TOO_LONG = 10060026
ERR_TRADE_NOT_SHIPPED = 10060028
ERR_TRADE_RECEIVED_TIME = 10060029
ERR_TRADE_REMINDER_USED = 10060030
ERR_TRADE_NOT_PAYER = 10060031
ERR_TRADE_REMINDER_NOT_EXPRESS = 10060032
ERR_DELIVERY_MODE = 268485224
ERR_EXPRESS_COMPANY_MISSING = 268485227
ERR_SUB_ORDER_KEY_TYPE = 268485253
ERR_SPECIAL_TYPE = 268546000
ERR_SPECIAL_DELAY_TO = 268546001
ERR_SPECIAL_NO_ORDER = 268546002
TRADE_ERRMSGS = {
    ERR_DATA_FORMAT: "data format error",
    ERR_API_UNAUTHORIZED: "api unauthorized",
    ERR_INVALID_APPID: "invalid appid",
    ERR_APPID_MISSING: "invalid args",
    ERR_COMPONENT_UNAUTHORIZED: "component is not authorized by this account",
    ERR_TRADE_NOT_FOUND: "payment not found",
    ERR_TRADE_ALL_SHIPPED: "payment already fully shipped",
    ERR_TRADE_RESHIP_USED: "re-ship chance used up",
    ERR_TRADE_NOT_SHIPPABLE: "payment not in a shippable state",
    ERR_TRADE_LOGISTICS_TYPE: "invalid logistics_type",
    ERR_TRADE_SPLIT_NOT_EXPRESS: "split delivery only with express",
    ERR_TRADE_ALL_DELIVERED_MISSING: "is_all_delivered missing",
    ERR_TRADE_ITEM_DESC_MISSING: "item_desc empty",
    ERR_TRADE_ITEM_DESC_TOO_LONG: "item_desc too long",
    ERR_TRADE_LAST_INDEX: "invalid last_index",
    ERR_TRADE_SUB_ORDER_REPEATED: "repeated sub-order",
    ERR_TRADE_PARAM: "parameter error",
    ERR_TRADE_UNCHANGED: "shipping information unchanged",
    ERR_TRADE_LIST_TOO_LONG: "shipping_list too long",
    ERR_TRADE_EXPRESS_COMPANY_TOO_LONG: "express_company too long",
    ERR_TRADE_TRACKING_NO_TOO_LONG: "tracking_no too long",
    ERR_TRADE_NOT_SHIPPED: "payment not shipped",
    ERR_TRADE_RECEIVED_TIME: "invalid received_time",
    ERR_TRADE_REMINDER_USED: "receipt reminder already used",
    ERR_TRADE_NOT_PAYER: "payment does not belong to payer.openid",
    ERR_TRADE_REMINDER_NOT_EXPRESS: "receipt reminder only for express delivery",
    ERR_DELIVERY_MODE: "invalid delivery_mode",
    ERR_EXPRESS_COMPANY_MISSING: "express_company missing",
    ERR_SUB_ORDER_KEY_TYPE: "sub-order order_number_type differs",
    ERR_SPECIAL_TYPE: "invalid type",
    ERR_SPECIAL_DELAY_TO: "invalid delay_to",
    ERR_SPECIAL_NO_ORDER: "no such order awaiting shipment",
}
REFUSAL_ERRMSGS.update(TRADE_ERRMSGS)
for _code, _msg in TRADE_ERRMSGS.items():
    ERRMSGS.setdefault(_code, _msg)

RFC3339_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(\.[0-9]+)?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))")
OUT_TRADE_NO_RE = re.compile(r"[0-9A-Za-z_\-*|]+")


def new_rid():
    """A WeChat-like request id: three groups of 8 hex digits."""
    return "-".join(secrets.token_hex(4) for _ in range(3))


def wechat_error(errcode, message=None):
    """The JSON object WeChat answers for a non-zero errcode."""
    text = message or ERRMSGS.get(errcode, "stub error %d" % errcode)
    return {"errcode": errcode, "errmsg": "%s rid: %s" % (text, new_rid())}


class Answer:
    """What the stub answers to one API request (drop = no answer at all)."""

    def __init__(self, status=200, json_obj=None, text=None,
                 ctype="text/html; charset=utf-8", drop=False, raw=None,
                 errcode=None):
        self.status = status
        self.json = json_obj
        self.text = text
        self.ctype = ctype
        self.drop = drop
        self.raw = raw              # bytes sent as they are (application/json)
        self._errcode = errcode     # for a raw body: the errcode it carries
        if raw is not None:
            try:
                self.json = json.loads(raw.decode("utf-8"))
            except ValueError:      # not UTF-8, or not JSON: recorded as text
                self.text = raw.decode("utf-8", errors="replace")

    @property
    def errcode(self):
        if self._errcode is not None:
            return self._errcode
        if isinstance(self.json, dict) and isinstance(self.json.get("errcode"), int) \
                and not isinstance(self.json.get("errcode"), bool):
            return self.json["errcode"]
        return None

    def for_record(self):
        if self.drop:
            return None
        if self.json is not None:
            return {"status": self.status, "json": self.json}
        return {"status": self.status, "text": self.text}

    def encode(self):
        """(content type, body bytes)."""
        if self.raw is not None:
            return "application/json; charset=utf-8", self.raw
        if self.json is not None:
            return ("application/json; charset=utf-8",
                    json.dumps(self.json, ensure_ascii=False).encode("utf-8"))
        return self.ctype, (self.text or "").encode("utf-8")


class ControlError(Exception):
    """Bad input to a control endpoint: answered with HTTP 400."""


class Refusal(Exception):
    """A verify or shippings body the stub refuses: (errcode, detail)."""

    def __init__(self, errcode, detail):
        super().__init__(detail)
        self.errcode = errcode
        self.detail = detail

    def answer(self):
        base = REFUSAL_ERRMSGS.get(self.errcode, "param error")
        return wechat_error(self.errcode, "%s: %s" % (base, self.detail))


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def utf8_len(s):
    return len(s.encode("utf-8", errors="surrogatepass"))


def _days_from_civil(y, m, d):
    """Days from 1970-01-01 to the proleptic Gregorian date y-m-d (any year)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def rfc3339_instant(text):
    """The instant an RFC 3339 date-time names (a Decimal of unix seconds),
    or None if text is not one (the extension's rule: validate.c)."""
    m = RFC3339_RE.fullmatch(text)
    if m is None:
        return None
    y, mo, d, h, mi, sec = (int(m.group(i)) for i in range(1, 7))
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    days = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    if not (1 <= mo <= 12 and 1 <= d <= days[mo - 1] and h <= 23 and mi <= 59
            and sec <= 60):
        return None
    offset = 0
    if m.group(8) is None:
        oh, om = int(m.group(10)), int(m.group(11))
        if oh > 23 or om > 59:
            return None
        offset = (oh * 60 + om) * 60 * (1 if m.group(9) == "+" else -1)
    seconds = _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset
    return decimal.Decimal(seconds) + decimal.Decimal("0" + (m.group(7) or ".0"))


def _string(obj, key, path, missing_code, max_len, chars=False, min_len=1,
            param=ERR_PARAM, long_code=None):
    """obj[key] as a string of min_len..max_len bytes (characters if chars).
    Absent, null or "" -> Refusal(missing_code); another type or length ->
    Refusal(param), but a string over max_len -> Refusal(long_code) if given."""
    v = obj.get(key)
    if v is None or v == "":
        raise Refusal(missing_code, "%s is missing or empty" % path)
    if not isinstance(v, str):
        raise Refusal(param, "%s must be a string" % path)
    n = len(v) if chars else utf8_len(v)
    if not min_len <= n <= max_len:
        raise Refusal(long_code if long_code is not None and n > max_len else param,
                      "%s must be %d to %d %s long"
                      % (path, min_len, max_len, "characters" if chars else "bytes"))
    return v


def order_identity(body, param=ERR_PARAM):
    """The identity of the order body["order_key"] names:
    ("mchid", mchid, out_trade_no) for order_number_type 1,
    ("tx", transaction_id) for 2.  Refusal (the upload's errcodes) if it
    names none; a value of a wrong type or form is Refusal(param)."""
    key = body.get("order_key")
    if key is None:
        raise Refusal(ERR_ORDER_KEY_MISSING, "order_key is missing")
    if not isinstance(key, dict):
        raise Refusal(param, "order_key must be an object")
    kind = key.get("order_number_type")
    if kind is None:
        raise Refusal(ERR_ORDER_KEY_MISSING, "order_key.order_number_type is missing")
    if not is_int(kind):
        raise Refusal(param, "order_key.order_number_type must be an integer")
    if kind == 1:
        mchid = _string(key, "mchid", "order_key.mchid", ERR_MCHID_MISSING, KEY_ID_MAX,
                        param=param)
        no = _string(key, "out_trade_no", "order_key.out_trade_no",
                     ERR_OUT_TRADE_NO_MISSING, OUT_TRADE_NO_MAX, chars=True,
                     min_len=OUT_TRADE_NO_MIN, param=param)
        if not OUT_TRADE_NO_RE.fullmatch(no):
            raise Refusal(param, "order_key.out_trade_no may hold only "
                                 "0-9 A-Z a-z _ - * |")
        return ("mchid", mchid, no)
    if kind == 2:
        return ("tx", _string(key, "transaction_id", "order_key.transaction_id",
                              ERR_TRANSACTION_ID_MISSING, KEY_ID_MAX, param=param))
    raise Refusal(ERR_ORDER_KEY_MISSING, "order_key.order_number_type must be 1 or 2")


def payer_openid(body, param=ERR_PARAM):
    """body["payer"]["openid"], or Refusal (the upload's errcodes; a wrong
    type or length: param)."""
    payer = body.get("payer")
    if payer is None:
        raise Refusal(ERR_PAYER_OPENID_MISSING, "payer is missing")
    if not isinstance(payer, dict):
        raise Refusal(param, "payer must be an object")
    return _string(payer, "openid", "payer.openid", ERR_PAYER_OPENID_MISSING, OPENID_MAX,
                   param=param)


def upload_time(body, param=ERR_PARAM):
    """(text, instant) of body["upload_time"], or Refusal (the upload's
    errcodes; not a string: param)."""
    v = body.get("upload_time")
    if v is None or v == "":
        raise Refusal(ERR_UPLOAD_TIME_MISSING, "upload_time is missing or empty")
    if not isinstance(v, str):
        raise Refusal(param, "upload_time must be a string")
    instant = rfc3339_instant(v)
    if instant is None:
        raise Refusal(ERR_UPLOAD_TIME_FORMAT, "upload_time is not an RFC 3339 date-time")
    return v, instant


def order_item_ids(upload):
    """The merchant_item_id strings of an upload body's order_list[].item_list[]."""
    ids = set()
    orders = upload.get("order_list")
    for sub in orders if isinstance(orders, list) else ():
        items = sub.get("item_list") if isinstance(sub, dict) else None
        for item in items if isinstance(items, list) else ():
            if isinstance(item, dict) and isinstance(item.get("merchant_item_id"), str):
                ids.add(item["merchant_item_id"])
    return ids


def check_shipping_body(body):
    """The form of a shippings body (after order_key, payer, upload_time):
    delivery_mode and shipping_list.  Returns (mode, [(path, merchant_item_id)]
    of every split shipment's items); Refusal otherwise."""
    mode = body.get("delivery_mode")
    if mode is None:
        raise Refusal(ERR_PARAM, "delivery_mode is missing")
    if not is_int(mode) or mode not in (UNIFIED_DELIVERY, SPLIT_DELIVERY):
        raise Refusal(ERR_PARAM, "delivery_mode must be 1 or 2")
    shipments = body.get("shipping_list")
    if shipments is None:
        raise Refusal(ERR_PARAM, "shipping_list is missing")
    if not isinstance(shipments, list):
        raise Refusal(ERR_PARAM, "shipping_list must be an array")
    if mode == UNIFIED_DELIVERY and len(shipments) != 1:
        raise Refusal(ERR_UNIFIED_NEEDS_ONE,
                      "shipping_list has %d shipments; delivery_mode 1 needs exactly 1"
                      % len(shipments))
    if not 1 <= len(shipments) <= SHIPPING_LIST_MAX:
        raise Refusal(ERR_PARAM, "shipping_list must hold 1 to %d shipments"
                      % SHIPPING_LIST_MAX)
    refs = []
    for i, shipment in enumerate(shipments):
        path = "shipping_list[%d]" % i
        if not isinstance(shipment, dict):
            raise Refusal(ERR_PARAM, "%s must be an object" % path)
        _string(shipment, "tracking_no", path + ".tracking_no",
                ERR_TRACKING_NO_MISSING, TRACKING_NO_MAX)
        _string(shipment, "express_company", path + ".express_company",
                ERR_PARAM, EXPRESS_COMPANY_MAX)
        items = shipment.get("item_list")
        if items is None:
            if mode == SPLIT_DELIVERY:
                raise Refusal(ERR_PARAM, "%s.item_list is required when "
                                         "delivery_mode is 2" % path)
        elif not isinstance(items, list):
            raise Refusal(ERR_PARAM, "%s.item_list must be an array" % path)
        elif not items and mode == SPLIT_DELIVERY:
            raise Refusal(ERR_PARAM, "%s.item_list must not be empty when "
                                     "delivery_mode is 2" % path)
        for j, item in enumerate(items or ()):
            item_path = "%s.item_list[%d]" % (path, j)
            if not isinstance(item, dict):
                raise Refusal(ERR_PARAM, "%s must be an object" % item_path)
            item_id = _string(item, "merchant_item_id", item_path + ".merchant_item_id",
                              ERR_PARAM, ITEM_ID_MAX)
            if mode == SPLIT_DELIVERY:
                refs.append((item_path + ".merchant_item_id", item_id))
        contact = shipment.get("contact")
        if contact is not None:
            if not isinstance(contact, dict):
                raise Refusal(ERR_PARAM, "%s.contact must be an object" % path)
            for key in ("consignor_contact", "receiver_contact"):
                if contact.get(key) is not None and not isinstance(contact[key], str):
                    raise Refusal(ERR_PARAM, "%s.contact.%s must be a string"
                                  % (path, key))
    return mode, refs


# ---- the order shipping management service: body checks ---------------------

def _trade_opt_string(obj, key, path, missing_code, max_len, long_code):
    """obj[key], an optional string of at most max_len bytes ("" if absent,
    null or empty): missing_code (if not None) makes it required."""
    v = obj.get(key)
    if v is None or v == "":
        if missing_code is not None:
            raise Refusal(missing_code, "%s is missing or empty" % path)
        return ""
    if not isinstance(v, str):
        raise Refusal(ERR_DATA_FORMAT, "%s must be a string" % path)
    if utf8_len(v) > max_len:
        raise Refusal(long_code, "%s must be at most %d bytes long" % (path, max_len))
    return v


def contact_ok(value):
    """A masked phone number's rule (the extension's): its last 4 digits are
    in clear (walking from the end, 4 digits come before any '*')."""
    clear = 0
    for ch in reversed(value):
        if clear == 4:
            break
        if ch == "*":
            return False
        if "0" <= ch <= "9":
            clear += 1
    return clear == 4


def check_trade_parcel(parcel, path, express):
    """shipping_list[i] of an upload_shipping_info body: the parcel,
    normalized ({tracking_no, express_company, item_desc, contact}, "" for
    what is absent), or Refusal."""
    if not isinstance(parcel, dict):
        raise Refusal(ERR_DATA_FORMAT, "%s must be an object" % path)
    tracking = _trade_opt_string(parcel, "tracking_no", path + ".tracking_no",
                                 ERR_TRACKING_NO_MISSING if express else None,
                                 TRACKING_NO_MAX, ERR_TRADE_TRACKING_NO_TOO_LONG)
    company = _trade_opt_string(parcel, "express_company", path + ".express_company",
                                ERR_EXPRESS_COMPANY_MISSING if express else None,
                                EXPRESS_COMPANY_MAX, ERR_TRADE_EXPRESS_COMPANY_TOO_LONG)
    desc = _string(parcel, "item_desc", path + ".item_desc", ERR_TRADE_ITEM_DESC_MISSING,
                   TRADE_ITEM_DESC_MAX, chars=True, param=ERR_DATA_FORMAT,
                   long_code=ERR_TRADE_ITEM_DESC_TOO_LONG)
    contact = parcel.get("contact")
    phones = {"consignor_contact": "", "receiver_contact": ""}
    if contact is not None:
        if not isinstance(contact, dict):
            raise Refusal(ERR_DATA_FORMAT, "%s.contact must be an object" % path)
        for key in phones:
            phone = _trade_opt_string(contact, key, "%s.contact.%s" % (path, key), None,
                                      TRADE_CONTACT_MAX, ERR_DATA_FORMAT)
            if phone and not contact_ok(phone):
                raise Refusal(ERR_DATA_FORMAT, "%s.contact.%s must be a masked phone "
                              "number with its last 4 digits in clear, such as "
                              "189****1234" % (path, key))
            phones[key] = phone
    if company == DELIVERY_ID_SF and not any(phones.values()):
        raise Refusal(ERR_DATA_FORMAT, "%s.contact needs consignor_contact or "
                                       "receiver_contact when express_company is "
                                       "\"SF\" (SF Express)" % path)
    return {"tracking_no": tracking, "express_company": company, "item_desc": desc,
            "contact": phones}


def check_trade_delivery(body, prefix=""):
    """logistics_type, delivery_mode, is_all_delivered and shipping_list of an
    upload_shipping_info body (or of sub_orders[i] of a combined one, prefix
    "sub_orders[i]."): (logistics_type, delivery_mode, is_all_delivered or
    None in unified mode, [normalized parcels]), or Refusal."""
    logistics = body.get("logistics_type")
    if not is_int(logistics) or not 1 <= logistics <= 4:
        raise Refusal(ERR_TRADE_LOGISTICS_TYPE, "%slogistics_type must be 1, 2, 3 or 4"
                      % prefix)
    mode = body.get("delivery_mode")
    if not is_int(mode) or mode not in (UNIFIED_DELIVERY, SPLIT_DELIVERY):
        raise Refusal(ERR_DELIVERY_MODE, "%sdelivery_mode must be 1 or 2" % prefix)
    if mode == SPLIT_DELIVERY and logistics != LOGISTICS_EXPRESS:
        raise Refusal(ERR_TRADE_SPLIT_NOT_EXPRESS, "%sdelivery_mode 2 needs "
                      "logistics_type 1 (express)" % prefix)
    all_delivered = body.get("is_all_delivered")
    if all_delivered is None and mode == SPLIT_DELIVERY:
        raise Refusal(ERR_TRADE_ALL_DELIVERED_MISSING, "%sis_all_delivered is required "
                      "when delivery_mode is 2" % prefix)
    if all_delivered is not None and not isinstance(all_delivered, bool):
        raise Refusal(ERR_DATA_FORMAT, "%sis_all_delivered must be true or false" % prefix)
    parcels = body.get("shipping_list")
    path = prefix + "shipping_list"
    if parcels is None:
        raise Refusal(ERR_DATA_FORMAT, "%s is required" % path)
    if not isinstance(parcels, list):
        raise Refusal(ERR_DATA_FORMAT, "%s must be an array" % path)
    if not parcels:
        raise Refusal(ERR_DATA_FORMAT, "%s must not be empty" % path)
    if len(parcels) > TRADE_SHIPPING_LIST_MAX:
        raise Refusal(ERR_TRADE_LIST_TOO_LONG, "%s has %d parcels; at most %d"
                      % (path, len(parcels), TRADE_SHIPPING_LIST_MAX))
    if mode == UNIFIED_DELIVERY and len(parcels) != 1:
        raise Refusal(ERR_UNIFIED_NEEDS_ONE, "%s has %d parcels; delivery_mode 1 needs "
                      "exactly 1" % (path, len(parcels)))
    out = [check_trade_parcel(parcel, "%s[%d]" % (path, i), logistics == LOGISTICS_EXPRESS)
           for i, parcel in enumerate(parcels)]
    return logistics, mode, all_delivered if mode == SPLIT_DELIVERY else None, out


def query_key(body):
    """The query key of get_order / notify_confirm_receive: ("tx", id, sub) or
    ("mchid", merchant_id, merchant_trade_no, sub), sub being the
    sub_merchant_id ("" if none); Refusal otherwise."""
    values = {}
    for key in ("transaction_id", "merchant_id", "merchant_trade_no", "sub_merchant_id"):
        v = body.get(key)
        if v is not None and not isinstance(v, str):
            raise Refusal(ERR_DATA_FORMAT, "%s must be a string" % key)
        values[key] = v or ""
    if values["transaction_id"]:
        return ("tx", values["transaction_id"], values["sub_merchant_id"])
    if values["merchant_id"] and values["merchant_trade_no"]:
        return ("mchid", values["merchant_id"], values["merchant_trade_no"],
                values["sub_merchant_id"])
    raise Refusal(ERR_TRADE_PARAM, "give transaction_id, or merchant_id and "
                                   "merchant_trade_no")


def cut_description(text):
    """WeChat's cut of a description: over 120 characters, 117 and "..."."""
    if len(text) > TRADE_DESCRIPTION_MAX:
        return text[:TRADE_DESCRIPTION_MAX - 3] + "..."
    return text


class StubState:
    """Accounts, tokens, faults, records and counters; shared by all threads."""

    def __init__(self, accounts, token_ttl, log_file=None, seed=None,
                 auto_payments=False):
        self.lock = threading.Lock()
        self.trade = TradeState(accounts, auto_payments)
        self.accounts = dict(accounts)
        self.token_ttl = token_ttl
        self.log_file = log_file
        self.rng = random.Random(seed)
        self.tokens = {}        # token -> (appid, monotonic expiry)
        self.current = {}       # appid -> its current token
        self.fault_ids = 0
        self.orders = {}        # order identity (tuple) -> its entry (below)
        self._clear_locked()

    def _clear_locked(self):
        self.generation = getattr(self, "generation", 0) + 1
        self.seq = 0
        self.records = []
        self.faults = []
        self.by_path = {}
        self.by_errcode = {}
        self.by_status = {}
        self.faults_applied = {}
        self.tokens_issued = 0
        self.force_refresh = 0
        self.stale = {}         # path -> accepted bodies not kept (stale)
        self.verify_linked = DEFAULT_VERIFY_LINKED
        self.verify_unlinked = DEFAULT_VERIFY_UNLINKED
        self.verify_overrides = {}      # order identity -> verify_result

    # ---- tokens (callers hold the lock) ---------------------------------

    def _token_remaining(self, token):
        """Seconds of life left for token, or None if it is not valid."""
        entry = self.tokens.get(token)
        if entry is None:
            return None
        remaining = entry[1] - time.monotonic()
        if remaining <= 0:
            self._invalidate(token)
            return None
        return remaining

    def _invalidate(self, token):
        entry = self.tokens.pop(token, None)
        if entry is not None and self.current.get(entry[0]) == token:
            del self.current[entry[0]]

    def _issue(self, appid):
        old = self.current.get(appid)
        if old is not None:
            self._invalidate(old)
        token = "stub_" + secrets.token_urlsafe(96)
        self.tokens[token] = (appid, time.monotonic() + self.token_ttl)
        self.current[appid] = token
        self.tokens_issued += 1
        return token

    def token_valid(self, token):
        with self.lock:
            return token is not None and self._token_remaining(token) is not None

    def token_appid(self, token):
        """The appid token was issued to, or None if it is not valid."""
        with self.lock:
            if token is None or self._token_remaining(token) is None:
                return None
            return self.tokens[token][0]

    def invalidate_token(self, token):
        with self.lock:
            self._invalidate(token)

    def expire_all_tokens(self):
        with self.lock:
            n = len(self.tokens)
            self.tokens.clear()
            self.current.clear()
            return n

    def stable_token(self, appid, force_refresh):
        """(token, expires_in) for a caller already authenticated."""
        with self.lock:
            if force_refresh:
                self.force_refresh += 1
            token = self.current.get(appid)
            remaining = None if token is None else self._token_remaining(token)
            if force_refresh or remaining is None:
                token = self._issue(appid)
                remaining = self.token_ttl
            return token, max(1, math.ceil(remaining))

    def current_tokens(self):
        with self.lock:
            out = {}
            for appid, token in list(self.current.items()):
                remaining = self._token_remaining(token)
                if remaining is not None:
                    out[appid] = {"access_token": token,
                                  "expires_in": max(1, math.ceil(remaining))}
            return out

    # ---- faults ------------------------------------------------------------

    def add_fault(self, spec):
        """Validate a fault spec (a dict); queue it, or apply expire_tokens."""
        if not isinstance(spec, dict):
            raise ControlError("fault must be a JSON object")
        unknown = set(spec) - {"kind", "count", "fraction", "path", "delay_ms", "appid"}
        if unknown:
            raise ControlError("unknown fault fields: %s" % ", ".join(sorted(unknown)))
        kind = spec.get("kind")
        if not isinstance(kind, str):
            raise ControlError("fault needs a string 'kind'")
        if kind == "expire_tokens":
            return {"ok": True, "expired": self.expire_all_tokens()}
        if kind.startswith("errcode:"):
            try:
                code = int(kind[len("errcode:"):], 10)
            except ValueError:
                raise ControlError("errcode fault needs an integer: %r" % kind)
            kind = "errcode:%d" % code
        elif kind.startswith("badutf8:"):
            try:
                code = int(kind[len("badutf8:"):], 10)
            except ValueError:
                raise ControlError("badutf8 fault needs an integer: %r" % kind)
            kind = "badutf8:%d" % code
        elif kind.startswith("long_errmsg:"):
            try:
                n = int(kind[len("long_errmsg:"):], 10)
            except ValueError:
                raise ControlError("long_errmsg fault needs an integer: %r" % kind)
            if not 1 <= n <= MAX_LONG_ERRMSG:
                raise ControlError("long_errmsg length must be 1..%d" % MAX_LONG_ERRMSG)
            kind = "long_errmsg:%d" % n
        elif kind.startswith("long_token:"):
            try:
                n = int(kind[len("long_token:"):], 10)
            except ValueError:
                raise ControlError("long_token fault needs an integer: %r" % kind)
            if not 1 <= n <= MAX_LONG_TOKEN:
                raise ControlError("long_token length must be 1..%d" % MAX_LONG_TOKEN)
            kind = "long_token:%d" % n
        elif kind.startswith("expires_in:"):
            try:
                json.loads(kind[len("expires_in:"):])
            except ValueError:
                raise ControlError("expires_in fault needs JSON text: %r" % kind)
        elif kind not in SIMPLE_FAULTS:
            raise ControlError("unknown fault kind %r" % kind)

        count = spec.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ControlError("'count' must be an integer >= 0")
        fraction = spec.get("fraction")
        if fraction is not None:
            if (isinstance(fraction, bool) or not isinstance(fraction, (int, float))
                    or not 0 <= fraction <= 1):
                raise ControlError("'fraction' must be a number in 0..1")
            fraction = float(fraction)
        path = spec.get("path", UPLOAD_PATH)
        if not isinstance(path, str) or not (path == "*" or path.startswith("/")):
            raise ControlError("'path' must be \"*\" or start with /")
        if path.startswith(CONTROL_PREFIX):
            raise ControlError("control paths cannot be faulted")
        default_delay = DEFAULT_DELAY_MS if kind == "delay" else 0
        delay_ms = spec.get("delay_ms", default_delay)
        if (isinstance(delay_ms, bool) or not isinstance(delay_ms, (int, float))
                or delay_ms < 0):
            raise ControlError("'delay_ms' must be a number >= 0")

        appid = spec.get("appid")
        if appid is not None and not isinstance(appid, str):
            raise ControlError("'appid' must be a string")

        with self.lock:
            self.fault_ids += 1
            fault = {"id": self.fault_ids, "kind": kind, "path": path,
                     "count": count, "fraction": fraction,
                     "delay_ms": delay_ms, "applied": 0}
            if appid is not None:
                fault["appid"] = appid
            self.faults.append(fault)
            return {"ok": True, "fault": dict(fault)}

    def request_appid(self, path, query, body):
        """The appid a request is for: stable_token's body names it, another
        call's access_token was issued to it; None when unknown."""
        if path == TOKEN_PATH:
            try:
                data = json.loads(body.decode("utf-8"))
            except ValueError:
                return None
            appid = data.get("appid") if isinstance(data, dict) else None
            return appid if isinstance(appid, str) else None
        token = urllib.parse.parse_qs(query).get("access_token", [None])[0]
        with self.lock:
            entry = self.tokens.get(token)
        return entry[0] if entry else None

    def take_fault(self, path, appid=None):
        """The fault to apply to a request for path, or None (uses it up);
        a fault for one appid applies only to that appid's requests."""
        with self.lock:
            for fault in self.faults:
                if fault["path"] not in ("*", path):
                    continue
                if "appid" in fault and fault["appid"] != appid:
                    continue
                if fault["fraction"] is not None:
                    if self.rng.random() >= fault["fraction"]:
                        continue
                elif fault["count"] > 0:
                    fault["count"] -= 1
                    if fault["count"] == 0:
                        self.faults.remove(fault)
                fault["applied"] += 1
                return dict(fault)
            return None

    def faults_by_appid(self):
        with self.lock:
            return any("appid" in f for f in self.faults)

    def list_faults(self):
        with self.lock:
            return [dict(f) for f in self.faults]

    def clear_faults(self):
        with self.lock:
            n = len(self.faults)
            self.faults = []
            return n

    # ---- records and counters -------------------------------------------

    def begin_request(self):
        """(seq, generation) for an arriving request."""
        with self.lock:
            self.seq += 1
            return self.seq, self.generation

    def record(self, rec, generation):
        line = json.dumps(rec, ensure_ascii=False)
        with self.lock:
            if generation == self.generation:   # not from before a reset
                self.records.append(rec)
                self._count(self.by_path, rec["path"])
                if rec["errcode"] is not None:
                    self._count(self.by_errcode, str(rec["errcode"]))
                answer = rec["answer"]
                self._count(self.by_status,
                            "drop" if answer is None else str(answer["status"]))
                if rec["fault"] is not None:
                    self._count(self.faults_applied, rec["fault"])
            if self.log_file is not None:
                try:
                    self.log_file.write(line + "\n")
                    self.log_file.flush()
                except OSError:
                    pass

    @staticmethod
    def _count(table, key):
        table[key] = table.get(key, 0) + 1

    def list_records(self, path=None, since=0):
        with self.lock:
            recs = [r for r in self.records
                    if (path is None or r["path"] == path) and r["seq"] > since]
        return sorted(recs, key=lambda r: r["seq"])

    def stats(self):
        with self.lock:
            return {"requests": len(self.records),
                    "by_path": dict(self.by_path),
                    "by_errcode": dict(self.by_errcode),
                    "by_status": dict(self.by_status),
                    "faults_applied": dict(self.faults_applied),
                    "tokens_issued": self.tokens_issued,
                    "force_refresh": self.force_refresh,
                    "faults_pending": len(self.faults),
                    "stale": dict(self.stale),
                    "orders": len(self.orders),
                    "payments": self.trade.count()}

    def reset(self, tokens=False, orders=False, trade=True):
        with self.lock:
            self._clear_locked()
            if trade:
                self.trade.reset()
            if tokens:
                self.tokens.clear()
                self.current.clear()
            if orders:
                self.orders.clear()

    # ---- accepted orders: uploads, shippings, verify ----------------------

    @staticmethod
    def _newer(old_instant, old_body, new_instant, new_body):
        """"replace", "repeat" (same upload_time, same body) or "stale"
        (an older upload_time, or the same one with another body)."""
        if old_instant is None or new_instant is None or new_instant > old_instant:
            return "replace"
        if new_instant == old_instant and new_body == old_body:
            return "repeat"
        return "stale"

    def remember_upload(self, ident, body):
        """An upload answered errcode 0, of the order ident."""
        payer = body.get("payer")
        openid = payer.get("openid") if isinstance(payer, dict) else None
        text = body.get("upload_time")
        instant = rfc3339_instant(text) if isinstance(text, str) else None
        with self.lock:
            entry = self.orders.get(ident)
            if entry is None:
                entry = self.orders[ident] = {
                    "id": list(ident), "uploads": 0, "uploads_stale": 0,
                    "upload_instant": None, "upload": None,
                    "shipping_time": None, "shipping_instant": None,
                    "shipping": None, "shippings": 0, "shippings_stale": 0}
            entry["uploads"] += 1
            if self._newer(entry["upload_instant"], entry["upload"],
                           instant, body) == "stale":
                entry["uploads_stale"] += 1
                self._count(self.stale, UPLOAD_PATH)
                return
            entry.update(order_key=body["order_key"],
                         openid=openid if isinstance(openid, str) else None,
                         upload_time=text if isinstance(text, str) else None,
                         upload_instant=instant, upload=body,
                         item_ids=order_item_ids(body))

    def accept_shipping(self, ident, openid, text, instant, body, refs):
        """A shippings body of a valid form: Refusal unless its order was
        accepted, with that payer, and has its split shipments' items."""
        with self.lock:
            entry = self.orders.get(ident)
            if entry is None:
                raise Refusal(ERR_PARAM, "order not uploaded (no upload of this "
                                         "order_key was accepted)")
            if entry["openid"] != openid:
                raise Refusal(ERR_PARAM, "payer.openid is not the payer of the "
                                         "order's upload")
            for path, item_id in refs:
                if item_id not in entry["item_ids"]:
                    raise Refusal(ERR_PARAM, "%s is not an item of the order" % path)
            entry["shippings"] += 1
            if self._newer(entry["shipping_instant"], entry["shipping"],
                           instant, body) == "stale":
                entry["shippings_stale"] += 1
                self._count(self.stale, SHIPPINGS_PATH)
                return
            entry.update(shipping_time=text, shipping_instant=instant, shipping=body)

    def verify(self, ident, openid):
        """The verify_result of the order ident for payer openid."""
        with self.lock:
            if ident in self.verify_overrides:
                return self.verify_overrides[ident]
            entry = self.orders.get(ident)
            if entry is not None and entry["openid"] == openid:
                return self.verify_linked
            return self.verify_unlinked

    def list_orders(self):
        keys = ("id", "order_key", "openid", "upload_time", "upload", "uploads",
                "uploads_stale", "shipping_time", "shipping", "shippings",
                "shippings_stale")
        with self.lock:
            return [{k: e[k] for k in keys} for e in self.orders.values()]

    def _verify_config_locked(self):
        return {"linked": self.verify_linked, "unlinked": self.verify_unlinked,
                "overrides": [{"id": list(ident), "verify_result": v}
                              for ident, v in self.verify_overrides.items()]}

    def verify_config(self):
        with self.lock:
            return self._verify_config_locked()

    def set_verify(self, spec):
        """POST /__stub/verify_result: validate, then apply every part."""
        if not isinstance(spec, dict):
            raise ControlError("verify_result takes a JSON object")
        unknown = set(spec) - {"linked", "unlinked", "order_key", "verify_result"}
        if unknown:
            raise ControlError("unknown verify_result fields: %s"
                               % ", ".join(sorted(unknown)))
        for key in ("linked", "unlinked"):
            if key in spec and not isinstance(spec[key], str):
                raise ControlError("'%s' must be a string" % key)
        ident = None
        if ("order_key" in spec) != ("verify_result" in spec):
            raise ControlError("'order_key' and 'verify_result' go together")
        if "order_key" in spec:
            try:
                ident = order_identity({"order_key": spec["order_key"]})
            except Refusal as exc:
                raise ControlError("order_key names no order: %s" % exc.detail)
            if spec["verify_result"] is not None and not isinstance(spec["verify_result"], str):
                raise ControlError("'verify_result' must be a string or null")
        with self.lock:
            self.verify_linked = spec.get("linked", self.verify_linked)
            self.verify_unlinked = spec.get("unlinked", self.verify_unlinked)
            if ident is not None:
                if spec["verify_result"] is None:
                    self.verify_overrides.pop(ident, None)
                else:
                    self.verify_overrides[ident] = spec["verify_result"]
            out = self._verify_config_locked()
        out["ok"] = True
        return out


class TradeState:
    """The order shipping management service's payments and per-app settings
    (see "The order shipping management service" above); shared by all
    threads, under a lock of its own (taken after StubState's, never before)."""

    PAYMENT_FIELDS = {"order_key", "transaction_id", "mchid", "out_trade_no", "sub_mchid",
                      "appid", "openid", "paid_amount", "description",
                      "trade_create_time", "pay_time", "order_state", "in_complaint",
                      "found_after_lookups", "found_after_seconds", "sub_orders"}
    KEY_FIELDS = {"order_key", "transaction_id", "mchid", "out_trade_no"}
    STATE_FIELDS = {"order_state", "in_complaint", "openid", "paid_amount", "description",
                    "trade_create_time", "pay_time", "shipped_time",
                    "estimated_settlement_time", "confirm_receive_time",
                    "confirm_receive_method", "settlement_time",
                    "found_after_lookups", "found_after_seconds"}
    EVENTS = ("trade_manage_remind_access_api", "trade_manage_remind_shipping",
              "trade_manage_order_settlement")

    def __init__(self, accounts, auto_payments=False):
        self.lock = threading.Lock()
        self.accounts = set(accounts)
        self.auto_default = auto_payments
        self.salt = secrets.randbits(32)    # last_index: this process's own
        self.seq = 0
        self.reset()

    def reset(self):
        with self.lock:
            self.auto = self.auto_default
            self.payments = {}      # seq -> payment (dict)
            self.by_tx = {}         # transaction_id -> payment
            self.by_mch = {}        # (mchid or sub_mchid, out_trade_no) -> payment
            self.apps = {}          # appid -> settings (defaults: see _app)

    def count(self):
        with self.lock:
            return len(self.payments)

    # ---- apps --------------------------------------------------------------

    def _app(self, appid):
        entry = {"is_trade_managed": True, "completed": True, "msg_jump_path": None}
        entry.update(self.apps.get(appid, {}))
        return entry

    def managed(self, appid):
        with self.lock:
            return self._app(appid)["is_trade_managed"]

    def app_flag(self, caller, data, flag, answer_key):
        """is_trade_managed / is_trade_management_confirmation_completed."""
        appid = data.get("appid")
        if appid is None or appid == "":
            raise Refusal(ERR_APPID_MISSING, "appid is missing")
        if not isinstance(appid, str) or appid not in self.accounts:
            raise Refusal(ERR_INVALID_APPID, "appid %s is not an app's" % json.dumps(appid))
        if appid != caller:
            raise Refusal(ERR_COMPONENT_UNAUTHORIZED, "appid %s is not the caller's own "
                          "(no third-party authority)" % appid)
        with self.lock:
            return {"errcode": 0, "errmsg": "ok", answer_key: self._app(appid)[flag]}

    def set_jump_path(self, appid, data):
        path = data.get("path")
        if not isinstance(path, str):
            raise Refusal(ERR_DATA_FORMAT, "path is required, a string")
        with self.lock:
            self.apps.setdefault(appid, {})["msg_jump_path"] = path
        return {"errcode": 0, "errmsg": "ok"}

    def config(self):
        with self.lock:
            return {"auto_payments": self.auto,
                    "apps": {a: self._app(a) for a in sorted(self.accounts | set(self.apps))}}

    def set_config(self, spec):
        if not isinstance(spec, dict):
            raise ControlError("trade/config takes a JSON object")
        unknown = set(spec) - {"auto_payments", "apps"}
        if unknown:
            raise ControlError("unknown trade/config fields: %s" % ", ".join(sorted(unknown)))
        auto = spec.get("auto_payments")
        if auto is not None and not isinstance(auto, bool):
            raise ControlError("'auto_payments' must be true or false")
        apps = spec.get("apps", {})
        if not isinstance(apps, dict):
            raise ControlError("'apps' must be an object {appid: {...}}")
        for appid, flags in apps.items():
            if not isinstance(flags, dict) or set(flags) - {"is_trade_managed", "completed"}:
                raise ControlError("apps.%s: only is_trade_managed and completed" % appid)
            for key, value in flags.items():
                if not isinstance(value, bool):
                    raise ControlError("apps.%s.%s must be true or false" % (appid, key))
        with self.lock:
            if auto is not None:
                self.auto = auto
            for appid, flags in apps.items():
                self.apps.setdefault(appid, {}).update(flags)
        out = self.config()
        out["ok"] = True
        return out

    # ---- payments: control -----------------------------------------------

    @staticmethod
    def _control_keys(spec, where):
        """(transaction_id, mchid, out_trade_no) a control body names ("" for
        what it does not); ControlError unless it names at least one form."""
        keys = {}
        for name in ("transaction_id", "mchid", "out_trade_no"):
            v = spec.get(name)
            if v is not None and not isinstance(v, str):
                raise ControlError("%s: '%s' must be a string" % (where, name))
            keys[name] = v or ""
        if spec.get("order_key") is not None:
            try:
                ident = order_identity({"order_key": spec["order_key"]})
            except Refusal as exc:
                raise ControlError("%s: order_key names no payment: %s" % (where, exc.detail))
            given = (dict(zip(("transaction_id",), ident[1:])) if ident[0] == "tx"
                     else dict(zip(("mchid", "out_trade_no"), ident[1:])))
            for name, value in given.items():
                if keys[name] and keys[name] != value:
                    raise ControlError("%s: order_key and '%s' disagree" % (where, name))
                keys[name] = value
        if bool(keys["mchid"]) != bool(keys["out_trade_no"]):
            raise ControlError("%s: 'mchid' and 'out_trade_no' go together" % where)
        if not keys["transaction_id"] and not keys["mchid"]:
            raise ControlError("%s: give transaction_id, or mchid and out_trade_no "
                               "(or an order_key)" % where)
        return keys["transaction_id"], keys["mchid"], keys["out_trade_no"]

    @staticmethod
    def _control_fields(spec, where, names):
        """The payment fields of a control body among names, checked."""
        out = {}
        for name in names & set(spec):
            v = spec[name]
            if name in ("sub_mchid", "description", "appid", "openid"):
                if v is not None and not isinstance(v, str):
                    raise ControlError("%s: '%s' must be a string or null" % (where, name))
                if name == "sub_mchid":
                    v = v or ""
                elif name in ("appid", "openid"):
                    v = v or None
            elif name == "in_complaint":
                if not isinstance(v, bool):
                    raise ControlError("%s: 'in_complaint' must be true or false" % where)
            elif name == "found_after_seconds":
                if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                    raise ControlError("%s: 'found_after_seconds' must be a number >= 0"
                                       % where)
            elif name in ("order_state", "confirm_receive_method", "paid_amount",
                          "trade_create_time", "pay_time", "found_after_lookups"):
                lo, hi = {"order_state": (1, 6), "confirm_receive_method": (1, 2)}.get(
                    name, (0, None))
                if not is_int(v) or v < lo or (hi is not None and v > hi):
                    raise ControlError("%s: '%s' must be an integer %s" % (
                        where, name, ">= 0" if hi is None else "%d..%d" % (lo, hi)))
            elif name in ("shipped_time", "estimated_settlement_time",
                          "confirm_receive_time", "settlement_time"):
                if v is not None and (not is_int(v) or v < 0):
                    raise ControlError("%s: '%s' must be a timestamp (seconds) or null"
                                       % (where, name))
            out[name] = v
        return out

    def _new_payment(self, fields):
        self.seq += 1
        now = int(time.time())
        p = {"seq": self.seq, "transaction_id": "", "mchid": "", "out_trade_no": "",
             "sub_mchid": "", "appid": None, "openid": None, "paid_amount": 100,
             "description": None, "trade_create_time": now, "pay_time": now,
             "order_state": 1, "in_complaint": False, "auto": False,
             "lookups_to_fail": 0, "visible_at": None, "lookups": 0, "lookups_refused": 0,
             "shipping": None, "reship_used": False, "uploads_accepted": 0,
             "uploads_refused": 0, "last_upload": None, "last_upload_time": None,
             "last_upload_instant": None, "shipped_time": None,
             "estimated_settlement_time": None, "confirm_receive_time": None,
             "confirm_receive_method": None, "settlement_time": None,
             "received_time": None, "special": None, "parent": None, "sub_orders": []}
        p.update(fields)
        self.payments[p["seq"]] = p
        if p["transaction_id"]:
            self.by_tx[p["transaction_id"]] = p
        for mchid in (p["mchid"], p["sub_mchid"]):
            if mchid and p["out_trade_no"]:
                self.by_mch[(mchid, p["out_trade_no"])] = p
        return p

    def _drop(self, p):
        self.payments.pop(p["seq"], None)
        for index in (self.by_tx, self.by_mch):
            for key in [k for k, v in index.items() if v is p]:
                del index[key]

    def _visibility(self, fields):
        """found_after_* of a control body -> the payment's fields."""
        out = {}
        if "found_after_lookups" in fields:
            out["lookups_to_fail"] = fields.pop("found_after_lookups")
        if "found_after_seconds" in fields:
            seconds = fields.pop("found_after_seconds")
            out["visible_at"] = time.monotonic() + seconds if seconds else None
        return out

    def register(self, spec):
        """POST /__stub/trade/payments."""
        if isinstance(spec, dict) and "payments" in spec:
            if set(spec) != {"payments"}:
                raise ControlError("a body with 'payments' holds nothing else")
            spec = spec["payments"]
        entries = spec if isinstance(spec, list) else [spec]
        parsed = []
        for i, entry in enumerate(entries):
            where = "payments[%d]" % i
            if not isinstance(entry, dict):
                raise ControlError("%s must be a JSON object" % where)
            unknown = set(entry) - self.PAYMENT_FIELDS
            if unknown:
                raise ControlError("%s: unknown fields: %s"
                                   % (where, ", ".join(sorted(unknown))))
            subs = entry.get("sub_orders", [])
            if not isinstance(subs, list):
                raise ControlError("%s: 'sub_orders' must be an array" % where)
            children = []
            for j, sub in enumerate(subs):
                sub_where = "%s.sub_orders[%d]" % (where, j)
                if not isinstance(sub, dict):
                    raise ControlError("%s must be a JSON object" % sub_where)
                unknown = set(sub) - (self.PAYMENT_FIELDS - {"sub_orders"})
                if unknown:
                    raise ControlError("%s: unknown fields: %s"
                                       % (sub_where, ", ".join(sorted(unknown))))
                children.append(self._parse_entry(sub, sub_where))
            parsed.append((self._parse_entry(entry, where), children))
        created = []
        with self.lock:
            for (fields, visible), children in parsed:
                p = self._add(fields, visible)
                created.append(p)
                for sub_fields, sub_visible in children:
                    for inherited in ("appid", "openid"):
                        sub_fields.setdefault(inherited, p[inherited])
                    sub_fields["parent"] = p["seq"]
                    child = self._add(sub_fields, sub_visible)
                    p["sub_orders"].append(child["seq"])
                    created.append(child)
            return {"ok": True, "payments": [self._payment_view(p) for p in created]}

    def _parse_entry(self, entry, where):
        tx, mchid, no = self._control_keys(entry, where)
        fields = self._control_fields(entry, where, self.PAYMENT_FIELDS - self.KEY_FIELDS
                                      - {"sub_orders"})
        fields.update(transaction_id=tx, mchid=mchid, out_trade_no=no)
        return fields, self._visibility(fields)

    def _add(self, fields, visible):
        """A new payment (callers hold the lock); one its keys name goes."""
        for old in {id(p): p for p in (
                self.by_tx.get(fields["transaction_id"]),
                self.by_mch.get((fields["mchid"], fields["out_trade_no"])),
                self.by_mch.get((fields.get("sub_mchid") or None, fields["out_trade_no"])))
                if p is not None}.values():
            self._drop(old)
        fields = dict(fields, **visible)
        return self._new_payment(fields)

    def _control_find(self, spec, where):
        tx, mchid, no = self._control_keys(spec, where)
        p = self.by_tx.get(tx) if tx else None
        if p is None and mchid:
            p = self.by_mch.get((mchid, no))
        if p is None:
            raise ControlError("%s: no such payment" % where)
        return p

    def set_state(self, spec):
        """POST /__stub/trade/state."""
        if not isinstance(spec, dict):
            raise ControlError("trade/state takes a JSON object")
        unknown = set(spec) - self.STATE_FIELDS - self.KEY_FIELDS
        if unknown:
            raise ControlError("unknown trade/state fields: %s" % ", ".join(sorted(unknown)))
        fields = self._control_fields(spec, "trade/state", self.STATE_FIELDS)
        visible = self._visibility(fields)
        now = int(time.time())
        with self.lock:
            p = self._control_find(spec, "trade/state")
            p.update(fields)
            p.update(visible)
            if fields.get("order_state") in (3, 4, 6):
                if p["confirm_receive_time"] is None:
                    p["confirm_receive_time"] = now
                if p["confirm_receive_method"] is None:
                    p["confirm_receive_method"] = 1
            if fields.get("order_state") == 4 and p["settlement_time"] is None:
                p["settlement_time"] = now
            return {"ok": True, "payment": self._payment_view(p)}

    def list_payments(self):
        with self.lock:
            return [self._payment_view(p) for p in self.payments.values()]

    def event(self, spec):
        """POST /__stub/trade/event: a push event's JSON."""
        if not isinstance(spec, dict):
            raise ControlError("trade/event takes a JSON object")
        unknown = set(spec) - self.KEY_FIELDS - {"event", "appid", "stage", "msg", "fields"}
        if unknown:
            raise ControlError("unknown trade/event fields: %s" % ", ".join(sorted(unknown)))
        name = spec.get("event")
        if name not in self.EVENTS:
            raise ControlError("'event' must be one of %s" % ", ".join(self.EVENTS))
        stage = spec.get("stage")
        if stage not in (None, "shipping", "settlement"):
            raise ControlError("'stage' must be \"shipping\" or \"settlement\"")
        for key in ("appid", "msg"):
            if spec.get(key) is not None and not isinstance(spec[key], str):
                raise ControlError("'%s' must be a string" % key)
        extra = spec.get("fields", {})
        if not isinstance(extra, dict):
            raise ControlError("'fields' must be an object")
        now = int(time.time())
        with self.lock:
            p = None
            if name != "trade_manage_remind_access_api" or set(spec) & self.KEY_FIELDS:
                p = self._control_find(spec, "trade/event")
            appid = spec.get("appid") or (p and p["appid"]) or min(self.accounts)
            ev = {"ToUserName": "gh_" + hashlib.sha1(appid.encode("utf-8")).hexdigest()[:12],
                  "FromUserName": EVENT_FROM_USER, "CreateTime": now,
                  "MsgType": "event", "Event": name}
            if name == "trade_manage_remind_access_api":
                ev["msg"] = spec.get("msg") or "请尽快接入发货信息管理服务API"
            else:
                ev.update(transaction_id=p["transaction_id"], merchant_id=p["mchid"],
                          sub_merchant_id=p["sub_mchid"], merchant_trade_no=p["out_trade_no"],
                          pay_time=p["pay_time"])
            if name == "trade_manage_remind_shipping":
                ev["msg"] = spec.get("msg") or "你有订单超过48小时未发货，请尽快发货"
            elif name == "trade_manage_order_settlement":
                shipped = p["shipped_time"] if p["shipped_time"] is not None else now
                ev["shipped_time"] = shipped
                if stage is None:
                    stage = "settlement" if p["settlement_time"] is not None else "shipping"
                if stage == "shipping":
                    est = p["estimated_settlement_time"]
                    ev["estimated_settlement_time"] = (est if est is not None
                                                       else shipped + SETTLEMENT_DELAY)
                else:
                    for key, default in (("confirm_receive_method", 1),
                                         ("confirm_receive_time", now),
                                         ("settlement_time", now)):
                        ev[key] = p[key] if p[key] is not None else default
        ev.update(extra)
        return ev

    # ---- payments: views -----------------------------------------------------

    @staticmethod
    def _shipping_view(p):
        s = p["shipping"]
        if s is None:
            return {}
        return {"delivery_mode": s["delivery_mode"], "logistics_type": s["logistics_type"],
                "finish_shipping": s["finish_shipping"],
                "finish_shipping_count": (0 if not s["finish_shipping"]
                                          else 2 if p["reship_used"] else 1),
                "goods_desc": "",
                "shipping_list": [{"tracking_no": x["tracking_no"],
                                   "express_company": x["express_company"],
                                   "goods_desc": x["item_desc"],
                                   "upload_time": x["upload_time"],
                                   "contact": dict(x["contact"])} for x in s["parcels"]]}

    def _order_view(self, p):
        """get_order's order."""
        description = p["description"]
        if description is None:
            parcels = p["shipping"]["parcels"] if p["shipping"] else []
            description = cut_description(";".join(x["item_desc"] for x in parcels))
        return {"transaction_id": p["transaction_id"], "merchant_id": p["mchid"],
                "sub_merchant_id": p["sub_mchid"], "merchant_trade_no": p["out_trade_no"],
                "description": description, "paid_amount": p["paid_amount"],
                "openid": p["openid"] or "", "trade_create_time": p["trade_create_time"],
                "pay_time": p["pay_time"], "order_state": p["order_state"],
                "in_complaint": p["in_complaint"], "shipping": self._shipping_view(p)}

    def _key_view(self, seq):
        p = self.payments.get(seq)
        if p is None:
            return None
        return {"transaction_id": p["transaction_id"], "mchid": p["mchid"],
                "out_trade_no": p["out_trade_no"]}

    def _payment_view(self, p):
        """GET /__stub/trade/payments: one payment, all the stub knows."""
        waiting = (None if p["visible_at"] is None
                   else max(0.0, p["visible_at"] - time.monotonic()))
        s = p["shipping"]
        return {"transaction_id": p["transaction_id"], "mchid": p["mchid"],
                "out_trade_no": p["out_trade_no"], "sub_mchid": p["sub_mchid"],
                "appid": p["appid"], "auto": p["auto"],
                "order": self._order_view(p),
                "found": p["lookups_to_fail"] == 0 and not waiting,
                "found_after_lookups": p["lookups_to_fail"],
                "found_after_seconds": waiting or 0,
                "lookups": p["lookups"], "lookups_refused": p["lookups_refused"],
                "shipped": s is not None,
                "finish_shipping": bool(s and s["finish_shipping"]),
                "is_all_delivered": s["is_all_delivered"] if s else None,
                "uploads_accepted": p["uploads_accepted"],
                "uploads_refused": p["uploads_refused"],
                "reship_used": p["reship_used"],
                "last_upload_time": p["last_upload_time"],
                "last_upload": p["last_upload"],
                "shipped_time": p["shipped_time"],
                "estimated_settlement_time": p["estimated_settlement_time"],
                "confirm_receive_time": p["confirm_receive_time"],
                "confirm_receive_method": p["confirm_receive_method"],
                "settlement_time": p["settlement_time"],
                "receipt_reminder_sent": p["received_time"] is not None,
                "received_time": p["received_time"],
                "special": p["special"],
                "parent": self._key_view(p["parent"]) if p["parent"] else None,
                "sub_orders": [self._key_view(seq) for seq in p["sub_orders"]]}

    # ---- payments: the API ---------------------------------------------------

    @staticmethod
    def _describe(ident):
        if ident[0] == "tx":
            return "transaction_id %s" % ident[1]
        return "mchid %s + out_trade_no %s" % (ident[1], ident[2])

    @staticmethod
    def _hidden(p):
        """Counts a lookup of p: True if it is not to be found (yet)."""
        p["lookups"] += 1
        hidden = p["lookups_to_fail"] > 0 or (p["visible_at"] is not None
                                              and time.monotonic() < p["visible_at"])
        if p["lookups_to_fail"] > 0:
            p["lookups_to_fail"] -= 1
        if hidden:
            p["lookups_refused"] += 1
        return hidden

    def _lookup(self, appid, ident, sub=""):
        """The payment ident names for appid (callers hold the lock), created
        when payments auto-exist; Refusal 10060001 otherwise."""
        if ident[0] == "tx":
            p = self.by_tx.get(ident[1])
        else:
            p = self.by_mch.get((ident[1], ident[2]))
        if p is not None and p["appid"] not in (None, appid):
            p = None
        if p is not None and sub and sub != p["sub_mchid"]:
            p = None
        if p is None:
            if not self.auto:
                raise Refusal(ERR_TRADE_NOT_FOUND, "no payment with %s" % self._describe(ident))
            fields = ({"transaction_id": ident[1]} if ident[0] == "tx" else
                      {"mchid": ident[1], "out_trade_no": ident[2], "sub_mchid": sub})
            p = self._new_payment(dict(fields, appid=appid, auto=True))
        if self._hidden(p):
            raise Refusal(ERR_TRADE_NOT_FOUND, "no payment with %s" % self._describe(ident))
        return p

    @staticmethod
    def _content(shipping):
        """What an unchanged upload leaves equal (parcels without upload_time)."""
        return (shipping["delivery_mode"], shipping["logistics_type"],
                shipping["is_all_delivered"], shipping["finish_shipping"],
                [{k: v for k, v in x.items() if k != "upload_time"}
                 for x in shipping["parcels"]])

    @staticmethod
    def _merge(old, new):
        """Split parcels: a new parcel with an old one's (express_company,
        tracking_no) replaces it (if it differs), others are appended."""
        out = list(old)
        for parcel in new:
            key = (parcel["express_company"], parcel["tracking_no"])
            for i, kept in enumerate(out):
                if (kept["express_company"], kept["tracking_no"]) == key:
                    if dict(kept, upload_time=0) != dict(parcel, upload_time=0):
                        out[i] = parcel
                    break
            else:
                out.append(parcel)
        return out

    def _plan(self, p, openid, instant, delivery):
        """What an upload does to p: (shipping, is a re-ship), or Refusal
        (callers hold the lock)."""
        logistics, mode, all_delivered, parcels = delivery
        if p["openid"] is not None and p["openid"] != openid:
            raise Refusal(ERR_TRADE_NOT_PAYER, "payer.openid is not the payer of the payment")
        if p["order_state"] == 5:
            raise Refusal(ERR_TRADE_NOT_SHIPPABLE, "the payment is refunded (order_state 5)")
        if p["order_state"] in (3, 4, 6):
            raise Refusal(ERR_TRADE_ALL_SHIPPED, "receipt is confirmed (order_state %d): "
                          "the shipping can no longer change" % p["order_state"])
        stamp = int(math.floor(instant))
        fresh = {"delivery_mode": mode, "logistics_type": logistics,
                 "is_all_delivered": all_delivered,
                 "finish_shipping": mode == UNIFIED_DELIVERY or all_delivered is True,
                 "parcels": [dict(x, upload_time=stamp) for x in parcels]}
        cur = p["shipping"]
        if cur is None:
            return fresh, False
        merged = None
        if (mode == SPLIT_DELIVERY and cur["delivery_mode"] == mode
                and cur["logistics_type"] == logistics):
            merged = dict(fresh, parcels=self._merge(cur["parcels"], fresh["parcels"]))
        if self._content(fresh) == self._content(cur) or (
                merged is not None and self._content(merged) == self._content(cur)):
            raise Refusal(ERR_TRADE_UNCHANGED, "nothing to update: the payment's shipping "
                                               "information is the same")
        if p["last_upload_instant"] is not None and instant < p["last_upload_instant"]:
            raise Refusal(ERR_UPLOAD_TIME_FORMAT, "upload_time is earlier than the last "
                          "accepted upload's, %s" % p["last_upload_time"])
        if merged is not None and not cur["finish_shipping"]:
            if len(merged["parcels"]) > TRADE_SHIPPING_LIST_MAX:
                raise Refusal(ERR_TRADE_LIST_TOO_LONG, "the payment would have %d parcels; "
                              "at most %d" % (len(merged["parcels"]), TRADE_SHIPPING_LIST_MAX))
            return merged, False
        if p["reship_used"]:
            raise Refusal(ERR_TRADE_RESHIP_USED, "the payment's one re-ship is used")
        return fresh, True

    @staticmethod
    def _apply(p, openid, text, instant, body, plan):
        shipping, reship = plan
        was_finished = p["shipping"] is not None and p["shipping"]["finish_shipping"]
        p["shipping"] = shipping
        p["reship_used"] = p["reship_used"] or reship
        if p["openid"] is None:
            p["openid"] = openid
        p["uploads_accepted"] += 1
        p.update(last_upload=body, last_upload_time=text, last_upload_instant=instant)
        if p["order_state"] == 1:
            p["order_state"] = 2
        if shipping["finish_shipping"] and (reship or not was_finished):
            p["shipped_time"] = int(math.floor(instant))
            p["estimated_settlement_time"] = p["shipped_time"] + SETTLEMENT_DELAY

    def upload(self, appid, data):
        """upload_shipping_info."""
        ident = order_identity(data, ERR_DATA_FORMAT)
        delivery = check_trade_delivery(data)
        text, instant = upload_time(data, ERR_DATA_FORMAT)
        openid = payer_openid(data, ERR_DATA_FORMAT)
        with self.lock:
            p = self._lookup(appid, ident)
            try:
                plan = self._plan(p, openid, instant, delivery)
            except Refusal:
                p["uploads_refused"] += 1
                raise
            self._apply(p, openid, text, instant, data, plan)
        return {"errcode": 0, "errmsg": "ok"}

    def upload_combined(self, appid, data):
        """upload_combined_shipping_info: every sub-order's upload is checked
        before any is applied."""
        main = order_identity(data, ERR_DATA_FORMAT)
        subs = data.get("sub_orders")
        if not isinstance(subs, list) or not subs:
            raise Refusal(ERR_DATA_FORMAT, "sub_orders must be a non-empty array")
        parsed, seen = [], set()
        for i, sub in enumerate(subs):
            prefix = "sub_orders[%d]." % i
            if not isinstance(sub, dict):
                raise Refusal(ERR_DATA_FORMAT, "sub_orders[%d] must be an object" % i)
            try:
                ident = order_identity(sub, ERR_DATA_FORMAT)
            except Refusal as exc:
                raise Refusal(exc.errcode, prefix + exc.detail)
            if ident[0] != main[0]:
                raise Refusal(ERR_SUB_ORDER_KEY_TYPE, "%sorder_key.order_number_type differs "
                                                      "from the main order_key's" % prefix)
            if ident in seen:
                raise Refusal(ERR_TRADE_SUB_ORDER_REPEATED, "%sorder_key names a sub-order "
                                                            "given before" % prefix)
            seen.add(ident)
            parsed.append((ident, check_trade_delivery(sub, prefix), sub))
        text, instant = upload_time(data, ERR_DATA_FORMAT)
        openid = payer_openid(data, ERR_DATA_FORMAT)
        with self.lock:
            parent = self._lookup(appid, main)
            if parent["openid"] is not None and parent["openid"] != openid:
                raise Refusal(ERR_TRADE_NOT_PAYER, "payer.openid is not the payer of the "
                                                   "payment")
            plans = []
            for i, (ident, delivery, sub) in enumerate(parsed):
                p = self._lookup(appid, ident)
                if p["parent"] != parent["seq"]:
                    if self.auto and p["parent"] is None and p is not parent:
                        p["parent"] = parent["seq"]
                        parent["sub_orders"].append(p["seq"])
                    else:
                        raise Refusal(ERR_TRADE_NOT_FOUND, "sub_orders[%d]: %s is not a "
                                      "sub-order of the combined payment"
                                      % (i, self._describe(ident)))
                try:
                    plans.append((p, sub, self._plan(p, openid, instant, delivery)))
                except Refusal as exc:
                    if exc.errcode == ERR_TRADE_UNCHANGED:
                        continue
                    p["uploads_refused"] += 1
                    raise Refusal(exc.errcode, "sub_orders[%d]: %s" % (i, exc.detail))
            if not plans:
                raise Refusal(ERR_TRADE_UNCHANGED, "nothing to update: every sub-order's "
                                                   "shipping information is the same")
            for p, sub, plan in plans:
                self._apply(p, openid, text, instant, sub, plan)
            if parent["openid"] is None:
                parent["openid"] = openid
            parent["uploads_accepted"] += 1
            parent.update(last_upload=data, last_upload_time=text, last_upload_instant=instant)
        return {"errcode": 0, "errmsg": "ok"}

    def get_order(self, appid, data):
        key = query_key(data)
        with self.lock:
            p = self._lookup(appid, key[:-1], key[-1])
            return {"errcode": 0, "errmsg": "ok", "order": self._order_view(p)}

    def get_order_list(self, appid, data):
        begin, end = 0, 2 ** 32 - 1
        time_range = data.get("pay_time_range")
        if time_range is not None:
            if not isinstance(time_range, dict):
                raise Refusal(ERR_DATA_FORMAT, "pay_time_range must be an object")
            for key in ("begin_time", "end_time"):
                v = time_range.get(key)
                if v is not None and not is_int(v):
                    raise Refusal(ERR_DATA_FORMAT, "pay_time_range.%s must be an integer" % key)
            if time_range.get("begin_time") is not None:
                begin = time_range["begin_time"]
            if time_range.get("end_time") is not None:
                end = time_range["end_time"]
        order_state = data.get("order_state")
        if order_state is not None:
            if not is_int(order_state):
                raise Refusal(ERR_DATA_FORMAT, "order_state must be an integer")
            if not 1 <= order_state <= 6:
                raise Refusal(ERR_TRADE_PARAM, "order_state must be 1 to 6")
        openid = data.get("openid")
        if openid is not None and not isinstance(openid, str):
            raise Refusal(ERR_DATA_FORMAT, "openid must be a string")
        last_index = data.get("last_index")
        if last_index is not None and not isinstance(last_index, str):
            raise Refusal(ERR_DATA_FORMAT, "last_index must be a string")
        offset = 0
        if last_index:
            if (not re.fullmatch(r"[0-9a-f]{18}", last_index)
                    or int(last_index[:8], 16) != self.salt):
                raise Refusal(ERR_TRADE_LAST_INDEX, "last_index is not one this stub gave")
            offset = int(last_index[8:], 16)
        size = data.get("page_size")
        if size is None:
            size = TRADE_PAGE_SIZE
        elif not is_int(size):
            raise Refusal(ERR_DATA_FORMAT, "page_size must be an integer")
        elif size < 1:
            raise Refusal(ERR_TRADE_PARAM, "page_size must be at least 1")
        now = time.monotonic()
        with self.lock:
            rows = [p for p in sorted(self.payments.values(),
                                      key=lambda p: (p["pay_time"], p["seq"]))
                    if p["appid"] in (None, appid) and p["lookups_to_fail"] == 0
                    and (p["visible_at"] is None or now >= p["visible_at"])
                    and begin <= p["pay_time"] <= end
                    and (order_state is None or p["order_state"] == order_state)
                    and (not openid or p["openid"] == openid)]
            page = rows[offset:offset + size]
            following = offset + len(page)
            return {"errcode": 0, "errmsg": "ok",
                    "last_index": "%08x%010x" % (self.salt, following),
                    "has_more": following < len(rows),
                    "order_list": [self._order_view(p) for p in page]}

    def notify(self, appid, data):
        """notify_confirm_receive."""
        key = query_key(data)
        received = data.get("received_time")
        if not is_int(received):
            raise Refusal(ERR_DATA_FORMAT, "received_time is required, an integer")
        with self.lock:
            p = self._lookup(appid, key[:-1], key[-1])
            if p["received_time"] is not None:
                raise Refusal(ERR_TRADE_REMINDER_USED, "the payment's receipt reminder was "
                                                       "sent already")
            s = p["shipping"]
            if p["order_state"] != 2 or s is None or not s["finish_shipping"]:
                raise Refusal(ERR_TRADE_NOT_SHIPPED, "the payment is not shipped (order_state "
                              "%d%s)" % (p["order_state"], ", shipping not finished"
                                         if s is not None and not s["finish_shipping"] else ""))
            if s["logistics_type"] != LOGISTICS_EXPRESS:
                raise Refusal(ERR_TRADE_REMINDER_NOT_EXPRESS, "logistics_type is %d, not 1 "
                              "(express)" % s["logistics_type"])
            if not 0 < received < 10 ** 10:
                raise Refusal(ERR_TRADE_RECEIVED_TIME, "received_time must be a Unix time "
                                                       "in seconds")
            if p["shipped_time"] is not None and received < p["shipped_time"]:
                raise Refusal(ERR_TRADE_RECEIVED_TIME, "received_time %d is before the "
                              "shipping time %d" % (received, p["shipped_time"]))
            p["received_time"] = received
        return {"errcode": 0, "errmsg": "ok"}

    def special(self, appid, data):
        """opspecialorder."""
        order_id = data.get("order_id")
        if not isinstance(order_id, str) or not order_id:
            raise Refusal(ERR_DATA_FORMAT, "order_id is required, a string")
        kind = data.get("type")
        if not is_int(kind) or kind not in (1, 2):
            raise Refusal(ERR_SPECIAL_TYPE, "type must be 1 (pre-sale) or 2 (test)")
        delay_to = data.get("delay_to")
        if kind == 1 and not is_int(delay_to):
            raise Refusal(ERR_SPECIAL_DELAY_TO, "delay_to is required for type 1, a timestamp")
        with self.lock:
            found = [p for p in self.payments.values()
                     if p["appid"] in (None, appid)
                     and order_id in (p["transaction_id"], p["out_trade_no"])]
            if not found or self._hidden(found[0]):
                raise Refusal(ERR_SPECIAL_NO_ORDER, "no payment %s" % order_id)
            p = found[0]
            if p["shipping"] is not None or p["order_state"] != 1:
                raise Refusal(ERR_SPECIAL_NO_ORDER, "payment %s is not awaiting shipment"
                              % order_id)
            if kind == 1 and not (p["pay_time"] + PRESALE_MIN <= delay_to
                                  <= p["pay_time"] + PRESALE_MAX):
                raise Refusal(ERR_SPECIAL_DELAY_TO, "delay_to must lie 15 to 330 days after "
                                                    "pay_time %d" % p["pay_time"])
            p["special"] = {"type": kind, "delay_to": delay_to if kind == 1 else None}
        return {"errcode": 0, "errmsg": "ok"}

    @staticmethod
    def delivery_list():
        return {"errcode": 0, "errmsg": "ok",
                "delivery_list": [{"delivery_id": i, "delivery_name": n}
                                  for i, n in DELIVERY_COMPANIES],
                "count": len(DELIVERY_COMPANIES)}


class BadRequest(Exception):
    """A request that cannot be read: answered with (status, message), then close."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class Handler(http.server.BaseHTTPRequestHandler):
    """One connection; requests on it are served in turn (keep-alive)."""

    protocol_version = "HTTP/1.1"
    timeout = CONNECTION_TIMEOUT

    def version_string(self):
        return "wechat-stub/1.0"

    # ---- plumbing --------------------------------------------------------------

    def log_message(self, format, *args):
        if self.server.verbose:
            sys.stderr.write("wechat_stub: %s - %s\n"
                             % (self.address_string(), format % args))

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError, ssl.SSLError, OSError) as exc:
            # The client went away mid-request: nothing to answer.
            self.close_connection = True
            self.log_message("connection error: %r", exc)

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionResetError("EOF in chunked body")
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise BadRequest(400, "bad chunk size")
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass                     # skip trailers
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    raise BadRequest(413, "body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()            # CRLF after the chunk
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            length = int(length)
        except ValueError:
            raise BadRequest(400, "bad Content-Length")
        if length < 0:
            raise BadRequest(400, "bad Content-Length")
        if length > MAX_BODY:
            raise BadRequest(413, "body too large")
        body = self.rfile.read(length)
        if len(body) < length:
            raise ConnectionResetError("EOF in body")
        return body

    def _send(self, status, ctype, body):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _send_json(self, status, obj):
        self._send(status, "application/json; charset=utf-8",
                   json.dumps(obj, ensure_ascii=False).encode("utf-8"))

    def _drop(self):
        """Close the connection without answering."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ---- dispatch ----------------------------------------------------------

    def _handle(self):
        state = self.server.state
        arrival = time.time()
        try:
            body = self._read_body()
        except BadRequest as exc:
            self.close_connection = True
            self._send_json(exc.status, {"error": str(exc)})
            return
        target = urllib.parse.urlsplit(self.path)
        path = target.path
        if path.startswith(CONTROL_PREFIX):
            self._control(path, target.query, body)
            return

        seq, generation = state.begin_request()
        fault = state.take_fault(path, state.request_appid(path, target.query, body)
                                 if state.faults_by_appid() else None)
        if fault is not None and fault["delay_ms"]:
            time.sleep(fault["delay_ms"] / 1000.0)
        query = self._query(target.query)
        answer = self._api_answer(path, query, body, fault)
        headers = {}
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = value if name not in headers else headers[name] + ", " + value
        state.record({"seq": seq, "time": arrival, "done": time.time(),
                      "method": self.command,
                      "path": path, "target": self.path, "query": query,
                      "headers": headers,
                      "body": body.decode("utf-8", errors="replace"),
                      "fault": fault["kind"] if fault else None,
                      "errcode": answer.errcode, "answer": answer.for_record()},
                     generation)
        if answer.drop:
            self._drop()
            return
        ctype, data = answer.encode()
        self._send(answer.status, ctype, data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    @staticmethod
    def _query(query_string):
        out = {}
        for key, values in urllib.parse.parse_qs(query_string,
                                                 keep_blank_values=True).items():
            out[key] = values[0] if len(values) == 1 else values
        return out

    # ---- the imitated API ----------------------------------------------------

    def _api_answer(self, path, query, body, fault):
        """The Answer for an API request, faults applied."""
        state = self.server.state
        token = query.get("access_token")
        if isinstance(token, list):
            token = token[0]
        if fault is not None:
            kind = fault["kind"]
            if kind.startswith("errcode:"):
                code = int(kind[len("errcode:"):])
                if code in TOKEN_KILLING_ERRCODES and token is not None:
                    state.invalidate_token(token)
                return Answer(json_obj=wechat_error(code))
            if kind == "http500":
                return Answer(500, text=HTML_500)
            if kind == "http502":
                return Answer(502, text=HTML_502)
            if kind == "notjson":
                return Answer(200, text="<html>oops</html>")
            if kind == "drop":
                return Answer(drop=True)
            if kind == "badutf8":
                return Answer(raw=BADUTF8_BODY, errcode=-1)
            if kind.startswith("badutf8:"):
                code = int(kind[len("badutf8:"):])
                if code in TOKEN_KILLING_ERRCODES and token is not None:
                    state.invalidate_token(token)
                msg = ERRMSGS.get(code, "stub error %d" % code)
                raw = (json.dumps({"errcode": code})[:-1]
                       + ',"errmsg":"%s ' % msg.replace('"', "'")).encode("utf-8") \
                    + b"\xff" + (' rid: %s"}' % new_rid()).encode("utf-8")
                return Answer(raw=raw, errcode=code)
            if kind.startswith("long_errmsg:"):
                n = int(kind[len("long_errmsg:"):])
                return Answer(raw=(b'{"errcode":-1,"errmsg":"' + b"x" * n
                                   + (' rid: %s"}' % new_rid()).encode("utf-8")),
                              errcode=-1)
            if kind == "long_token" or kind.startswith("long_token:"):
                n = int(kind.partition(":")[2] or DEFAULT_LONG_TOKEN)
                tok = (secrets.token_urlsafe(n) * 2)[:n]
                return Answer(json_obj={"access_token": tok, "expires_in": 7200})
            if kind == "no_token":
                return Answer(raw=b'{"errcode":0}')
            if kind.startswith("expires_in:"):
                answer = (self._stable_token(body)
                          if self.command == "POST" and path == TOKEN_PATH
                          else {"access_token": "stub_not_a_token"})
                if "access_token" not in answer:
                    return Answer(json_obj=answer)
                raw = ('{"access_token":%s,"expires_in":%s}'
                       % (json.dumps(answer["access_token"]),
                          kind[len("expires_in:"):])).encode("utf-8")
                return Answer(raw=raw)
            # "delay": already slept; answer normally.

        if self.command == "POST" and path == TOKEN_PATH:
            return Answer(json_obj=self._stable_token(body))
        if self.command == "POST" and path in (UPLOAD_PATH, VERIFY_PATH,
                                               SHIPPINGS_PATH):
            if not state.token_valid(token):
                return Answer(json_obj=wechat_error(40001))
            data = self._json_body(body)
            if not isinstance(data, dict):
                return Answer(json_obj=wechat_error(47001))
            try:
                if path == VERIFY_PATH:
                    return Answer(json_obj=self._verify(data))
                if path == SHIPPINGS_PATH:
                    return Answer(json_obj=self._shippings(data))
            except Refusal as exc:
                return Answer(json_obj=exc.answer())
            try:
                ident = order_identity(data)
            except Refusal:
                ident = None        # accepted, but names no order to remember
            if ident is not None:
                state.remember_upload(ident, data)
            return Answer(json_obj={"errcode": 0, "errmsg": "ok"})
        if self.command == "POST" and path in TRADE_PATHS:
            return self._trade_answer(path, token, body)
        return Answer(404, json_obj={"error": "not found", "method": self.command,
                                     "path": path})

    def _trade_answer(self, path, token, body):
        """The Answer to a call of the order shipping management service (or
        get_delivery_list); no fault applies any more."""
        state = self.server.state
        trade = state.trade
        appid = state.token_appid(token)
        if appid is None:
            return Answer(json_obj=wechat_error(40001))
        if path in TRADE_MANAGED_ONLY and not trade.managed(appid):
            return Answer(json_obj=wechat_error(ERR_API_UNAUTHORIZED))
        data = self._json_body(body)
        if not isinstance(data, dict):
            return Answer(json_obj=wechat_error(ERR_DATA_FORMAT))
        try:
            answer = TRADE_CALLS[path](trade, appid, data)
        except Refusal as exc:
            return Answer(json_obj=exc.answer())
        return Answer(json_obj=answer)

    def _verify(self, data):
        """The answer to a verify body (a dict); Refusal if malformed (every
        malformed value is 268435461 there: the stub's choice)."""
        try:
            ident = order_identity(data)
            openid = payer_openid(data)
        except Refusal as exc:
            raise Refusal(ERR_PARAM, exc.detail)
        return {"errcode": 0, "errmsg": "ok",
                "verify_result": self.server.state.verify(ident, openid)}

    def _shippings(self, data):
        """The answer to a shippings body (a dict); Refusal if refused."""
        ident = order_identity(data)
        openid = payer_openid(data)
        text, instant = upload_time(data)
        _, refs = check_shipping_body(data)
        self.server.state.accept_shipping(ident, openid, text, instant, data, refs)
        return {"errcode": 0, "errmsg": "ok"}

    @staticmethod
    def _json_body(body):
        """The decoded JSON body, or None if it is not JSON in UTF-8."""
        try:
            return json.loads(body.decode("utf-8"))
        except ValueError:          # UnicodeDecodeError and JSONDecodeError
            return None

    def _stable_token(self, body):
        state = self.server.state
        data = self._json_body(body)
        if not isinstance(data, dict):
            return wechat_error(47001)
        if data.get("grant_type") != "client_credential":
            return wechat_error(40002)
        appid, secret = data.get("appid"), data.get("secret")
        if (not isinstance(appid, str) or not isinstance(secret, str)
                or state.accounts.get(appid) != secret):
            return wechat_error(40125)
        token, expires_in = state.stable_token(appid, data.get("force_refresh") is True)
        return {"access_token": token, "expires_in": expires_in}

    # ---- control API -----------------------------------------------------------

    def _control(self, path, query_string, body):
        state = self.server.state
        method = self.command
        try:
            data = None
            if method == "POST" and body.strip():
                data = self._json_body(body)
                if data is None:
                    raise ControlError("body is not JSON")
            if method == "GET" and path == "/__stub/requests":
                query = urllib.parse.parse_qs(query_string)
                try:
                    since = int(query.get("since", ["0"])[0])
                except ValueError:
                    raise ControlError("'since' must be an integer")
                result = state.list_records(query.get("path", [None])[0], since)
            elif method == "GET" and path == "/__stub/stats":
                result = state.stats()
            elif method == "GET" and path == "/__stub/faults":
                result = state.list_faults()
            elif method == "GET" and path == "/__stub/tokens":
                result = state.current_tokens()
            elif method == "POST" and path == "/__stub/reset":
                if data is not None and not isinstance(data, dict):
                    raise ControlError("reset takes a JSON object")
                state.reset(tokens=bool(data and data.get("tokens") is True),
                            orders=bool(data and data.get("orders") is True),
                            trade=not (data and data.get("trade") is False))
                result = {"ok": True}
            elif method == "GET" and path == "/__stub/orders":
                result = state.list_orders()
            elif method == "GET" and path == "/__stub/verify_result":
                result = state.verify_config()
            elif method == "POST" and path == "/__stub/verify_result":
                result = state.set_verify(data)
            elif method == "POST" and path == "/__stub/fault":
                result = state.add_fault(data)
            elif method == "POST" and path == "/__stub/faults/clear":
                result = {"ok": True, "cleared": state.clear_faults()}
            elif method == "GET" and path == "/__stub/trade/payments":
                result = state.trade.list_payments()
            elif method == "POST" and path == "/__stub/trade/payments":
                result = state.trade.register(data)
            elif method == "POST" and path == "/__stub/trade/state":
                result = state.trade.set_state(data)
            elif method == "GET" and path == "/__stub/trade/config":
                result = state.trade.config()
            elif method == "POST" and path == "/__stub/trade/config":
                result = state.trade.set_config(data)
            elif method == "POST" and path == "/__stub/trade/event":
                result = state.trade.event(data)
            else:
                self._send_json(404, {"error": "no control endpoint %s %s"
                                      % (method, path)})
                return
        except ControlError as exc:
            self._send_json(400, {"error": str(exc)})
            return
        self._send_json(200, result)


class StubServer(http.server.ThreadingHTTPServer):
    """Threaded server; with a TLS context, each connection's handshake runs in
    its own thread, so a client that never completes one blocks nobody."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address, state, ssl_context=None, verbose=False):
        self.state = state
        self.ssl_context = ssl_context
        self.verbose = verbose
        super().__init__(address, Handler)

    def finish_request(self, request, client_address):
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        try:
            request.settimeout(HANDSHAKE_TIMEOUT)
            conn = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            if self.verbose:
                sys.stderr.write("wechat_stub: TLS handshake failed: %r\n" % exc)
            return
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def handle_error(self, request, client_address):
        # A client dropping its connection is routine here: stay quiet.
        if self.verbose:
            super().handle_error(request, client_address)


def parse_accounts(text):
    accounts = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        appid, sep, secret = item.partition(":")
        if not sep or not appid or not secret:
            raise ValueError("account %r is not appid:secret" % item)
        accounts[appid] = secret
    if not accounts:
        raise ValueError("no accounts given")
    return accounts


def write_port_file(path, port):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def remove_port_file(path, port):
    """Remove the port file unless another stub has written it since."""
    try:
        with open(path) as f:
            if f.read().strip() == str(port):
                os.unlink(path)
    except OSError:
        pass


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Stand-in WeChat API server for the shopping_upload tests "
                    "(see the module docstring for the control API).")
    parser.add_argument("--host", default="127.0.0.1",
                        help="must be 127.0.0.1 (the only address served)")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    parser.add_argument("--port-file", help="write the chosen port here")
    parser.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", help="private key of --tls-cert (PEM)")
    parser.add_argument("--accounts", default="wxtestappid:testsecret",
                        help="appid:secret[,appid:secret...]")
    parser.add_argument("--token-ttl", type=int, default=7200,
                        help="access token lifetime in seconds")
    parser.add_argument("--log", help="append each recorded request to FILE (JSON lines)")
    parser.add_argument("--seed", type=int, help="seed for fraction faults")
    parser.add_argument("--auto-payments", action="store_true",
                        help="/wxa/sec/order: every payment exists without registration")
    parser.add_argument("--verbose", action="store_true",
                        help="log requests and connection errors to stderr")
    args = parser.parse_args(argv)

    if args.host != "127.0.0.1":
        parser.error("refusing --host %s: the stub binds 127.0.0.1 only" % args.host)
    if not 0 <= args.port <= 65535:
        parser.error("--port must be 0..65535")
    if args.token_ttl < 1:
        parser.error("--token-ttl must be at least 1")
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    try:
        accounts = parse_accounts(args.accounts)
    except ValueError as exc:
        parser.error("--accounts: %s" % exc)

    try:
        ssl_context = None
        if args.tls_cert:
            ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ssl_context.load_cert_chain(args.tls_cert, args.tls_key)
            ssl_context.set_alpn_protocols(["http/1.1"])
        log_file = open(args.log, "a", encoding="utf-8") if args.log else None
        state = StubState(accounts, args.token_ttl, log_file, args.seed,
                          args.auto_payments)
        server = StubServer((args.host, args.port), state, ssl_context, args.verbose)
    except (OSError, ssl.SSLError) as exc:
        sys.stderr.write("wechat_stub: %s\n" % exc)
        return 1
    port = server.server_address[1]

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    if args.port_file:
        write_port_file(args.port_file, port)
    try:
        print("listening on %s://127.0.0.1:%d"
              % ("https" if ssl_context else "http", port), flush=True)
    except OSError:
        pass                    # stdout closed: the port file is enough

    serving = threading.Thread(target=server.serve_forever,
                               kwargs={"poll_interval": 0.2}, daemon=True)
    serving.start()
    while not stop.wait(1.0):
        pass
    server.shutdown()
    server.server_close()
    if args.port_file:
        remove_port_file(args.port_file, port)
    if log_file is not None:
        log_file.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
