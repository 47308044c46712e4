--
-- The order shipping management service's shipping upload
-- (/wxa/sec/order/upload_shipping_info): build_trade_shipping_payload(),
-- validate_trade_shipping_payload(), delivery_companies, and the body built
-- from the tables the /user-order shipping information uses
--
SET client_min_messages = warning;
SET TimeZone = 'Asia/Shanghai';
SET shopping_upload.appid = 'wxmerchantapp';

-- nothing for PUBLIC; delivery_companies is dumped with the merchant's data
SELECT has_table_privilege('public', 'shopping_upload.delivery_companies', 'SELECT') AS public_reads,
       has_function_privilege('public', 'shopping_upload.build_trade_shipping_payload(bigint)', 'EXECUTE') AS public_builds,
       has_function_privilege('public', 'shopping_upload.validate_trade_shipping_payload(jsonb, text)', 'EXECUTE') AS public_validates;
SELECT 'shopping_upload.delivery_companies'::regclass = ANY (extconfig) AS dumped
  FROM pg_extension WHERE extname = 'shopping_upload';

-- an order of two sub-orders; auto_upload off: nothing is queued here
SET shopping_upload.auto_upload = off;
INSERT INTO shopping_upload.orders (order_id, order_number_type, mchid, out_trade_no, openid, logistics_type)
VALUES (9101, 1, '1230000109', 'TRADE_9101', 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o', NULL);
INSERT INTO shopping_upload.sub_orders (order_id, sub_order_no, merchant_order_no)
VALUES (9101, 0, 'M1'), (9101, 1, 'M2');
INSERT INTO shopping_upload.items (order_id, sub_order_no, item_no, merchant_item_id, name, quantity)
VALUES (9101, 0, 0, 'sku-1', '微信红包抱枕', 1),
       (9101, 0, 1, 'sku-2', 'mug', 2),
       (9101, 1, 0, 'sku-3', 'tea', NULL),
       (9101, 1, 1, 'sku-4', '', 3);

-- no shipping information yet
SELECT shopping_upload.build_trade_shipping_payload(9101);
SELECT shopping_upload.build_trade_shipping_payload(-1);

-- unified express: item_desc derived from every item (named ones), in order
INSERT INTO shopping_upload.shippings (order_id, delivery_mode) VALUES (9101, 1);
INSERT INTO shopping_upload.shipments (order_id, shipment_no, tracking_no, express_company, receiver_contact)
VALUES (9101, 0, 'SF1234567890', 'SF', '189****1234');
SELECT jsonb_pretty(shopping_upload.build_trade_shipping_payload(9101) - 'upload_time');
SELECT (shopping_upload.build_trade_shipping_payload(9101) ->> 'upload_time') ~
       '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?\+08:00$' AS upload_time_rfc3339;
SELECT * FROM shopping_upload.validate_trade_shipping_payload(
    shopping_upload.build_trade_shipping_payload(9101));

-- the parcel's own description wins; empty means derived
UPDATE shopping_upload.shipments SET item_desc = 'pillow and mugs' WHERE order_id = 9101;
SELECT shopping_upload.build_trade_shipping_payload(9101) -> 'shipping_list' -> 0 ->> 'item_desc';
UPDATE shopping_upload.shipments SET item_desc = '' WHERE order_id = 9101;
SELECT shopping_upload.build_trade_shipping_payload(9101) -> 'shipping_list' -> 0 ->> 'item_desc';

-- split: each parcel describes its own items; is_all_delivered sent
UPDATE shopping_upload.shippings SET delivery_mode = 2, is_all_delivered = false WHERE order_id = 9101;
INSERT INTO shopping_upload.shipments (order_id, shipment_no, tracking_no, express_company)
VALUES (9101, 1, 'YT9876543210', 'YTO');
INSERT INTO shopping_upload.shipment_items (order_id, shipment_no, item_no, merchant_item_id)
VALUES (9101, 0, 0, 'sku-1'), (9101, 1, 0, 'sku-2'), (9101, 1, 1, 'sku-3');
SELECT jsonb_pretty(shopping_upload.build_trade_shipping_payload(9101) - 'upload_time' - 'order_key' - 'payer');
SELECT * FROM shopping_upload.validate_trade_shipping_payload(
    shopping_upload.build_trade_shipping_payload(9101));

-- a long description is cut to 120 characters, ending with "..."
UPDATE shopping_upload.items SET name = repeat('枕', 200) WHERE order_id = 9101 AND merchant_item_id = 'sku-1';
SELECT char_length(d), right(d, 4)
  FROM (SELECT shopping_upload.build_trade_shipping_payload(9101) -> 'shipping_list' -> 0 ->> 'item_desc' AS d) x;

-- a parcel without any named item: no item_desc, refused with 10060008
UPDATE shopping_upload.items SET name = NULL WHERE order_id = 9101 AND merchant_item_id = 'sku-1';
SELECT * FROM shopping_upload.validate_trade_shipping_payload(
    shopping_upload.build_trade_shipping_payload(9101));

-- split with same-city delivery (the shipping information's logistics_type
-- overrides the order's): 10060006
UPDATE shopping_upload.shippings SET logistics_type = 2 WHERE order_id = 9101;
SELECT * FROM shopping_upload.validate_trade_shipping_payload(
    shopping_upload.build_trade_shipping_payload(9101));

-- virtual goods without any shipment row: one parcel of the whole order
DELETE FROM shopping_upload.shipments WHERE order_id = 9101;
UPDATE shopping_upload.shippings SET delivery_mode = 1, logistics_type = 3, is_all_delivered = NULL
 WHERE order_id = 9101;
SELECT jsonb_pretty(shopping_upload.build_trade_shipping_payload(9101) - 'upload_time' - 'order_key' - 'payer');
SELECT * FROM shopping_upload.validate_trade_shipping_payload(
    shopping_upload.build_trade_shipping_payload(9101));
-- the order's logistics_type when the shipping information has none
UPDATE shopping_upload.shippings SET logistics_type = NULL WHERE order_id = 9101;
UPDATE shopping_upload.orders SET logistics_type = 4 WHERE order_id = 9101;
SELECT shopping_upload.build_trade_shipping_payload(9101) -> 'logistics_type' AS logistics_type,
       jsonb_array_length(shopping_upload.build_trade_shipping_payload(9101) -> 'shipping_list') AS parcels;

-- express_company against WeChat's list, once it is filled
SELECT count(*) FROM shopping_upload.validate_trade_shipping_payload(
    '{"order_key":{"order_number_type":2,"transaction_id":"4200001234"},"logistics_type":1,"delivery_mode":1,
      "shipping_list":[{"tracking_no":"1","express_company":"NOPE","item_desc":"x*1"}],
      "upload_time":"2022-12-15T13:29:35+08:00","payer":{"openid":"o1"}}');
INSERT INTO shopping_upload.delivery_companies (delivery_id, delivery_name)
VALUES ('SF', '顺丰速运'), ('YTO', '圆通速递');
SELECT * FROM shopping_upload.validate_trade_shipping_payload(
    '{"order_key":{"order_number_type":2,"transaction_id":"4200001234"},"logistics_type":1,"delivery_mode":1,
      "shipping_list":[{"tracking_no":"1","express_company":"NOPE","item_desc":"x*1"}],
      "upload_time":"2022-12-15T13:29:35+08:00","payer":{"openid":"o1"}}');

-- every rule, in document order, with the JSON path
SELECT * FROM shopping_upload.validate_trade_shipping_payload('{}');
SELECT * FROM shopping_upload.validate_trade_shipping_payload(
    '{"order_key":{"order_number_type":1,"mchid":"1230000109","out_trade_no":"T1"},
      "logistics_type":1,"delivery_mode":2,
      "shipping_list":[{"tracking_no":"","express_company":"SF","item_desc":""},
                       {"tracking_no":"1","express_company":"YTO","item_desc":"x","contact":{"receiver_contact":"123"}}],
      "upload_time":"2022-12-15 13:29:35","payer":{"openid":"o1"}}');
SELECT * FROM shopping_upload.validate_trade_shipping_payload('[]');
SELECT * FROM shopping_upload.validate_trade_shipping_payload(NULL);

DELETE FROM shopping_upload.delivery_companies;
DELETE FROM shopping_upload.orders WHERE order_id = 9101;
RESET shopping_upload.auto_upload;
