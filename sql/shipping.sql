--
-- Shipping information (/user-order/orders/shippings): the tables,
-- import_shipping(), build_shipping_payload(), validate_shipping_payload()
-- and every rule of spec/siblings.md
--
SET client_min_messages = warning;
SET TimeZone = 'Asia/Shanghai';
SET shopping_upload.appid = 'wxmerchantapp';

--
-- 1. The tables: structure only (keys, foreign keys, NOT NULL where a row
--    means nothing without it), dumped like the order tables, nothing for
--    PUBLIC; a write to any of them queues the order's shipping information
--
SELECT conrelid::regclass AS "table", conname, pg_get_constraintdef(oid) AS def
  FROM pg_constraint
 WHERE conrelid IN ('shopping_upload.shippings'::regclass,
                    'shopping_upload.shipments'::regclass,
                    'shopping_upload.shipment_items'::regclass)
   AND contype <> 'n'   -- PostgreSQL 18 lists NOT NULL here too: attnotnull below
 ORDER BY conrelid::regclass::text, conname;
SELECT attrelid::regclass AS "table", attname, format_type(atttypid, atttypmod) AS type, attnotnull
  FROM pg_attribute
 WHERE attrelid IN ('shopping_upload.shippings'::regclass,
                    'shopping_upload.shipments'::regclass,
                    'shopping_upload.shipment_items'::regclass)
   AND attnum > 0 AND NOT attisdropped
 ORDER BY attrelid::regclass::text, attnum;
SELECT c::regclass AS config_table
  FROM pg_extension, unnest(extconfig) AS c
 WHERE extname = 'shopping_upload' AND c::regclass::text LIKE '%ship%'
 ORDER BY c::regclass::text;
SELECT tgrelid::regclass AS "table", tgname,
       regexp_replace(pg_get_triggerdef(oid), '^.* (AFTER .*) ON .* EXECUTE', '\1 EXECUTE') AS def
  FROM pg_trigger
 WHERE tgrelid IN ('shopping_upload.shippings'::regclass,
                   'shopping_upload.shipments'::regclass,
                   'shopping_upload.shipment_items'::regclass)
   AND NOT tgisinternal
 ORDER BY tgrelid::regclass::text, tgname;
SELECT count(*) AS public_table_grants
  FROM information_schema.role_table_grants
 WHERE table_schema = 'shopping_upload' AND table_name LIKE 'ship%' AND grantee = 'PUBLIC';
SELECT p.oid::regprocedure AS function, p.prosecdef, p.provolatile,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute,
       obj_description(p.oid, 'pg_proc') IS NOT NULL AS has_comment
  FROM pg_proc p
 WHERE p.pronamespace = 'shopping_upload'::regnamespace AND p.proname LIKE '%shipping%'
 ORDER BY p.oid::regprocedure::text;

--
-- 2. An order with three items, and shipping bodies for it
--
SELECT shopping_upload.import_order($${
  "order_key": {"order_number_type": 1, "mchid": "1230000109", "out_trade_no": "SHIP_0001"},
  "order_list": [{
    "merchant_order_no": "ship-sub-1",
    "order_detail_jump_link": {"type": "URL", "url": "https://shop.example.com/o/1"},
    "item_list": [
      {"merchant_item_id": "sku-1", "name": "Tea", "unit_price": 100, "quantity": 1,
       "image_url": ["https://img.example.com/1.png"],
       "item_detail_jump_link": {"type": "URL", "url": "https://shop.example.com/i/1"}},
      {"merchant_item_id": "sku-2", "name": "Cup", "unit_price": 200, "quantity": 1,
       "image_url": ["https://img.example.com/2.png"],
       "item_detail_jump_link": {"type": "URL", "url": "https://shop.example.com/i/2"}},
      {"merchant_item_id": "sku-3", "name": "Pot", "unit_price": 300, "quantity": 1,
       "image_url": ["https://img.example.com/3.png"],
       "item_detail_jump_link": {"type": "URL", "url": "https://shop.example.com/i/3"}}]}],
  "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
  "upload_time": "2022-05-20T13:29:35.120+08:00"
}$$) AS id \gset

-- u: unified delivery, one shipment; s: split delivery, two shipments
CREATE TEMP TABLE body AS
SELECT $${
  "order_key": {"order_number_type": 1, "mchid": "1230000109", "out_trade_no": "SHIP_0001"},
  "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
  "upload_time": "2022-05-21T09:00:00.000+08:00",
  "delivery_mode": 1,
  "shipping_list": [{"tracking_no": "SF1234567890", "express_company": "SF",
    "contact": {"consignor_contact": "189****1234", "receiver_contact": "139****5678"}}]
}$$::jsonb AS u, $${
  "order_key": {"order_number_type": 1, "mchid": "1230000109", "out_trade_no": "SHIP_0001"},
  "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
  "upload_time": "2022-05-21T09:00:00.000+08:00",
  "delivery_mode": 2,
  "shipping_list": [
    {"tracking_no": "SF1234567890", "express_company": "SF",
     "item_list": [{"merchant_item_id": "sku-1"}, {"merchant_item_id": "sku-2"}],
     "contact": {"receiver_contact": "139****5678"}},
    {"tracking_no": "YT9876543210", "express_company": "YTO",
     "item_list": [{"merchant_item_id": "sku-3"}]}]
}$$::jsonb AS s;

-- every errcode any case produced, for the coverage check at the end
CREATE TEMP TABLE seen (errcode integer);

-- check(case, payload, appid): the violations in the validator's order (k),
-- or one "(valid)" row
CREATE FUNCTION pg_temp.check(label text, payload jsonb, appid text DEFAULT NULL)
RETURNS TABLE (k bigint, "case" text, errcode integer, field text, errmsg text)
LANGUAGE sql AS $$
  INSERT INTO seen SELECT v.errcode FROM shopping_upload.validate_shipping_payload(payload, appid) AS v;
  SELECT v.k, label, v.errcode, v.field, v.errmsg
    FROM shopping_upload.validate_shipping_payload(payload, appid)
         WITH ORDINALITY AS v(errcode, errmsg, field, k)
  UNION ALL
  SELECT 0, label, NULL, '(valid)', '(valid)'
   WHERE NOT EXISTS (SELECT FROM shopping_upload.validate_shipping_payload(payload, appid));
$$;

-- error_of(query, id): the error a query raises, its order id written N
CREATE FUNCTION pg_temp.error_of(q text, id bigint) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE q;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || replace(SQLERRM, id::text, 'N');
END
$$;

--
-- 3. Valid bodies give zero rows
--
SELECT c.* FROM body, LATERAL (
  SELECT * FROM pg_temp.check('unified', u)
  UNION ALL SELECT * FROM pg_temp.check('split', s)
  UNION ALL SELECT * FROM pg_temp.check('split, names for delivery_mode',
    jsonb_set(s, '{delivery_mode}', '"SPLIT_DELIVERY"'))
  UNION ALL SELECT * FROM pg_temp.check('unified, name for delivery_mode',
    jsonb_set(u, '{delivery_mode}', '"UNIFIED_DELIVERY"'))
  UNION ALL SELECT * FROM pg_temp.check('split, one shipment of all items',
    jsonb_set(s, '{shipping_list}', jsonb_build_array(jsonb_set(s #> '{shipping_list,0}',
      '{item_list}', '[{"merchant_item_id": "sku-1"}, {"merchant_item_id": "sku-2"}, {"merchant_item_id": "sku-3"}]'))))
  UNION ALL SELECT * FROM pg_temp.check('type 2 order key (no stored order: items not compared)',
    jsonb_set(s, '{order_key}', '{"order_number_type": 2, "transaction_id": "4200001234202205201234567890"}'))
  UNION ALL SELECT * FROM pg_temp.check('contact: WeChat''s masks',
    jsonb_set(u, '{shipping_list,0,contact}', '{"consignor_contact": "0**2-******23-10", "receiver_contact": "****123-8008"}'))
  UNION ALL SELECT * FROM pg_temp.check('unknown keys', s || '{"extra": 1}')
) AS c ORDER BY c."case", c.k;

--
-- 4. Each rule: errcode and JSON path
--
-- the body itself
SELECT * FROM pg_temp.check('an array', '[]');
SELECT * FROM pg_temp.check('the empty object', '{}');

-- order_key, payer, upload_time: the upload's rules
SELECT c.* FROM body, LATERAL (
  SELECT * FROM pg_temp.check('order_key missing', s - 'order_key')
  UNION ALL SELECT * FROM pg_temp.check('order_number_type 3', jsonb_set(s, '{order_key,order_number_type}', '3'))
  UNION ALL SELECT * FROM pg_temp.check('type 2, transaction_id missing', jsonb_set(s, '{order_key}', '{"order_number_type": 2}'))
  UNION ALL SELECT * FROM pg_temp.check('mchid missing', s #- '{order_key,mchid}')
  UNION ALL SELECT * FROM pg_temp.check('out_trade_no empty', jsonb_set(s, '{order_key,out_trade_no}', '""'))
  UNION ALL SELECT * FROM pg_temp.check('mchid 33 bytes', jsonb_set(s, '{order_key,mchid}', to_jsonb(repeat('1', 33))))
  UNION ALL SELECT * FROM pg_temp.check('payer missing', s - 'payer')
  UNION ALL SELECT * FROM pg_temp.check('openid empty', jsonb_set(s, '{payer,openid}', '""'))
  UNION ALL SELECT * FROM pg_temp.check('openid 129 bytes', jsonb_set(s, '{payer,openid}', to_jsonb(repeat('o', 129))))
  UNION ALL SELECT * FROM pg_temp.check('upload_time missing', s - 'upload_time')
  UNION ALL SELECT * FROM pg_temp.check('upload_time not RFC 3339', jsonb_set(s, '{upload_time}', '"2022-05-21 09:00:00"'))
) AS c ORDER BY c."case", c.k;

-- delivery_mode and shipping_list
SELECT c.* FROM body, LATERAL (
  SELECT * FROM pg_temp.check('delivery_mode missing', s - 'delivery_mode')
  UNION ALL SELECT * FROM pg_temp.check('delivery_mode 3', jsonb_set(s, '{delivery_mode}', '3'))
  UNION ALL SELECT * FROM pg_temp.check('delivery_mode "2"', jsonb_set(s, '{delivery_mode}', '"2"'))
  UNION ALL SELECT * FROM pg_temp.check('delivery_mode 1.5', jsonb_set(s, '{delivery_mode}', '1.5'))
  UNION ALL SELECT * FROM pg_temp.check('shipping_list missing', s - 'shipping_list')
  UNION ALL SELECT * FROM pg_temp.check('shipping_list empty', jsonb_set(s, '{shipping_list}', '[]'))
  UNION ALL SELECT * FROM pg_temp.check('shipping_list an object', jsonb_set(s, '{shipping_list}', '{}'))
  UNION ALL SELECT * FROM pg_temp.check('unified, two shipments', jsonb_set(s, '{delivery_mode}', '1'))
  UNION ALL SELECT * FROM pg_temp.check('11 shipments (the 11th not walked)',
    jsonb_set(s, '{shipping_list}', (SELECT jsonb_agg(CASE WHEN g < 11 THEN s #> '{shipping_list,1}' ELSE '{}' END)
                                       FROM generate_series(1, 11) g)))
  UNION ALL SELECT * FROM pg_temp.check('11 shipments, unified',
    jsonb_set(u, '{shipping_list}', (SELECT jsonb_agg(CASE WHEN g > 0 THEN u #> '{shipping_list,0}' END)
                                       FROM generate_series(1, 11) g)))
  UNION ALL SELECT * FROM pg_temp.check('a shipment a string', jsonb_set(s, '{shipping_list,1}', '"YT9876543210"'))
) AS c ORDER BY c."case", c.k;

-- tracking_no, express_company
SELECT c.* FROM body, LATERAL (
  SELECT * FROM pg_temp.check('tracking_no missing', s #- '{shipping_list,0,tracking_no}')
  UNION ALL SELECT * FROM pg_temp.check('tracking_no empty', jsonb_set(s, '{shipping_list,1,tracking_no}', '""'))
  UNION ALL SELECT * FROM pg_temp.check('tracking_no empty, unified', jsonb_set(u, '{shipping_list,0,tracking_no}', '""'))
  UNION ALL SELECT * FROM pg_temp.check('tracking_no 128 bytes', jsonb_set(s, '{shipping_list,0,tracking_no}', to_jsonb(repeat('7', 128))))
  UNION ALL SELECT * FROM pg_temp.check('tracking_no 129 bytes', jsonb_set(s, '{shipping_list,0,tracking_no}', to_jsonb(repeat('7', 129))))
  UNION ALL SELECT * FROM pg_temp.check('tracking_no 43 three-byte characters', jsonb_set(s, '{shipping_list,0,tracking_no}', to_jsonb(repeat('单', 43))))
  UNION ALL SELECT * FROM pg_temp.check('tracking_no a number', jsonb_set(s, '{shipping_list,0,tracking_no}', '1234567890'))
  UNION ALL SELECT * FROM pg_temp.check('express_company missing', s #- '{shipping_list,1,express_company}')
  UNION ALL SELECT * FROM pg_temp.check('express_company empty', jsonb_set(s, '{shipping_list,0,express_company}', '""'))
  UNION ALL SELECT * FROM pg_temp.check('express_company 129 bytes', jsonb_set(s, '{shipping_list,0,express_company}', to_jsonb(repeat('Z', 129))))
) AS c ORDER BY c."case", c.k;

-- item_list (split delivery), against the stored order's items
SELECT c.* FROM body, LATERAL (
  SELECT * FROM pg_temp.check('split, item_list missing', s #- '{shipping_list,1,item_list}')
  UNION ALL SELECT * FROM pg_temp.check('split, item_list empty', jsonb_set(s, '{shipping_list,1,item_list}', '[]'))
  UNION ALL SELECT * FROM pg_temp.check('split, item_list a string', jsonb_set(s, '{shipping_list,1,item_list}', '"sku-3"'))
  UNION ALL SELECT * FROM pg_temp.check('split, an item a string', jsonb_set(s, '{shipping_list,0,item_list,1}', '"sku-2"'))
  UNION ALL SELECT * FROM pg_temp.check('split, merchant_item_id missing', s #- '{shipping_list,0,item_list,0,merchant_item_id}')
  UNION ALL SELECT * FROM pg_temp.check('split, merchant_item_id 65 bytes', jsonb_set(s, '{shipping_list,0,item_list,0,merchant_item_id}', to_jsonb(repeat('x', 65))))
  UNION ALL SELECT * FROM pg_temp.check('split, an item not of the order', jsonb_set(s, '{shipping_list,1,item_list,0,merchant_item_id}', '"sku-9"'))
  UNION ALL SELECT * FROM pg_temp.check('split, not of the order, other appid: no stored order, not compared',
    jsonb_set(s, '{shipping_list,1,item_list,0,merchant_item_id}', '"sku-9"'), 'wxotherapp')
  UNION ALL SELECT * FROM pg_temp.check('unified, item_list not compared',
    jsonb_set(u, '{shipping_list,0,item_list}', '[{"merchant_item_id": "sku-9"}]'))
) AS c ORDER BY c."case", c.k;

-- contact
SELECT c.* FROM body, LATERAL (
  SELECT * FROM pg_temp.check('contact a string', jsonb_set(u, '{shipping_list,0,contact}', '"189****1234"'))
  UNION ALL SELECT * FROM pg_temp.check('contact: masked last digits', jsonb_set(u, '{shipping_list,0,contact,consignor_contact}', '"18912345***"'))
  UNION ALL SELECT * FROM pg_temp.check('contact: 3 digits', jsonb_set(u, '{shipping_list,0,contact,receiver_contact}', '"***123"'))
  UNION ALL SELECT * FROM pg_temp.check('contact: a number', jsonb_set(u, '{shipping_list,0,contact,receiver_contact}', '13900005678'))
) AS c ORDER BY c."case", c.k;

-- NULL is refused
SELECT * FROM shopping_upload.validate_shipping_payload(NULL);

--
-- 5. import_shipping() and build_shipping_payload(): a round trip
--
SELECT shopping_upload.import_shipping(s) = :id AS same_order FROM body;
SELECT order_id = :id AS same_order, delivery_mode, created_at = updated_at AS unchanged
  FROM shopping_upload.shippings WHERE order_id = :id;
SELECT shipment_no, tracking_no, express_company, consignor_contact, receiver_contact
  FROM shopping_upload.shipments WHERE order_id = :id ORDER BY shipment_no;
SELECT shipment_no, item_no, merchant_item_id
  FROM shopping_upload.shipment_items WHERE order_id = :id ORDER BY shipment_no, item_no;

-- the wire form: order_key and payer from the order, upload_time now
SELECT jsonb_pretty(shopping_upload.build_shipping_payload(:id) - 'upload_time');
SELECT shopping_upload.build_shipping_payload(:id) ->> 'upload_time'
       ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+08:00$' AS rfc3339_with_offset,
       shopping_upload.build_payload(:id) ->> 'upload_time'
       ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+08:00$' AS as_build_payload,
       abs(extract(epoch FROM ((shopping_upload.build_shipping_payload(:id) ->> 'upload_time')::timestamptz
           - clock_timestamp()))) < 60 AS now;
SELECT (shopping_upload.build_shipping_payload(:id) - 'upload_time') = (s - 'upload_time') AS round_trip,
       count(v.*) AS violations
  FROM body LEFT JOIN shopping_upload.validate_shipping_payload(
         shopping_upload.build_shipping_payload(:id)) AS v ON true
 GROUP BY 1;

-- a second import replaces the first: the same order, one shipment
SELECT shopping_upload.import_shipping(u, NULL) = :id AS same_order FROM body;
SELECT delivery_mode, created_at <= updated_at AS kept_created_at,
       (SELECT count(*) FROM shopping_upload.shipments WHERE order_id = :id) AS shipments,
       (SELECT count(*) FROM shopping_upload.shipment_items WHERE order_id = :id) AS items
  FROM shopping_upload.shippings WHERE order_id = :id;
SELECT (shopping_upload.build_shipping_payload(:id) - 'upload_time') = (u - 'upload_time') AS round_trip
  FROM body;

-- the names of delivery_mode are read, the number stored
SELECT shopping_upload.import_shipping(jsonb_set(s, '{delivery_mode}', '"SPLIT_DELIVERY"')) = :id AS same_order
  FROM body;
SELECT delivery_mode FROM shopping_upload.shippings WHERE order_id = :id;

-- an order key found by the alias of its type, and a type 2 key
SELECT shopping_upload.import_shipping(jsonb_set(u, '{order_key,order_number_type}', '"MERCHANT_TRADE_NUMBER"')) = :id
       AS found_by_alias FROM body;
SELECT shopping_upload.import_order($${
  "order_key": {"order_number_type": 2, "transaction_id": "4200000000SHIP0002"},
  "payer": {"openid": "o-ship-2"}, "order_list": []}$$, 'wxsecondapp') AS id2 \gset
SELECT shopping_upload.import_shipping(jsonb_set(u, '{order_key}',
         '{"order_number_type": 2, "transaction_id": "4200000000SHIP0002"}'), 'wxsecondapp') = :id2 AS found
  FROM body;
SELECT jsonb_pretty(shopping_upload.build_shipping_payload(:id2) - 'upload_time');

--
-- 6. Errors: unknown order keys name the key; a key that cannot name an
--    order; values of the wrong JSON type name their path
--
\set VERBOSITY sqlstate
SELECT shopping_upload.import_shipping(jsonb_set(s, '{order_key,out_trade_no}', '"SHIP_9999"')) FROM body;
\set VERBOSITY default
SELECT shopping_upload.import_shipping(jsonb_set(s, '{order_key,out_trade_no}', '"SHIP_9999"')) FROM body;
-- the right key, another appid
SELECT shopping_upload.import_shipping(s, 'wxotherapp') FROM body;
-- the type 2 order is wxsecondapp's
SELECT shopping_upload.import_shipping(jsonb_set(u, '{order_key}',
         '{"order_number_type": 2, "transaction_id": "4200000000SHIP0002"}')) FROM body;
-- a long key is cut in the message
SELECT shopping_upload.import_shipping(jsonb_set(u, '{order_key}',
         jsonb_build_object('order_number_type', 2, 'transaction_id', repeat('9', 100)))) FROM body;
\set VERBOSITY sqlstate
SELECT shopping_upload.import_shipping(s - 'order_key') FROM body;
\set VERBOSITY default
SELECT shopping_upload.import_shipping(s - 'order_key') FROM body;
SELECT shopping_upload.import_shipping(jsonb_set(s, '{order_key,order_number_type}', '3')) FROM body;
SELECT shopping_upload.import_shipping(s #- '{order_key,mchid}') FROM body;
SELECT shopping_upload.import_shipping('[]');
SELECT shopping_upload.import_shipping(NULL);
SELECT shopping_upload.import_shipping(jsonb_set(s, '{shipping_list,0,tracking_no}', '1234567890')) FROM body;
SELECT shopping_upload.import_shipping(jsonb_set(s, '{shipping_list}', '{}')) FROM body;
SELECT shopping_upload.import_shipping(jsonb_set(s, '{shipping_list,1}', '"x"')) FROM body;
SELECT shopping_upload.import_shipping(jsonb_set(u, '{shipping_list,0,contact}', '"189****1234"')) FROM body;
SELECT shopping_upload.import_shipping(jsonb_set(s, '{shipping_list,0,item_list,1}', '"sku-2"')) FROM body;
SELECT shopping_upload.import_shipping(jsonb_set(s, '{shipping_list,0,item_list,0,merchant_item_id}', '7')) FROM body;
SELECT shopping_upload.import_shipping(jsonb_set(s, '{delivery_mode}', '1.5')) FROM body;
SELECT shopping_upload.import_shipping(jsonb_set(s, '{delivery_mode}', '"FAST"')) FROM body;
SELECT shopping_upload.import_shipping(jsonb_set(s, '{delivery_mode}', '4294967297')) FROM body;
-- a failed import leaves the stored shipping information as it was
SELECT delivery_mode, (SELECT count(*) FROM shopping_upload.shipments WHERE order_id = :id) AS shipments
  FROM shopping_upload.shippings WHERE order_id = :id;

-- build: an order that does not exist, an order without shipping information
SELECT shopping_upload.build_shipping_payload(-1);
SELECT shopping_upload.import_order($${
  "order_key": {"order_number_type": 1, "mchid": "1230000109", "out_trade_no": "SHIP_0003"},
  "payer": {"openid": "o-ship-3"}, "order_list": []}$$) AS id3 \gset
SELECT pg_temp.error_of(format('SELECT shopping_upload.build_shipping_payload(%s)', :id3), :id3);

--
-- 7. Constraints hold structure only: a shipment that breaks every rule is
--    stored, and refused at upload time with its errcodes
--
SELECT shopping_upload.import_shipping($${
  "order_key": {"order_number_type": 1, "mchid": "1230000109", "out_trade_no": "SHIP_0001"},
  "delivery_mode": 7,
  "shipping_list": [
    {"tracking_no": "", "item_list": [{"merchant_item_id": "sku-9"}, {}]},
    {"express_company": "", "contact": {"receiver_contact": "13900005678***"}},
    {}]
}$$) = :id AS stored;
SELECT shipment_no, tracking_no, express_company, receiver_contact
  FROM shopping_upload.shipments WHERE order_id = :id ORDER BY shipment_no;
SELECT shipment_no, item_no, merchant_item_id
  FROM shopping_upload.shipment_items WHERE order_id = :id ORDER BY shipment_no, item_no;
SELECT jsonb_pretty(shopping_upload.build_shipping_payload(:id) - 'upload_time');
SELECT * FROM pg_temp.check('as stored, delivery_mode 7', shopping_upload.build_shipping_payload(:id));
-- as split delivery: its items are compared with the order's
UPDATE shopping_upload.shippings SET delivery_mode = 2 WHERE order_id = :id;
SELECT * FROM pg_temp.check('as stored, split', shopping_upload.build_shipping_payload(:id));
-- as unified delivery: three shipments are two too many
UPDATE shopping_upload.shippings SET delivery_mode = 1 WHERE order_id = :id;
SELECT errcode, field FROM shopping_upload.validate_shipping_payload(
         shopping_upload.build_shipping_payload(:id)) WHERE errcode = 268485228;
-- a shipping row without shipments: an empty shipping_list
DELETE FROM shopping_upload.shipments WHERE order_id = :id;
SELECT * FROM pg_temp.check('no shipments', shopping_upload.build_shipping_payload(:id));

-- deleting an order deletes its shipping information
SELECT shopping_upload.import_shipping(s) = :id AS stored FROM body;
DELETE FROM shopping_upload.orders WHERE order_id = :id;
SELECT (SELECT count(*) FROM shopping_upload.shippings WHERE order_id = :id) AS shippings,
       (SELECT count(*) FROM shopping_upload.shipments WHERE order_id = :id) AS shipments,
       (SELECT count(*) FROM shopping_upload.shipment_items WHERE order_id = :id) AS items;

--
-- 8. Coverage: every errcode the spec gives for this call (and the shared
--    ones) was produced by some case above, and no other errcode was
--
SELECT coalesce(array_agg(e ORDER BY e) FILTER (WHERE e NOT IN (SELECT errcode FROM seen)), '{}') AS spec_errcodes_not_seen,
       coalesce((SELECT array_agg(DISTINCT errcode) FROM seen WHERE errcode <> ALL (spec)), '{}') AS errcodes_not_in_spec
  FROM (SELECT ARRAY[268435461, 268485228, 268485226,
                     268485194, 268485195, 268485196, 268485197,
                     268485192, 268485214, 268485216] AS spec) AS s, unnest(spec) AS e
 GROUP BY spec;

--
-- 9. Queueing: a write to the shipping tables queues the order's shipping
--    information in shipping_state, at commit, as the order tables queue the
--    order (no worker serves this database: nothing is sent here)
--
CREATE FUNCTION pg_temp.ship(id bigint) RETURNS text LANGUAGE sql AS $$
  SELECT coalesce((SELECT state || ' v' || version || ' attempts ' || attempts
                     FROM shopping_upload.shipping_state WHERE order_id = id), 'not queued')
$$;
TRUNCATE shopping_upload.orders CASCADE;
SELECT count(*) AS shipping_states_after_truncate FROM shopping_upload.shipping_state;
SELECT shopping_upload.import_order($${
  "order_key": {"order_number_type": 1, "mchid": "1230000109", "out_trade_no": "SHIP_0001"},
  "order_list": [{"merchant_order_no": "ship-sub-1",
    "order_detail_jump_link": {"type": "URL", "url": "https://shop.example.com/o/1"},
    "item_list": [
      {"merchant_item_id": "sku-1", "name": "Tea", "unit_price": 100, "quantity": 1,
       "image_url": ["https://img.example.com/1.png"],
       "item_detail_jump_link": {"type": "URL", "url": "https://shop.example.com/i/1"}},
      {"merchant_item_id": "sku-2", "name": "Cup", "unit_price": 200, "quantity": 1,
       "image_url": ["https://img.example.com/2.png"],
       "item_detail_jump_link": {"type": "URL", "url": "https://shop.example.com/i/2"}},
      {"merchant_item_id": "sku-3", "name": "Pot", "unit_price": 300, "quantity": 1,
       "image_url": ["https://img.example.com/3.png"],
       "item_detail_jump_link": {"type": "URL", "url": "https://shop.example.com/i/3"}}]}],
  "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
  "upload_time": "2022-05-20T13:29:35.120+08:00"
}$$) AS id \gset
-- the order is queued; its shipping information not yet (there is none)
SELECT (SELECT state FROM shopping_upload.order_state WHERE order_id = :id) AS order_state,
       pg_temp.ship(:id) AS shipping;
-- storing it queues it once, whatever the number of rows written (version 1)
SELECT shopping_upload.import_shipping(s) = :id AS stored FROM body;
SELECT pg_temp.ship(:id);
-- every later change queues it again: a shipment, an item, the mode
UPDATE shopping_upload.shipments SET tracking_no = 'SF0000000001' WHERE order_id = :id AND shipment_no = 0;
SELECT pg_temp.ship(:id);
DELETE FROM shopping_upload.shipment_items WHERE order_id = :id AND shipment_no = 0 AND item_no = 1;
SELECT pg_temp.ship(:id);
UPDATE shopping_upload.shippings SET delivery_mode = 2 WHERE order_id = :id;
SELECT pg_temp.ship(:id);
-- a rolled back transaction queues nothing
BEGIN;
UPDATE shopping_upload.shipments SET tracking_no = 'X' WHERE order_id = :id;
ROLLBACK;
SELECT pg_temp.ship(:id);
-- its order was never uploaded: upload_shipping_info() refuses before any request
SELECT pg_temp.error_of('SELECT * FROM shopping_upload.upload_shipping_info(' || :id || ')', :id);
-- order_status shows it, with the order's upload state and no verify yet
SELECT state, shipping_state, shipping_errcode, verify_result, verified_at, next_verify_at
  FROM shopping_upload.order_status WHERE order_id = :id;
-- auto_upload off: writes queue nothing
SET shopping_upload.auto_upload = off;
UPDATE shopping_upload.shipments SET express_company = 'YTO' WHERE order_id = :id AND shipment_no = 0;
SELECT pg_temp.ship(:id);
RESET shopping_upload.auto_upload;
-- truncating the shipments (and their items) queues every shipping information again
TRUNCATE shopping_upload.shipments CASCADE;
SELECT pg_temp.ship(:id);
-- deleting the shipping information forgets its state; storing it anew starts over
DELETE FROM shopping_upload.shippings WHERE order_id = :id;
SELECT pg_temp.ship(:id);
SELECT shopping_upload.import_shipping(u) = :id AS stored FROM body;
SELECT pg_temp.ship(:id);
-- truncating shippings forgets every state; deleting the order forgets its own
TRUNCATE shopping_upload.shippings CASCADE;
SELECT count(*) AS shipping_states FROM shopping_upload.shipping_state;
SELECT shopping_upload.import_shipping(u) = :id AS stored FROM body;
DELETE FROM shopping_upload.orders WHERE order_id = :id;
SELECT count(*) AS shipping_states FROM shopping_upload.shipping_state;
-- the stats view counts them (and verifies) beside the orders
SELECT verified, awaiting_verification, shippings_uploaded, shippings_waiting_for_order,
       shippings_pending, shippings_failed
  FROM shopping_upload.stats;
-- upload_shipping_info() and verify_shopping_info() of an unknown order name it
SELECT pg_temp.error_of('SELECT * FROM shopping_upload.upload_shipping_info(' || 9999999 || ')', 9999999);
SELECT pg_temp.error_of('SELECT * FROM shopping_upload.verify_shopping_info(' || 9999999 || ')', 9999999);
