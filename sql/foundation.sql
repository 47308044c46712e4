--
-- The extension, its tables, import_order() and build_payload()
--
SET client_min_messages = warning;
SET TimeZone = 'Asia/Shanghai';

SELECT extname, extversion, n.nspname, extrelocatable
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE extname = 'shopping_upload';
SELECT relname FROM pg_class
 WHERE relnamespace = 'shopping_upload'::regnamespace AND relkind = 'r'
 ORDER BY relname;

-- settings: the prefix is reserved, so a typo is an error
SHOW shopping_upload.auto_upload;
SET shopping_upload.auto_uplaod = off;
SET shopping_upload.appid = 'wxmerchantapp';
SHOW shopping_upload.appid;

-- nothing is granted to PUBLIC (but EXECUTE on audit_rows_deleted(), a count
-- that the stats view shows)
SELECT count(*) AS public_grants
  FROM information_schema.role_table_grants
 WHERE table_schema = 'shopping_upload' AND grantee = 'PUBLIC';
SELECT count(*) > 5 AS has_functions, count(*) FILTER (
         WHERE has_function_privilege('public', p.oid, 'EXECUTE')
           AND p.proname NOT IN ('audit_rows_deleted', 'claim_waits', 'worker_status',
                                 'writer_limited', 'appid_allowed', 'order_allowed')) AS public_execute
  FROM pg_proc p WHERE p.pronamespace = 'shopping_upload'::regnamespace;

-- a complete, valid order
SELECT shopping_upload.import_order($${
  "order_key": {"order_number_type": 1, "mchid": "1230000109", "out_trade_no": "NO_1001*a|b"},
  "upload_time": "2022-05-20T13:29:35.120+08:00",
  "order_list": [{
    "merchant_order_no": "sub-1",
    "order_detail_jump_link": {"type": "MINI_PROGRAM", "appid": "wxmerchantapp", "path": "/pages/order?id=1"},
    "item_list": [
      {"merchant_item_id": "sku-1", "name": "绿茶 Green tea", "description": "一盒 250g",
       "unit_price": 1999, "quantity": 2,
       "image_url": ["https://img.example.com/a.png", "http://img.example.com:8080/b.png"],
       "item_detail_jump_link": {"type": "MINI_PROGRAM", "appid": "wxmerchantapp", "path": "/pages/item?sku=1"}},
      {"merchant_item_id": "sku-2", "name": "Cup", "unit_price": 500, "quantity": 1,
       "image_url": ["https://img.example.com/c.png"],
       "item_detail_jump_link": {"type": "MINI_PROGRAM", "appid": "wxmerchantapp", "path": "/pages/item?sku=2"}}
    ]}],
  "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
  "logistics_type": 1
}$$) AS id \gset

SELECT order_id = :id AS same_id, appid, order_number_type, transaction_id, mchid,
       out_trade_no, openid, logistics_type
  FROM shopping_upload.orders;
SELECT * FROM shopping_upload.sub_orders ORDER BY 1, 2;
SELECT * FROM shopping_upload.items ORDER BY 1, 2, 3;

-- the wire form: upload_time is now, RFC 3339 with milliseconds and an offset
SELECT jsonb_pretty(shopping_upload.build_payload(:id) - 'upload_time');
SELECT shopping_upload.build_payload(:id) ->> 'upload_time'
       ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+08:00$' AS rfc3339_beijing;
SET TimeZone = 'UTC';
SELECT shopping_upload.build_payload(:id) ->> 'upload_time' ~ '\.\d{3}\+00:00$' AS numeric_utc_offset;
SELECT abs(extract(epoch FROM ((shopping_upload.build_payload(:id) ->> 'upload_time')::timestamptz
       - clock_timestamp()))) < 5 AS is_now;
SET TimeZone = 'America/St_Johns';
SELECT shopping_upload.build_payload(:id) ->> 'upload_time' ~ '-0[23]:30$' AS half_hour_offset;
SET TimeZone = 'Asia/Shanghai';
SELECT * FROM shopping_upload.validate_order(:id);

-- round trip: import(build(x)) stores x again, under the same id
SELECT shopping_upload.import_order(shopping_upload.build_payload(:id)) = :id AS same_order;
SELECT (shopping_upload.build_payload(:id) - 'upload_time')
     = (SELECT shopping_upload.build_payload(:id) - 'upload_time') AS stable;

-- upsert by order key: same key and appid replace the content, keep the id
SELECT shopping_upload.import_order($${
  "order_key": {"order_number_type": "MERCHANT_TRADE_NUMBER", "mchid": "1230000109", "out_trade_no": "NO_1001*a|b"},
  "order_list": [{"merchant_order_no": "sub-9",
    "order_detail_jump_link": {"type": 1, "url": "https://shop.example.com/o/9"},
    "item_list": [{"merchant_item_id": "sku-9", "name": "Pot", "unit_price": 7000, "quantity": 1,
      "image_url": ["https://img.example.com/p.png"],
      "item_detail_jump_link": {"type": 1, "url": "https://shop.example.com/i/9"}}]}],
  "payer": {"openid": "o-new"},
  "logistics_type": "LOCATION_BASED_LOGISTICS"
}$$) = :id AS replaced_same_id;
SELECT count(*) AS orders FROM shopping_upload.orders;
SELECT jsonb_pretty(shopping_upload.build_payload(:id) - 'upload_time');
SELECT * FROM shopping_upload.validate_order(:id);

-- the same key under another appid is another order
SELECT shopping_upload.import_order(shopping_upload.build_payload(:id), 'wxotherapp') <> :id AS new_order;
-- type 2 keys upsert on transaction_id
SELECT shopping_upload.import_order('{"order_key": {"order_number_type": 2, "transaction_id": "4200001"}}') AS t2 \gset
SELECT shopping_upload.import_order('{"order_key": {"order_number_type": "WXPAY_TRADE_NUMBER", "transaction_id": "4200001"}, "payer": {"openid": "x"}}') = :t2 AS same_t2;
SELECT openid FROM shopping_upload.orders WHERE order_id = :t2;
SELECT count(*) AS orders FROM shopping_upload.orders;

-- an order key of at most 1,000 bytes (appid, mchid and out_trade_no
-- together) is indexed as it is, a longer one by its digests: each upserts
-- on its own index, and import_shipping() finds it
CREATE TEMP TABLE keylen AS
SELECT appid, n,
	   shopping_upload.import_order(jsonb_build_object('order_key', jsonb_build_object(
		 'order_number_type', 1, 'mchid', '1230000109', 'out_trade_no', repeat('k', n)))
		 , appid) AS id
  FROM (VALUES (NULL, 990), (NULL, 991), ('wxotherapp', 980), ('wxotherapp', 981),
			   (NULL, 10000)) v(appid, n);
SELECT k.appid, k.n,
	   shopping_upload.import_order(jsonb_build_object('order_key', jsonb_build_object(
		 'order_number_type', 1, 'mchid', '1230000109', 'out_trade_no', repeat('k', n)),
		 'payer', jsonb_build_object('openid', 'again')), k.appid) = k.id AS same_order,
	   shopping_upload.import_shipping(jsonb_build_object('order_key', jsonb_build_object(
		 'order_number_type', 1, 'mchid', '1230000109', 'out_trade_no', repeat('k', n)),
		 'delivery_mode', 1, 'shipping_list', '[]'::jsonb), k.appid) = k.id AS shipping_finds_it,
	   (SELECT octet_length(coalesce(o.appid, '')) + octet_length(o.mchid)
			   + octet_length(o.out_trade_no) FROM shopping_upload.orders o
		 WHERE o.order_id = k.id) AS key_bytes
  FROM keylen k ORDER BY k.id;
-- the same for transaction_id
SELECT n, shopping_upload.import_order(jsonb_build_object('order_key', jsonb_build_object(
		 'order_number_type', 2, 'transaction_id', repeat('4', n))))
	   = shopping_upload.import_order(jsonb_build_object('order_key', jsonb_build_object(
		 'order_number_type', 2, 'transaction_id', repeat('4', n)))) AS same_order
  FROM (VALUES (1000), (1001), (5000)) v(n);
-- a key made longer by hand moves to the other index, and stays unique there
\set VERBOSITY terse
UPDATE shopping_upload.orders SET out_trade_no = repeat('k', 991)
 WHERE order_id = (SELECT id FROM keylen WHERE appid IS NULL AND n = 990);
UPDATE shopping_upload.orders SET out_trade_no = repeat('k', 990)
 WHERE order_id = (SELECT id FROM keylen WHERE appid IS NULL AND n = 10000);
\set VERBOSITY default
SELECT count(*) AS orders FROM shopping_upload.orders;
DELETE FROM shopping_upload.orders
 WHERE order_id IN (SELECT id FROM keylen) OR order_number_type = 2 AND octet_length(transaction_id) >= 1000;

-- orders that break WeChat's rules are stored all the same, and validate_order says why
SELECT shopping_upload.import_order('{"order_key": {"order_number_type": 7}, "logistics_type": 9,
  "order_list": [{"item_list": [{"unit_price": -5, "quantity": 0, "image_url": []}]}]}') AS bad \gset
SELECT jsonb_pretty(shopping_upload.build_payload(:bad) - 'upload_time');
SELECT * FROM shopping_upload.validate_order(:bad);
SELECT shopping_upload.import_order('{}') AS empty \gset
SELECT shopping_upload.build_payload(:empty) - 'upload_time' AS empty_payload;
SELECT errcode, field FROM shopping_upload.validate_order(:empty);

-- JSON that cannot be stored: a clear error naming the field, nothing stored
SELECT count(*) AS orders_before FROM shopping_upload.orders \gset
SELECT shopping_upload.import_order('[1, 2]');
SELECT shopping_upload.import_order('"order"');
SELECT shopping_upload.import_order('42');
SELECT shopping_upload.import_order('null');
SELECT shopping_upload.import_order('{"order_key": []}');
SELECT shopping_upload.import_order('{"order_key": {"order_number_type": "three"}}');
SELECT shopping_upload.import_order('{"order_key": {"order_number_type": 1.5}}');
SELECT shopping_upload.import_order('{"order_key": {"order_number_type": 99999999999}}');
SELECT shopping_upload.import_order('{"order_key": {"mchid": 12}}');
SELECT shopping_upload.import_order('{"logistics_type": "BY_AIR"}');
SELECT shopping_upload.import_order('{"payer": "o-1"}');
SELECT shopping_upload.import_order('{"order_list": {"merchant_order_no": "a"}}');
SELECT shopping_upload.import_order('{"order_list": [{"merchant_order_no": "a", "item_list": []}, 5]}');
SELECT shopping_upload.import_order('{"order_list": [{"merchant_order_no": "a"},
  {"item_list": [{"name": "ok"}, {"unit_price": "12"}]}]}');
SELECT shopping_upload.import_order('{"order_list": [{"item_list": [{"image_url": ["a", 3]}]}]}');
SELECT shopping_upload.import_order('{"order_list": [{"item_list": [{"item_detail_jump_link": {"type": true}}]}]}');
SELECT shopping_upload.import_order('{"order_list": [{"order_detail_jump_link": "https://x"}]}');
SELECT shopping_upload.import_order(NULL);
SELECT count(*) = :orders_before AS nothing_stored FROM shopping_upload.orders;
SELECT count(*) AS orphans FROM shopping_upload.sub_orders s
 WHERE NOT EXISTS (SELECT 1 FROM shopping_upload.orders o WHERE o.order_id = s.order_id);

-- unknown orders
SELECT shopping_upload.build_payload(424242);
SELECT * FROM shopping_upload.validate_order(424242);

-- rows written by hand are built the same way
INSERT INTO shopping_upload.orders (order_id, order_number_type, transaction_id, openid)
VALUES (1000, 2, '4200000000000001', 'o-hand');
INSERT INTO shopping_upload.sub_orders VALUES (1000, 0, 'm-1', 'URL', 'https://shop.example.com/o/1', NULL, NULL);
INSERT INTO shopping_upload.items (order_id, sub_order_no, item_no, merchant_item_id, name, unit_price, quantity, image_url, link_type, link_url)
VALUES (1000, 0, 0, 'i-1', 'Tea', 100, 3, '{https://img.example.com/t.png}', 'URL', 'https://shop.example.com/i/1');
SELECT jsonb_pretty(shopping_upload.build_payload(1000) - 'upload_time');
SELECT * FROM shopping_upload.validate_order(1000);

-- numbers are exact or refused: never stored as a different number
SELECT shopping_upload.import_order(('{"order_key": {"order_number_type": 1, "mchid": "m", "out_trade_no": "num' || n || '"},
   "order_list": [{"merchant_order_no": "x", "item_list": [{"name": "n", "unit_price": ' || v || ', "quantity": 1}]}]}')::jsonb) IS NOT NULL AS stored, v
  FROM (VALUES (1, '9223372036854775807'), (2, '-9223372036854775808'), (3, '-0')) AS t(n, v);
SELECT unit_price FROM shopping_upload.items i JOIN shopping_upload.orders o USING (order_id)
 WHERE o.out_trade_no LIKE 'num%' ORDER BY o.out_trade_no;
SELECT shopping_upload.import_order('{"order_key": {"order_number_type": 1, "mchid": "m", "out_trade_no": "num4"},
   "order_list": [{"merchant_order_no": "x", "item_list": [{"name": "n", "unit_price": 9223372036854775808, "quantity": 1}]}]}');
SELECT shopping_upload.import_order('{"order_key": {"order_number_type": 1, "mchid": "m", "out_trade_no": "num5"},
   "order_list": [{"merchant_order_no": "x", "item_list": [{"name": "n", "unit_price": 1e308, "quantity": 1}]}]}');
SELECT shopping_upload.import_order('{"order_key": {"order_number_type": 1, "mchid": "m", "out_trade_no": "num6"},
   "order_list": [{"merchant_order_no": "x", "item_list": [{"name": "n", "unit_price": 1e29, "quantity": 1}]}]}');
SELECT shopping_upload.import_order('{"order_key": {"order_number_type": 1, "mchid": "m", "out_trade_no": "num7"},
   "order_list": [{"merchant_order_no": "x", "item_list": [{"name": "n", "unit_price": 1.5, "quantity": 1}]}]}');
SELECT shopping_upload.import_order('{"order_key": {"order_number_type": 1, "mchid": "m", "out_trade_no": "num8"},
   "order_list": [{"merchant_order_no": "x", "item_list": [{"name": "n", "unit_price": -9223372036854775809, "quantity": 1}]}]}');

-- an order key of any length is stored, and found again by import_order
SELECT shopping_upload.import_order(('{"order_key": {"order_number_type": 1, "mchid": "m", "out_trade_no": "'
         || repeat('K', 10000) || '"}}')::jsonb)
     = shopping_upload.import_order(('{"order_key": {"order_number_type": 1, "mchid": "m", "out_trade_no": "'
         || repeat('K', 10000) || '"}, "payer": {"openid": "o2"}}')::jsonb) AS same_order;
SELECT count(*) AS long_keys, min(openid) FROM shopping_upload.orders WHERE length(out_trade_no) = 10000;

-- JSON nested deeper than json-c's default (32 levels) is read
SELECT errcode, field FROM shopping_upload.validate_payload(
  (repeat('{"a":', 200) || '1' || repeat('}', 200))::jsonb) ORDER BY 1, 2 LIMIT 3;

-- a payload past the size cap is refused before any work: one row
SELECT errcode, field, errmsg ~ 'a body holds at most 1048576' AS says_why
  FROM shopping_upload.validate_payload(jsonb_build_object('order_list',
       (SELECT jsonb_agg(jsonb_build_object('merchant_order_no', 'n' || g, 'item_list', '[]'::jsonb))
          FROM generate_series(1, 60000) g)));
-- lists past their limit are reported once, not walked: 20,000 items
SELECT count(*) AS violations, min(errcode) FROM shopping_upload.validate_payload(
  jsonb_build_object('order_list', jsonb_build_array(jsonb_build_object('item_list',
       (SELECT jsonb_agg(jsonb_build_object('name', 'x')) FROM generate_series(1, 20000) g)))));

-- validate_payload: an integer outside bigint, or not integral, is the field's error
SELECT v, errcode, field FROM (VALUES ('9223372036854775807'), ('9223372036854775808'),
    ('-9223372036854775808'), ('1e308'), ('1.5'), ('-0')) AS t(v),
  LATERAL shopping_upload.validate_payload(jsonb_set(
    '{"order_list": [{"item_list": [{"unit_price": 1}]}]}'::jsonb,
    '{order_list,0,item_list,0,unit_price}', v::jsonb)) AS r
 WHERE r.field LIKE '%unit_price' ORDER BY 1;
