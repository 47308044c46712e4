#!/usr/bin/env python3
"""Writes the hand-made edge cases of the seed corpus: edge-NAME.json in the
folder given (make_corpus.sh calls it with test/fuzz/corpus).

Raw bytes, not json.dumps: the point is the exact text json-c sees (number
literals, invalid UTF-8, \\u0000, comments, trailing bytes).
"""
import os
import sys

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")

LINK_MP = b'{"type":"MINI_PROGRAM","appid":"wxmerchantapp","path":"/pages/item?sku=1"}'
LINK_URL = b'{"type":"URL","url":"https://shop.example.com/item/1"}'


def item(iid=b'"sku-1"', name=b'"Green tea"', price=b"1999", qty=b"2",
         images=b'["https://img.example.com/a.png"]', link=LINK_MP, extra=b""):
    return (b'{"merchant_item_id":' + iid + b',"name":' + name +
            b',"description":"250g","unit_price":' + price + b',"quantity":' + qty +
            b',"image_url":' + images + b',"item_detail_jump_link":' + link + extra + b"}")


def order(items, no=b'"sub-1"', link=LINK_MP):
    return (b'{"merchant_order_no":' + no + b',"order_detail_jump_link":' + link +
            b',"item_list":[' + b",".join(items) + b"]}")


def payload(orders=None, key=None, payer=b'{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}',
            logistics=b"1", upload_time=b'"2022-05-20T13:29:35.120+08:00"', extra=b""):
    if orders is None:
        orders = [order([item()])]
    if key is None:
        key = b'{"order_number_type":1,"mchid":"1230000109","out_trade_no":"NO_1001-a*b|c"}'
    return (b'{"order_key":' + key + b',"order_list":[' + b",".join(orders) +
            b'],"payer":' + payer + b',"logistics_type":' + logistics +
            b',"upload_time":' + upload_time + extra + b"}")


def with_item(**kw):
    return payload([order([item(**kw)])])


cases = {}

# nesting: around the default depth (32) and the harness's explicit one (64)
for d in (31, 32, 33, 63, 64, 65, 200):
    cases["deep-array-%d" % d] = b"[" * d + b"]" * d
cases["deep-object-40"] = b'{"a":' * 40 + b"{}" + b"}" * 40
cases["deep-in-payload-40"] = payload(extra=b',"remark":' + b"[" * 38 + b"]" * 38)
cases["deep-order-list"] = payload(orders=[b"[" * 30 + b"]" * 30])
cases["deep-image-url"] = with_item(images=b"[" + b"[" * 20 + b"]" * 20 + b"]")

# list lengths: 50 items is the limit; 60 distinct, 60 repeated; many orders
cases["items-50"] = payload([order([item(iid=b'"sku-%d"' % i) for i in range(50)])])
cases["items-60"] = payload([order([item(iid=b'"sku-%d"' % i) for i in range(60)])])
cases["items-60-repeated"] = payload([order([item(iid=b'"sku-%d"' % (i % 7)) for i in range(60)])])
cases["items-60-no-name-past-50"] = payload([order(
    [item(iid=b'"sku-%d"' % i, name=(b'""' if i >= 50 else b'"Tea"')) for i in range(60)])])
cases["orders-200-repeated"] = payload([
    b'{"merchant_order_no":"o-%d","item_list":[1]}' % (i % 13) for i in range(200)])
cases["images-5"] = with_item(images=b'["https://a.cn/1","https://a.cn/2","https://a.cn/3","a.png",4]')

# numbers as unit_price / quantity: integers, doubles, out of range, signs
for name, lit in {
    "1e308": b"1e308", "1e309": b"1e309", "-1e-308": b"-1e-308",
    "int64-max": b"9223372036854775807", "int64-max+1": b"9223372036854775808",
    "int64-min": b"-9223372036854775808", "int64-min-1": b"-9223372036854775809",
    "uint64-max": b"18446744073709551615", "uint64-max+1": b"18446744073709551616",
    "30-digits": b"123456789012345678901234567890",
    "minus-zero": b"-0", "minus-zero-double": b"-0.0", "1.5": b"1.5", "2.0": b"2.0",
    "1E2": b"1E2", "NaN": b"NaN", "Infinity": b"Infinity", "-Infinity": b"-Infinity",
    "leading-zero": b"007", "true": b"true", "string": b'"1999"',
}.items():
    cases["unit-price-" + name] = with_item(price=lit)
    cases["quantity-" + name] = with_item(qty=lit)
cases["order-number-type-int64-max+1"] = payload(
    key=b'{"order_number_type":9223372036854775809,"mchid":"1","out_trade_no":"abcdef"}')
cases["order-number-type-4294967297"] = payload(
    key=b'{"order_number_type":4294967297,"mchid":"1","out_trade_no":"abcdef"}')
cases["logistics-type-2^32+2"] = payload(logistics=b"4294967298")
cases["logistics-type-minus-0"] = payload(logistics=b"-0")

# invalid UTF-8 and odd bytes inside strings
cases["utf8-invalid-name"] = with_item(name=b'"\xff\xfe\xc0\xaf tea"')
cases["utf8-continuations-out-trade-no"] = payload(
    key=b'{"order_number_type":1,"mchid":"1","out_trade_no":"\x80\x80\x80\x80\x80\x80\x80"}')
cases["utf8-truncated-name"] = with_item(name=b'"\xe4\xb8"')
cases["utf8-overlong-item-id"] = with_item(iid=b'"\xc0\x80\xe0\x80\x80"')
cases["utf8-4byte-name"] = with_item(name=b'"\xf0\x9f\x8d\xb5 tea"')
cases["latin1-openid"] = payload(payer=b'{"openid":"caf\xe9"}')

# \u0000 and escapes
cases["nul-item-ids"] = payload([order([item(iid=b'"a\\u0000b"'), item(iid=b'"a\\u0000c"'),
                                        item(iid=b'"a\\u0000b"'), item(iid=b'"a"')])])
cases["nul-out-trade-no"] = payload(
    key=b'{"order_number_type":1,"mchid":"1","out_trade_no":"ABCDEF\\u0000"}')
cases["nul-upload-time"] = payload(upload_time=b'"2022-05-20T13:29:35Z\\u0000"')
cases["nul-in-key"] = payload(extra=b',"order_key\\u0000x":{}')
cases["nul-url"] = with_item(images=b'["https://a.cn/\\u0000[x]"]')
cases["nul-type"] = with_item(link=b'{"type":"URL\\u0000","url":"https://a.cn"}')
cases["surrogates"] = with_item(name=b'"\\ud83c\\udf75 \\ud800 \\udfff \\u00e9"')
cases["escapes"] = with_item(name=b'"\\t\\n\\r\\b\\f\\/\\\\\\"x"')
cases["raw-nul-byte"] = payload() + b"\x00garbage"
cases["raw-control-in-string"] = with_item(name=b'"tea\x01\x1f"')

# string lengths around the limits
cases["name-256-chars"] = with_item(name=b'"' + "中".encode() * 256 + b'"')
cases["name-257-chars"] = with_item(name=b'"' + "中".encode() * 257 + b'"')
cases["url-1025"] = with_item(images=b'["https://a.cn/' + b"a" * 1011 + b'"]')
cases["item-id-long"] = with_item(iid=b'"' + b"s" * 300 + b'"')

# links
cases["links-mixed"] = payload([order([item(link=LINK_URL), item(iid=b'"sku-2"'),
                                       item(iid=b'"sku-3"', link=b'{"type":2,"appid":"wxother","path":"/x"}')],
                                      link=b'{"type":1,"url":"https://u:p@[::1]:8080/a"}')])
cases["link-appid-long"] = with_item(link=b'{"type":"MINI_PROGRAM","appid":"' + b"w" * 40 + b'","path":"/p"}')
cases["url-userinfo"] = with_item(images=b'["http://a@b@c/x","https://@x","http://x:99999/[","http:// x"]')

# upload_time
for name, t in {"leap-2000": b"2000-02-29T23:59:60Z", "no-leap-1900": b"1900-02-29T00:00:00Z",
                "long-fraction": b"2022-05-20T13:29:35." + b"9" * 400 + b"+08:00",
                "lower": b"2022-05-20t13:29:35z", "month-13": b"2022-13-01T00:00:00Z",
                "digits-9999": b"9999-12-31T23:59:59-23:59"}.items():
    cases["upload-time-" + name] = payload(upload_time=b'"' + t + b'"')

# json-c's non-strict syntax, duplicates, trailing bytes, top-level scalars
cases["comments"] = b"/* c */ " + payload() + b" // end"
cases["single-quotes"] = b"{'order_key':{'order_number_type':'WXPAY_TRADE_NUMBER','transaction_id':'42'}}"
cases["duplicate-keys"] = payload(extra=b',"order_list":[],"payer":"x","order_list":[{"merchant_order_no":"a"}]')
cases["trailing-object"] = payload() + b'{"x":1}'
cases["trailing-space"] = payload() + b" \n"
cases["truncated"] = payload()[:-7]
cases["empty"] = b""
cases["ws-only"] = b" \t\n"
cases["null"] = b"null"
cases["bare-number"] = b"42"
cases["bare-string"] = b'"{}"'
cases["empty-object"] = b"{}"
cases["all-null"] = b'{"order_key":null,"order_list":null,"payer":null,"logistics_type":null,"upload_time":null}'
cases["wrong-types"] = (b'{"order_key":[],"order_list":{},"payer":1,"logistics_type":"x",'
                        b'"upload_time":false}')

os.makedirs(out, exist_ok=True)
for name, data in cases.items():
    with open(os.path.join(out, "edge-%s.json" % name), "wb") as f:
        f.write(data)
print("make_edge_cases.py: %d edge cases" % len(cases))
