--
-- validate_payload(): every rule of spec/uploadShoppingInfo.md
--
-- Each case is derived from one valid base payload with jsonb_set, #- or ||
-- and shows one row per violation: errcode and the JSON path ("field") of
-- the offending value; errmsg where the message matters (lengths: it states
-- bytes or characters).  A case without violations shows one "(valid)" row.
--
SET client_min_messages = warning;

-- The valid base: type 1 order key, one order with one item, MINI_PROGRAM
-- links of the merchant app wxmerchantapp.  u is the same with URL links.
CREATE TEMP TABLE base AS
SELECT p, jsonb_set(jsonb_set(p,
         '{order_list,0,order_detail_jump_link}',
         '{"type": "URL", "url": "https://shop.example.com/order/1"}'),
         '{order_list,0,item_list,0,item_detail_jump_link}',
         '{"type": "URL", "url": "https://shop.example.com/item/1"}') AS u
  FROM (SELECT $${
  "order_key": {"order_number_type": 1, "mchid": "1230000109", "out_trade_no": "NO_1001-a*b|c"},
  "order_list": [{
    "merchant_order_no": "sub-1",
    "order_detail_jump_link": {"type": "MINI_PROGRAM", "appid": "wxmerchantapp", "path": "/pages/order?id=1"},
    "item_list": [{
      "merchant_item_id": "sku-1", "name": "绿茶 Green tea", "description": "一盒 250g",
      "unit_price": 1999, "quantity": 2,
      "image_url": ["https://img.example.com/a.png"],
      "item_detail_jump_link": {"type": "MINI_PROGRAM", "appid": "wxmerchantapp", "path": "/pages/item?sku=1"}}]}],
  "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
  "logistics_type": 1,
  "upload_time": "2022-05-20T13:29:35.120+08:00"
}$$::jsonb AS p) AS b;

-- every errcode any case produced, for the coverage check at the end
CREATE TEMP TABLE seen (errcode integer);

-- check(case, payload, appid): the violations in the validator's order (k),
-- or one "(valid)" row
CREATE FUNCTION pg_temp.check(label text, payload jsonb, appid text DEFAULT NULL)
RETURNS TABLE (k bigint, "case" text, errcode integer, field text, errmsg text)
LANGUAGE sql AS $$
  INSERT INTO seen SELECT v.errcode FROM shopping_upload.validate_payload(payload, appid) AS v;
  SELECT v.k, label, v.errcode, v.field, v.errmsg
    FROM shopping_upload.validate_payload(payload, appid)
         WITH ORDINALITY AS v(errcode, errmsg, field, k)
  UNION ALL
  SELECT 0, label, NULL, '(valid)', '(valid)'
   WHERE NOT EXISTS (SELECT FROM shopping_upload.validate_payload(payload, appid));
$$;

--
-- 1. Valid payloads give zero rows
--
SELECT 'MINI_PROGRAM links' AS payload, count(*) AS violations
  FROM base, shopping_upload.validate_payload(p)
UNION ALL
SELECT 'MINI_PROGRAM links, appid given', count(*)
  FROM base, shopping_upload.validate_payload(p, 'wxmerchantapp')
UNION ALL
SELECT 'URL links', count(*)
  FROM base, shopping_upload.validate_payload(u)
UNION ALL
SELECT 'URL links, appid given (not compared)', count(*)
  FROM base, shopping_upload.validate_payload(u, 'wxotherapp')
UNION ALL
SELECT 'type 2 key, no mchid/out_trade_no', count(*)
  FROM base, shopping_upload.validate_payload(jsonb_set(p, '{order_key}',
       '{"order_number_type": 2, "transaction_id": "4200001234202205201234567890"}'))
UNION ALL
-- optional members absent: description, logistics_type
SELECT 'no description, no logistics_type', count(*)
  FROM base, shopping_upload.validate_payload((p #- '{order_list,0,item_list,0,description}') - 'logistics_type')
UNION ALL
-- two orders, same merchant_item_id in different orders (unique per item_list only)
SELECT 'two orders, sku-1 in both', count(*)
  FROM base, shopping_upload.validate_payload(jsonb_set(p, '{order_list}',
       (p -> 'order_list') || jsonb_set(p #> '{order_list,0}', '{merchant_order_no}', '"sub-2"')))
UNION ALL
-- keys WeChat does not know are not the validator's business
SELECT 'unknown extra keys', count(*)
  FROM base, shopping_upload.validate_payload(p || '{"remark": "x"}');

--
-- 2. Not an object, wrong JSON types: 268435461
--
SELECT "case", errcode, field, errmsg
  FROM base, LATERAL (VALUES
    (1, 'payload is an array',       '[]'::jsonb),
    (2, 'payload is an array of one object', jsonb_build_array(p)),
    (3, 'payload is a string',       '"{}"'::jsonb),
    (4, 'payload is a number',       '42'::jsonb),
    (5, 'payload is a boolean',      'true'::jsonb),
    (6, 'payload is null',           'null'::jsonb)
  ) AS c(n, label, q), pg_temp.check(c.label, c.q) AS t
 ORDER BY c.n, t.k;

SELECT "case", errcode, field
  FROM base, LATERAL (VALUES
    (1,  'order_key an array',             jsonb_set(p, '{order_key}', '[]')),
    (2,  'mchid a number',                 jsonb_set(p, '{order_key,mchid}', '1230000109')),
    (3,  'out_trade_no a number',          jsonb_set(p, '{order_key,out_trade_no}', '100100')),
    (4,  'transaction_id a number (type 2)', jsonb_set(p, '{order_key}', '{"order_number_type": 2, "transaction_id": 4200001}')),
    (5,  'order_list an object',           jsonb_set(p, '{order_list}', p #> '{order_list,0}')),
    (6,  'order_list[0] a string',         jsonb_set(p, '{order_list,0}', '"sub-1"')),
    (7,  'order_list[0] null',             jsonb_set(p, '{order_list,0}', 'null')),
    (8,  'merchant_order_no a number',     jsonb_set(p, '{order_list,0,merchant_order_no}', '1')),
    (9,  'order link a string',            jsonb_set(p, '{order_list,0,order_detail_jump_link}', '"https://shop.example.com/o/1"')),
    (10, 'item_list an object',            jsonb_set(p, '{order_list,0,item_list}', p #> '{order_list,0,item_list,0}')),
    (11, 'item_list[0] a number',          jsonb_set(p, '{order_list,0,item_list,0}', '1')),
    (12, 'merchant_item_id a number',      jsonb_set(p, '{order_list,0,item_list,0,merchant_item_id}', '1')),
    (13, 'name an array',                  jsonb_set(p, '{order_list,0,item_list,0,name}', '["绿茶"]')),
    (14, 'description a number',           jsonb_set(p, '{order_list,0,item_list,0,description}', '250')),
    (15, 'unit_price a string',            jsonb_set(p, '{order_list,0,item_list,0,unit_price}', '"1999"')),
    (16, 'unit_price 19.99',               jsonb_set(p, '{order_list,0,item_list,0,unit_price}', '19.99')),
    (17, 'quantity 1.5',                   jsonb_set(p, '{order_list,0,item_list,0,quantity}', '1.5')),
    (18, 'quantity 2.0 (not an integer literal)', jsonb_set(p, '{order_list,0,item_list,0,quantity}', '2.0')),
    (19, 'quantity a boolean',             jsonb_set(p, '{order_list,0,item_list,0,quantity}', 'true')),
    (20, 'image_url a string',             jsonb_set(p, '{order_list,0,item_list,0,image_url}', '"https://img.example.com/a.png"')),
    (21, 'image_url[0] a number',          jsonb_set(p, '{order_list,0,item_list,0,image_url,0}', '1')),
    (22, 'image_url[0] null',              jsonb_set(p, '{order_list,0,item_list,0,image_url,0}', 'null')),
    (23, 'item link an array',             jsonb_set(p, '{order_list,0,item_list,0,item_detail_jump_link}', '[]')),
    (24, 'link url a number',              jsonb_set(u, '{order_list,0,order_detail_jump_link,url}', '1')),
    (25, 'link appid a boolean',           jsonb_set(p, '{order_list,0,order_detail_jump_link,appid}', 'true')),
    (26, 'link path an object',            jsonb_set(p, '{order_list,0,order_detail_jump_link,path}', '{}')),
    (27, 'payer a string',                 jsonb_set(p, '{payer}', '"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"')),
    (28, 'openid a number',                jsonb_set(p, '{payer,openid}', '1')),
    (29, 'upload_time a number (epoch)',   jsonb_set(p, '{upload_time}', '1653024575'))
  ) AS c(n, label, q), pg_temp.check(c.label, c.q) AS t
 ORDER BY c.n, t.k;

--
-- 3. order_key (268485194-268485197)
--
SELECT "case", errcode, field
  FROM base, LATERAL (VALUES
    (1,  'order_key missing',                       p - 'order_key'),
    (2,  'order_key null (= missing)',              jsonb_set(p, '{order_key}', 'null')),
    (3,  'order_number_type missing',               p #- '{order_key,order_number_type}'),
    (4,  'order_number_type 0',                     jsonb_set(p, '{order_key,order_number_type}', '0')),
    (5,  'order_number_type 3',                     jsonb_set(p, '{order_key,order_number_type}', '3')),
    (6,  'order_number_type -1',                    jsonb_set(p, '{order_key,order_number_type}', '-1')),
    -- an unknown type requires none of the key's members
    -- any value outside the enum, whatever its JSON type, is "not 1/2"
    (20, 'order_number_type true',                  jsonb_set(p, '{order_key,order_number_type}', 'true')),
    (21, 'order_number_type 1.0',                   jsonb_set(p, '{order_key,order_number_type}', '1.0')),
    (7,  'order_number_type 3, key members empty',  jsonb_set(p, '{order_key}', '{"order_number_type": 3, "mchid": "", "out_trade_no": ""}')),
    -- type 1: mchid and out_trade_no
    (8,  'type 1, mchid missing',                   p #- '{order_key,mchid}'),
    (9,  'type 1, mchid empty',                     jsonb_set(p, '{order_key,mchid}', '""')),
    (10, 'type 1, out_trade_no missing',            p #- '{order_key,out_trade_no}'),
    (11, 'type 1, out_trade_no empty',              jsonb_set(p, '{order_key,out_trade_no}', '""')),
    (12, 'type 1, both missing',                    jsonb_set(p, '{order_key}', '{"order_number_type": 1}')),
    (13, 'type 1, transaction_id empty (unused)',   jsonb_set(p, '{order_key,transaction_id}', '""')),
    -- type 2: transaction_id
    (14, 'type 2, transaction_id missing',          jsonb_set(p, '{order_key,order_number_type}', '2')),
    (15, 'type 2, transaction_id empty',            jsonb_set(p, '{order_key}', '{"order_number_type": 2, "transaction_id": ""}')),
    (16, 'type 2, mchid/out_trade_no empty (unused)', jsonb_set(p, '{order_key}', '{"order_number_type": 2, "transaction_id": "4200001", "mchid": "", "out_trade_no": ""}'))
  ) AS c(n, label, q), pg_temp.check(c.label, c.q) AS t
 ORDER BY c.n, t.k;

--
-- 4. order_list, merchant_order_no, order link, item_list
--
SELECT "case", errcode, field
  FROM base, LATERAL (VALUES
    (1,  'order_list missing',                       p - 'order_list'),
    (2,  'order_list empty',                         jsonb_set(p, '{order_list}', '[]')),
    (3,  'merchant_order_no missing',                p #- '{order_list,0,merchant_order_no}'),
    (4,  'merchant_order_no empty',                  jsonb_set(p, '{order_list,0,merchant_order_no}', '""')),
    (5,  'merchant_order_no repeated',               jsonb_set(p, '{order_list}', (p -> 'order_list') || (p -> 'order_list'))),
    (6,  'orders sub-1, sub-2, sub-1: third repeats first',
         jsonb_set(p, '{order_list}', (p -> 'order_list')
                   || jsonb_set(p #> '{order_list,0}', '{merchant_order_no}', '"sub-2"')
                   || (p -> 'order_list'))),
    (7,  'sub-1 and SUB-1 differ',                   jsonb_set(p, '{order_list}', (p -> 'order_list')
                   || jsonb_set(p #> '{order_list,0}', '{merchant_order_no}', '"SUB-1"'))),
    (8,  'order_detail_jump_link missing',           p #- '{order_list,0,order_detail_jump_link}'),
    (9,  'item_list missing',                        p #- '{order_list,0,item_list}'),
    (10, 'item_list empty',                          jsonb_set(p, '{order_list,0,item_list}', '[]'))
  ) AS c(n, label, q), pg_temp.check(c.label, c.q) AS t
 ORDER BY c.n, t.k;

--
-- 5. item_list[j]
--
SELECT "case", errcode, field
  FROM base, LATERAL (VALUES
    (1,  'merchant_item_id missing',   p #- '{order_list,0,item_list,0,merchant_item_id}'),
    (2,  'merchant_item_id empty',     jsonb_set(p, '{order_list,0,item_list,0,merchant_item_id}', '""')),
    (3,  'merchant_item_id repeated',  jsonb_set(p, '{order_list,0,item_list}', (p #> '{order_list,0,item_list}') || (p #> '{order_list,0,item_list}'))),
    (4,  'name missing',               p #- '{order_list,0,item_list,0,name}'),
    (5,  'name empty',                 jsonb_set(p, '{order_list,0,item_list,0,name}', '""')),
    (6,  'description empty',          jsonb_set(p, '{order_list,0,item_list,0,description}', '""')),
    (7,  'unit_price missing',         p #- '{order_list,0,item_list,0,unit_price}'),
    (8,  'unit_price 0',               jsonb_set(p, '{order_list,0,item_list,0,unit_price}', '0')),
    (9,  'unit_price -1',              jsonb_set(p, '{order_list,0,item_list,0,unit_price}', '-1')),
    (10, 'unit_price 1 (1 fen)',       jsonb_set(p, '{order_list,0,item_list,0,unit_price}', '1')),
    (11, 'quantity missing',           p #- '{order_list,0,item_list,0,quantity}'),
    (12, 'quantity 0',                 jsonb_set(p, '{order_list,0,item_list,0,quantity}', '0')),
    (13, 'quantity -2',                jsonb_set(p, '{order_list,0,item_list,0,quantity}', '-2')),
    (14, 'quantity 1',                 jsonb_set(p, '{order_list,0,item_list,0,quantity}', '1')),
    (15, 'image_url missing',          p #- '{order_list,0,item_list,0,image_url}'),
    (16, 'image_url empty',            jsonb_set(p, '{order_list,0,item_list,0,image_url}', '[]')),
    (17, 'image_url[0] empty string',  jsonb_set(p, '{order_list,0,item_list,0,image_url,0}', '""')),
    (18, 'image_url[1] not a URL',     jsonb_set(p, '{order_list,0,item_list,0,image_url}', '["https://img.example.com/a.png", "a.png"]')),
    (19, 'item_detail_jump_link missing', p #- '{order_list,0,item_list,0,item_detail_jump_link}')
  ) AS c(n, label, q), pg_temp.check(c.label, c.q) AS t
 ORDER BY c.n, t.k;

--
-- 6. payer, logistics_type, upload_time
--
SELECT "case", errcode, field
  FROM base, LATERAL (VALUES
    (1,  'payer missing',              p - 'payer'),
    (2,  'openid missing',             jsonb_set(p, '{payer}', '{}')),
    (3,  'openid empty',               jsonb_set(p, '{payer,openid}', '""')),
    (4,  'logistics_type missing (default 1)', p - 'logistics_type'),
    (5,  'logistics_type null (= missing)',    jsonb_set(p, '{logistics_type}', 'null')),
    (6,  'logistics_type 1',           jsonb_set(p, '{logistics_type}', '1')),
    (7,  'logistics_type 2',           jsonb_set(p, '{logistics_type}', '2')),
    (8,  'logistics_type 3',           jsonb_set(p, '{logistics_type}', '3')),
    (9,  'logistics_type 4',           jsonb_set(p, '{logistics_type}', '4')),
    (10, 'logistics_type 0',           jsonb_set(p, '{logistics_type}', '0')),
    (11, 'logistics_type 5',           jsonb_set(p, '{logistics_type}', '5')),
    -- any value outside the enum, whatever its JSON type, is "not 1-4"
    (15, 'logistics_type true',        jsonb_set(p, '{logistics_type}', 'true')),
    (16, 'logistics_type 2.0',         jsonb_set(p, '{logistics_type}', '2.0')),
    (12, 'upload_time missing',        p - 'upload_time'),
    (13, 'upload_time empty',          jsonb_set(p, '{upload_time}', '""')),
    (14, 'upload_time not RFC 3339',   jsonb_set(p, '{upload_time}', '"2022/05/20 13:29"'))
  ) AS c(n, label, q), pg_temp.check(c.label, c.q) AS t
 ORDER BY c.n, t.k;

--
-- 7. The link object, at both places: order_detail_jump_link (o) and
--    item_detail_jump_link (i).  MINI_PROGRAM cases change both links so
--    that they stay equal; the cross-link rules are in section 8.
--
SELECT "case", errcode, field
  FROM base, LATERAL (VALUES
    -- type: 268485202 when missing or anything but URL/MINI_PROGRAM/1/2
    (1,  'o: type missing',            p #- '{order_list,0,order_detail_jump_link,type}'),
    (2,  'i: type missing',            p #- '{order_list,0,item_list,0,item_detail_jump_link,type}'),
    (3,  'o: type "url" (case)',       jsonb_set(u, '{order_list,0,order_detail_jump_link,type}', '"url"')),
    (4,  'i: type "H5"',               jsonb_set(u, '{order_list,0,item_list,0,item_detail_jump_link,type}', '"H5"')),
    (5,  'o: type 3',                  jsonb_set(u, '{order_list,0,order_detail_jump_link,type}', '3')),
    (6,  'o: type 0',                  jsonb_set(u, '{order_list,0,order_detail_jump_link,type}', '0')),
    (7,  'o: type "1" (a string)',     jsonb_set(u, '{order_list,0,order_detail_jump_link,type}', '"1"')),
    (8,  'o: type true',               jsonb_set(u, '{order_list,0,order_detail_jump_link,type}', 'true')),
    (9,  'o: type null (= missing)',   jsonb_set(u, '{order_list,0,order_detail_jump_link,type}', 'null')),
    -- URL: url required, appid and path not
    (10, 'o: URL, url missing',        u #- '{order_list,0,order_detail_jump_link,url}'),
    (11, 'i: URL, url empty',          jsonb_set(u, '{order_list,0,item_list,0,item_detail_jump_link,url}', '""')),
    (12, 'o: URL, url not a URL',      jsonb_set(u, '{order_list,0,order_detail_jump_link,url}', '"shop.example.com/o/1"')),
    (13, 'i: URL, url ftp://',         jsonb_set(u, '{order_list,0,item_list,0,item_detail_jump_link,url}', '"ftp://shop.example.com/i/1"')),
    (14, 'o: URL with empty appid, path (unused)',
         jsonb_set(u, '{order_list,0,order_detail_jump_link}', '{"type": "URL", "url": "https://shop.example.com/o/1", "appid": "", "path": ""}')),
    -- MINI_PROGRAM: appid and path required, url not
    (15, 'o+i: MINI_PROGRAM, appid missing',
         p #- '{order_list,0,order_detail_jump_link,appid}' #- '{order_list,0,item_list,0,item_detail_jump_link,appid}'),
    (16, 'o: MINI_PROGRAM, appid empty',  jsonb_set(p, '{order_list,0,order_detail_jump_link,appid}', '""')),
    (17, 'o: MINI_PROGRAM, path missing', p #- '{order_list,0,order_detail_jump_link,path}'),
    (18, 'i: MINI_PROGRAM, path empty',   jsonb_set(p, '{order_list,0,item_list,0,item_detail_jump_link,path}', '""')),
    (19, 'o: MINI_PROGRAM with empty url (unused)', jsonb_set(p, '{order_list,0,order_detail_jump_link,url}', '""'))
  ) AS c(n, label, q), pg_temp.check(c.label, c.q) AS t
 ORDER BY c.n, t.k;

--
-- 8. Between the links of one order (268459788, 268459789) and the
--    merchant's appid, the second argument (268486029)
--
SELECT "case", errcode, field
  FROM base, LATERAL (VALUES
    (1,  'o MINI_PROGRAM, i URL',      jsonb_set(p, '{order_list,0,item_list,0,item_detail_jump_link}', u #> '{order_list,0,item_list,0,item_detail_jump_link}'), NULL),
    (2,  'o URL, i MINI_PROGRAM',      jsonb_set(u, '{order_list,0,item_list,0,item_detail_jump_link}', p #> '{order_list,0,item_list,0,item_detail_jump_link}'), NULL),
    (3,  'o URL, i 1 (same type)',     jsonb_set(u, '{order_list,0,item_list,0,item_detail_jump_link,type}', '1'), NULL),
    (4,  'o 2, i MINI_PROGRAM (same type)', jsonb_set(p, '{order_list,0,order_detail_jump_link,type}', '2'), NULL),
    (5,  'o 1, i 2',                   jsonb_set(jsonb_set(u, '{order_list,0,order_detail_jump_link,type}', '1'),
                                                 '{order_list,0,item_list,0,item_detail_jump_link}', '{"type": 2, "appid": "wxmerchantapp", "path": "/i"}'), NULL),
    (6,  'o type invalid: i not compared', jsonb_set(p, '{order_list,0,order_detail_jump_link,type}', '"H5"'), NULL),
    (7,  'i appid differs from o appid',   jsonb_set(p, '{order_list,0,item_list,0,item_detail_jump_link,appid}', '"wxotherapp"'), NULL),
    (8,  'second item: appid differs',     jsonb_set(p, '{order_list,0,item_list}', (p #> '{order_list,0,item_list}')
            || jsonb_set(jsonb_set(p #> '{order_list,0,item_list,0}', '{merchant_item_id}', '"sku-2"'),
                         '{item_detail_jump_link,appid}', '"wxotherapp"')), NULL),
    (9,  'o appid empty: i not compared',  jsonb_set(p, '{order_list,0,order_detail_jump_link,appid}', '""'), NULL),
    -- the appid argument: every MINI_PROGRAM link must name the merchant's own app
    (10, 'appid arg equal',                p, 'wxmerchantapp'),
    (11, 'appid arg differs: both links',  p, 'wxotherapp'),
    (12, 'appid arg: o and i both wxotherapp',
         jsonb_set(jsonb_set(p, '{order_list,0,order_detail_jump_link,appid}', '"wxotherapp"'),
                   '{order_list,0,item_list,0,item_detail_jump_link,appid}', '"wxotherapp"'), 'wxmerchantapp'),
    (13, 'appid arg: only i differs',      jsonb_set(p, '{order_list,0,item_list,0,item_detail_jump_link,appid}', '"wxotherapp"'), 'wxmerchantapp'),
    (14, 'appid arg: compared bytewise',   p, 'WXMERCHANTAPP'),
    (15, 'appid arg: URL links not compared', u, 'wxotherapp')
  ) AS c(n, label, q, appid), pg_temp.check(c.label, c.q, c.appid) AS t
 ORDER BY c.n, t.k;

--
-- 9. Length limits: ok at the limit, a violation one past it.  Bytes are
--    counted in UTF-8 (中 and 字 are 3 bytes, é 2), characters as code points.
--
SELECT "case", errcode, errmsg
  FROM base, LATERAL (VALUES
    -- name: characters [1,256]
    (1,  'name 256 × 中 (768 bytes)',   jsonb_set(p, '{order_list,0,item_list,0,name}', to_jsonb(repeat('中', 256)))),
    (2,  'name 257 × 中',               jsonb_set(p, '{order_list,0,item_list,0,name}', to_jsonb(repeat('中', 257)))),
    (3,  'name 257 × a',                jsonb_set(p, '{order_list,0,item_list,0,name}', to_jsonb(repeat('a', 257)))),
    (4,  'name 256 × 😀 (4 bytes each)', jsonb_set(p, '{order_list,0,item_list,0,name}', to_jsonb(repeat('😀', 256)))),
    (5,  'name 257 × 😀',               jsonb_set(p, '{order_list,0,item_list,0,name}', to_jsonb(repeat('😀', 257)))),
    -- description: characters [1,512]
    (6,  'description 512 × 字',        jsonb_set(p, '{order_list,0,item_list,0,description}', to_jsonb(repeat('字', 512)))),
    (7,  'description 513 × 字',        jsonb_set(p, '{order_list,0,item_list,0,description}', to_jsonb(repeat('字', 513)))),
    -- mchid, transaction_id: bytes [1,32]
    (8,  'mchid 32 × 1',                jsonb_set(p, '{order_key,mchid}', to_jsonb(repeat('1', 32)))),
    (9,  'mchid 33 × 1',                jsonb_set(p, '{order_key,mchid}', to_jsonb(repeat('1', 33)))),
    (10, 'mchid 10 × 中 (30 bytes)',    jsonb_set(p, '{order_key,mchid}', to_jsonb(repeat('中', 10)))),
    (11, 'mchid 11 × 中 (33 bytes)',    jsonb_set(p, '{order_key,mchid}', to_jsonb(repeat('中', 11)))),
    (12, 'transaction_id 32 × 4',       jsonb_set(p, '{order_key}', jsonb_build_object('order_number_type', 2, 'transaction_id', repeat('4', 32)))),
    (13, 'transaction_id 33 × 4',       jsonb_set(p, '{order_key}', jsonb_build_object('order_number_type', 2, 'transaction_id', repeat('4', 33)))),
    (14, 'transaction_id 11 × 中 (33 bytes)', jsonb_set(p, '{order_key}', jsonb_build_object('order_number_type', 2, 'transaction_id', repeat('中', 11)))),
    (15, 'transaction_id 33 bytes, type 1 (unused, still checked)', jsonb_set(p, '{order_key,transaction_id}', to_jsonb(repeat('4', 33)))),
    -- link appid: bytes [1,32] (o and i set alike)
    (16, 'appid 32 × w',                jsonb_set(jsonb_set(p, '{order_list,0,order_detail_jump_link,appid}', to_jsonb(repeat('w', 32))),
                                                  '{order_list,0,item_list,0,item_detail_jump_link,appid}', to_jsonb(repeat('w', 32)))),
    (17, 'appid 33 × w',                jsonb_set(jsonb_set(p, '{order_list,0,order_detail_jump_link,appid}', to_jsonb(repeat('w', 33))),
                                                  '{order_list,0,item_list,0,item_detail_jump_link,appid}', to_jsonb(repeat('w', 33)))),
    (18, 'appid wx + 10 × 中 (32 bytes)', jsonb_set(jsonb_set(p, '{order_list,0,order_detail_jump_link,appid}', to_jsonb('wx' || repeat('中', 10))),
                                                  '{order_list,0,item_list,0,item_detail_jump_link,appid}', to_jsonb('wx' || repeat('中', 10)))),
    (19, 'appid 11 × 中 (33 bytes)',    jsonb_set(jsonb_set(p, '{order_list,0,order_detail_jump_link,appid}', to_jsonb(repeat('中', 11))),
                                                  '{order_list,0,item_list,0,item_detail_jump_link,appid}', to_jsonb(repeat('中', 11)))),
    -- merchant_order_no, merchant_item_id: bytes [1,64]
    (20, 'merchant_order_no 64 × m',    jsonb_set(p, '{order_list,0,merchant_order_no}', to_jsonb(repeat('m', 64)))),
    (21, 'merchant_order_no 65 × m',    jsonb_set(p, '{order_list,0,merchant_order_no}', to_jsonb(repeat('m', 65)))),
    (22, 'merchant_order_no 32 × é (64 bytes)', jsonb_set(p, '{order_list,0,merchant_order_no}', to_jsonb(repeat('é', 32)))),
    (23, 'merchant_order_no 32 × é + a (33 chars, 65 bytes)', jsonb_set(p, '{order_list,0,merchant_order_no}', to_jsonb(repeat('é', 32) || 'a'))),
    (24, 'merchant_item_id 64 × s',     jsonb_set(p, '{order_list,0,item_list,0,merchant_item_id}', to_jsonb(repeat('s', 64)))),
    (25, 'merchant_item_id 65 × s',     jsonb_set(p, '{order_list,0,item_list,0,merchant_item_id}', to_jsonb(repeat('s', 65)))),
    (26, 'merchant_item_id 21 × 中 + a (64 bytes)', jsonb_set(p, '{order_list,0,item_list,0,merchant_item_id}', to_jsonb(repeat('中', 21) || 'a'))),
    (27, 'merchant_item_id 22 × 中 (66 bytes)', jsonb_set(p, '{order_list,0,item_list,0,merchant_item_id}', to_jsonb(repeat('中', 22)))),
    -- openid: bytes [1,128]
    (28, 'openid 128 × o',              jsonb_set(p, '{payer,openid}', to_jsonb(repeat('o', 128)))),
    (29, 'openid 129 × o',              jsonb_set(p, '{payer,openid}', to_jsonb(repeat('o', 129)))),
    (30, 'openid 42 × 中 + ab (128 bytes)', jsonb_set(p, '{payer,openid}', to_jsonb(repeat('中', 42) || 'ab'))),
    (31, 'openid 43 × 中 (129 bytes)',  jsonb_set(p, '{payer,openid}', to_jsonb(repeat('中', 43)))),
    -- link url and image_url: bytes [1,1024]; https://shop.example.com/ is 25 bytes
    (32, 'link url 1024 bytes',         jsonb_set(u, '{order_list,0,order_detail_jump_link,url}', to_jsonb('https://shop.example.com/' || repeat('a', 999)))),
    (33, 'link url 1025 bytes',         jsonb_set(u, '{order_list,0,order_detail_jump_link,url}', to_jsonb('https://shop.example.com/' || repeat('a', 1000)))),
    (34, 'link url 25 + 333 × 中 (1024 bytes)', jsonb_set(u, '{order_list,0,item_list,0,item_detail_jump_link,url}', to_jsonb('https://shop.example.com/' || repeat('中', 333)))),
    (35, 'link url 25 + 333 × 中 + a (1025 bytes)', jsonb_set(u, '{order_list,0,item_list,0,item_detail_jump_link,url}', to_jsonb('https://shop.example.com/' || repeat('中', 333) || 'a'))),
    (36, 'image_url 1024 bytes',        jsonb_set(p, '{order_list,0,item_list,0,image_url,0}', to_jsonb('https://shop.example.com/' || repeat('中', 333)))),
    (37, 'image_url 1025 bytes',        jsonb_set(p, '{order_list,0,item_list,0,image_url,0}', to_jsonb('https://shop.example.com/' || repeat('中', 333) || 'a'))),
    -- link path: bytes [1,512]
    (38, 'path 512 × /',                jsonb_set(p, '{order_list,0,order_detail_jump_link,path}', to_jsonb(repeat('/', 512)))),
    (39, 'path 513 × /',                jsonb_set(p, '{order_list,0,order_detail_jump_link,path}', to_jsonb(repeat('/', 513)))),
    (40, 'path /a + 170 × 中 (512 bytes)', jsonb_set(p, '{order_list,0,item_list,0,item_detail_jump_link,path}', to_jsonb('/a' || repeat('中', 170)))),
    (41, 'path /ab + 170 × 中 (513 bytes)', jsonb_set(p, '{order_list,0,item_list,0,item_detail_jump_link,path}', to_jsonb('/ab' || repeat('中', 170))))
  ) AS c(n, label, q), pg_temp.check(c.label, c.q) AS t
 ORDER BY c.n, t.k;

--
-- 10. out_trade_no: 6-32 characters of 0-9 A-Z a-z _ - * |
--
SELECT "case", errcode, errmsg
  FROM base, LATERAL (VALUES
    (1,  'abcde (5)',                   '"abcde"'::jsonb),
    (2,  'abcdef (6)',                  '"abcdef"'),
    (3,  '32 × x',                      to_jsonb(repeat('x', 32))),
    (4,  '33 × x',                      to_jsonb(repeat('x', 33))),
    (5,  'every allowed character',     '"09AZaz_-*|"'),
    (6,  'a dot',                       '"NO.1001"'),
    (7,  'a space',                     '"NO 1001"'),
    (8,  'a hash',                      '"NO#1001"'),
    (9,  'a slash',                     '"NO/1001"'),
    (10, 'a plus',                      '"NO+1001"'),
    (11, 'full-width ＮＯ１００１ (6 chars)', '"ＮＯ１００１"'),
    (12, '订单一二三四 (6 chars, 18 bytes)', '"订单一二三四"'),
    (13, '订单 (2 chars, 6 bytes)',     '"订单"'),
    (14, '11 × 中 (11 chars, 33 bytes)', to_jsonb(repeat('中', 11)))
  ) AS c(n, label, v), pg_temp.check(c.label, jsonb_set(p, '{order_key,out_trade_no}', c.v)) AS t
 ORDER BY c.n, t.k;

--
-- 11. Counts: item_list 1-50 items, image_url 1-3 URLs
--
SELECT "case", errcode, errmsg
  FROM base, LATERAL (VALUES
    (1, 'item_list 50 items',
        jsonb_set(p, '{order_list,0,item_list}',
                  (SELECT jsonb_agg(jsonb_set(p #> '{order_list,0,item_list,0}', '{merchant_item_id}', to_jsonb('sku-' || i)))
                     FROM generate_series(1, 50) AS i))),
    (2, 'item_list 51 items',
        jsonb_set(p, '{order_list,0,item_list}',
                  (SELECT jsonb_agg(jsonb_set(p #> '{order_list,0,item_list,0}', '{merchant_item_id}', to_jsonb('sku-' || i)))
                     FROM generate_series(1, 51) AS i))),
    -- the items past 50 are still checked
    (3, 'item_list 51 items, the 51st without name',
        jsonb_set(p, '{order_list,0,item_list}',
                  (SELECT jsonb_agg(jsonb_set(p #> '{order_list,0,item_list,0}', '{merchant_item_id}', to_jsonb('sku-' || i))
                                    - CASE WHEN i = 51 THEN 'name' ELSE '' END)
                     FROM generate_series(1, 51) AS i))),
    (4, 'image_url 3 URLs',
        jsonb_set(p, '{order_list,0,item_list,0,image_url}',
                  (SELECT jsonb_agg('https://img.example.com/' || i || '.png') FROM generate_series(1, 3) AS i))),
    (5, 'image_url 4 URLs',
        jsonb_set(p, '{order_list,0,item_list,0,image_url}',
                  (SELECT jsonb_agg('https://img.example.com/' || i || '.png') FROM generate_series(1, 4) AS i))),
    (6, 'image_url 4 entries, the 4th not a URL',
        jsonb_set(p, '{order_list,0,item_list,0,image_url}',
                  '["https://img.example.com/1.png", "https://img.example.com/2.png", "https://img.example.com/3.png", "4.png"]'))
  ) AS c(n, label, q), pg_temp.check(c.label, c.q) AS t
 ORDER BY c.n, t.k;

--
-- 12. Enum aliases read on input; other names refused
--
SELECT "case", errcode, field
  FROM base, LATERAL (VALUES
    (1,  'MERCHANT_TRADE_NUMBER',              jsonb_set(p, '{order_key,order_number_type}', '"MERCHANT_TRADE_NUMBER"')),
    (2,  'MERCHANT_TRADE_NUMBER, mchid missing (so it means 1)',
         jsonb_set(p, '{order_key,order_number_type}', '"MERCHANT_TRADE_NUMBER"') #- '{order_key,mchid}'),
    (3,  'WXPAY_TRADE_NUMBER with transaction_id',
         jsonb_set(p, '{order_key}', '{"order_number_type": "WXPAY_TRADE_NUMBER", "transaction_id": "4200001"}')),
    (4,  'WXPAY_TRADE_NUMBER, transaction_id missing (so it means 2)',
         jsonb_set(p, '{order_key,order_number_type}', '"WXPAY_TRADE_NUMBER"')),
    (5,  'order_number_type "merchant_trade_number"', jsonb_set(p, '{order_key,order_number_type}', '"merchant_trade_number"')),
    (6,  'order_number_type "1"',              jsonb_set(p, '{order_key,order_number_type}', '"1"')),
    (7,  'order_number_type "TRANSACTION_ID"', jsonb_set(p, '{order_key,order_number_type}', '"TRANSACTION_ID"')),
    (8,  'logistics_type LOCATION_BASED_LOGISTICS', jsonb_set(p, '{logistics_type}', '"LOCATION_BASED_LOGISTICS"')),
    (9,  'logistics_type "location_based_logistics"', jsonb_set(p, '{logistics_type}', '"location_based_logistics"')),
    (10, 'logistics_type "2"',                 jsonb_set(p, '{logistics_type}', '"2"')),
    (11, 'logistics_type "PHYSICAL_LOGISTICS"', jsonb_set(p, '{logistics_type}', '"PHYSICAL_LOGISTICS"')),
    (12, 'link types 1 (URL)',                 jsonb_set(jsonb_set(u, '{order_list,0,order_detail_jump_link,type}', '1'),
                                                         '{order_list,0,item_list,0,item_detail_jump_link,type}', '1')),
    (13, 'link types 2 (MINI_PROGRAM)',        jsonb_set(jsonb_set(p, '{order_list,0,order_detail_jump_link,type}', '2'),
                                                         '{order_list,0,item_list,0,item_detail_jump_link,type}', '2')),
    (14, 'o type 1 = URL: needs url, differs from i',              jsonb_set(p, '{order_list,0,order_detail_jump_link,type}', '1')),
    (15, 'o type 2 = MINI_PROGRAM: needs appid, path, differs from i',      jsonb_set(u, '{order_list,0,order_detail_jump_link,type}', '2')),
    (16, 'link type "MINIPROGRAM"',            jsonb_set(p, '{order_list,0,order_detail_jump_link,type}', '"MINIPROGRAM"')),
    (17, 'link type "mini_program"',           jsonb_set(p, '{order_list,0,order_detail_jump_link,type}', '"mini_program"'))
  ) AS c(n, label, q), pg_temp.check(c.label, c.q) AS t
 ORDER BY c.n, t.k;

--
-- 13. The URL pattern, for image_url[0] and link url.  spec_pattern is the
--     spec's regular expression evaluated by PostgreSQL; the validator must
--     agree with it.  Note that the last group ([^\[\]]*) takes anything but
--     brackets, so a port that is not 2-5 digits is absorbed by it.
--
SELECT '^https?://([^\s/?#\[\]@]+@)?([^\s/?#@:]+)(:\d{2,5})?([^\[\]]*)$' AS url_re \gset
SELECT to_jsonb(url) AS url, url ~ :'url_re' AS spec_pattern,
       (SELECT string_agg(errcode || ' ' || field, '; ')
          FROM pg_temp.check(url, jsonb_set(p, '{order_list,0,item_list,0,image_url,0}', to_jsonb(url)))
         WHERE errcode IS NOT NULL) AS image_url_violation,
       (SELECT string_agg(errcode || ' ' || field, '; ')
          FROM pg_temp.check(url, jsonb_set(u, '{order_list,0,order_detail_jump_link,url}', to_jsonb(url)))
         WHERE errcode IS NOT NULL) AS link_url_violation
  FROM base, unnest(ARRAY[
    'https://img.example.com/a.png',
    'http://img.example.com/a.png',
    'https://img.example.com',
    'https://img.example.com?x=1#top',
    'https://图片.例子.中国/图.png',
    -- ports: 2-5 digits match (:\d{2,5}); any other ":..." is taken by the last group
    'http://img.example.com:80/a.png',
    'http://img.example.com:8080/a.png',
    'http://img.example.com:65535/a.png',
    'http://img.example.com:8/a.png',
    'http://img.example.com:123456/a.png',
    'http://img.example.com:/a.png',
    'http://img.example.com:http/a.png',
    -- userinfo
    'https://user@img.example.com/a.png',
    'https://user:pw@img.example.com:8443/a.png',
    'https://@img.example.com/a.png',
    -- brackets: none after the host
    'http://[::1]/a.png',
    'http://[::1]:8080/a.png',
    'https://img.example.com/a[1].png',
    'https://img.example.com/a.png?x=]',
    'https://user[1]@img.example.com/a.png',
    -- schemes and shapes that are not http(s)://host
    'ftp://img.example.com/a.png',
    'HTTPS://img.example.com/a.png',
    'Https://img.example.com/a.png',
    'data:image/png;base64,iVBORw0KGgo=',
    'javascript:alert(1)',
    '//img.example.com/a.png',
    'img.example.com/a.png',
    'https:/img.example.com/a.png',
    'https://',
    'https:///a.png',
    'https://?x=1',
    'https://#top',
    'https:// img.example.com/a.png',
    ' https://img.example.com/a.png'
  ]) WITH ORDINALITY AS x(url, n)
 ORDER BY n;

--
-- 14. upload_time: RFC 3339 date-time, YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)
--
SELECT to_jsonb("case") AS upload_time, errcode, field
  FROM base, LATERAL (VALUES
    -- accepted
    (1,  '2022-05-20T13:29:35.120+08:00'),
    (2,  '2022-05-20T13:29:35+08:00'),
    (3,  '2022-05-20T05:29:35Z'),
    (4,  '2022-05-20t05:29:35z'),
    (5,  '2022-05-20T05:29:35.123456789Z'),
    (6,  '2022-05-20T01:59:35-03:30'),
    (7,  '2022-05-20T05:29:35-00:00'),
    (8,  '2024-02-29T00:00:00Z'),
    (9,  '2000-02-29T00:00:00+08:00'),
    (10, '2016-12-31T23:59:60Z'),
    (11, '2022-12-31T23:59:59.999+14:00'),
    -- refused
    (12, '2022-05-20 13:29:35+08:00'),
    (13, '2022-05-20T13:29:35'),
    (14, '2022-05-20T13:29:35.120'),
    (15, '2022-05-20'),
    (16, '13:29:35+08:00'),
    (17, '2022-05-20T13:29:35+0800'),
    (18, '2022-05-20T13:29:35+08'),
    (19, '2022-05-20T13:29:35 +08:00'),
    (20, '2022-05-20T13:29:35.+08:00'),
    (21, '2022-05-20T13:29:35,120+08:00'),
    (22, '2022-05-20T13:29+08:00'),
    (23, '2022-5-20T13:29:35+08:00'),
    (24, '22-05-20T13:29:35+08:00'),
    (25, '2022-00-20T13:29:35+08:00'),
    (26, '2022-13-20T13:29:35+08:00'),
    (27, '2022-05-00T13:29:35+08:00'),
    (28, '2022-04-31T13:29:35+08:00'),
    (29, '2022-02-29T13:29:35+08:00'),
    (30, '1900-02-29T13:29:35+08:00'),
    (31, '2022-05-20T24:00:00+08:00'),
    (32, '2022-05-20T13:60:35+08:00'),
    (33, '2022-05-20T13:29:61+08:00'),
    (34, '2022-05-20T13:29:35+24:00'),
    (35, '2022-05-20T13:29:35+08:60'),
    (36, '2022-05-20T13:29:35Z '),
    (37, ' 2022-05-20T13:29:35Z'),
    (38, '2022-05-20T13:29:35ZZ'),
    (39, '2022-05-20T13:29:35UTC'),
    (40, '20220520T132935Z'),
    (41, '1653024575'),
    (42, 'Fri, 20 May 2022 13:29:35 +0800'),
    (43, '２０２２-05-20T13:29:35Z')
  ) AS c(n, label), pg_temp.check(c.label, jsonb_set(p, '{upload_time}', to_jsonb(c.label))) AS t
 ORDER BY c.n, t.k;

--
-- 15. Several violations in one payload: all reported, each with its path,
--     in document order (the spec's order of members, whatever the order
--     of keys in the JSON text)
--
SELECT t.k, t.errcode, t.field, t.errmsg
  FROM pg_temp.check('several', $${
  "order_key": {"order_number_type": 1, "mchid": "", "out_trade_no": "abc"},
  "order_list": [
    {"merchant_order_no": "A",
     "order_detail_jump_link": {"type": "MINI_PROGRAM", "appid": "wxmerchantapp", "path": "/o"},
     "item_list": [
       {"merchant_item_id": "s1", "name": "", "unit_price": 0, "quantity": -1,
        "image_url": ["ftp://img.example.com/a.png"],
        "item_detail_jump_link": {"type": "URL", "url": "https://shop.example.com/i/1"}},
       {"merchant_item_id": "s1", "name": "Cup", "description": "", "unit_price": 1, "quantity": 1,
        "image_url": ["https://img.example.com/b.png"],
        "item_detail_jump_link": {"type": "MINI_PROGRAM", "appid": "wxotherapp", "path": ""}}]},
    {"merchant_order_no": "A", "item_list": []}],
  "payer": {"openid": ""},
  "logistics_type": 9,
  "upload_time": "2022-05-20 13:29:35"
}$$, 'wxmerchantapp') AS t
 ORDER BY t.k;

-- the order of keys in the JSON text does not matter
SELECT errcode, field FROM shopping_upload.validate_payload(
  '{"upload_time": "", "payer": {}, "order_list": [], "order_key": {}}');

-- the empty object: every top-level requirement at once
SELECT errcode, field FROM shopping_upload.validate_payload('{}');

--
-- 16. Coverage: every errcode of the spec's payload and link tables was
--     produced by some case above, and no other errcode was
--
SELECT coalesce(array_agg(e ORDER BY e) FILTER (WHERE e NOT IN (SELECT errcode FROM seen)), '{}') AS spec_errcodes_not_seen,
       coalesce((SELECT array_agg(DISTINCT errcode) FROM seen WHERE errcode <> ALL (spec)), '{}') AS errcodes_not_in_spec
  FROM (SELECT ARRAY[268485194, 268485195, 268485196, 268485197, 268435461,
                     268485191, 268485201, 268459786, 268485211, 268486047,
                     268485207, 268485208, 268485209, 268485210, 268485272,
                     268485192, 268485193, 268485214, 268485216,
                     268485202, 268485206, 268485204, 268486029, 268485205,
                     268459788, 268459789] AS spec) AS s, unnest(spec) AS e
 GROUP BY spec;
