--
-- Queueing: the trigger on the order tables, enqueue(), requeue(), claim()
-- (no worker serves this database: nothing is uploaded here)
--
SET client_min_messages = warning;
SET shopping_upload.appid = 'wxmerchantapp';
-- start from an empty queue (the earlier tests queued their orders)
TRUNCATE shopping_upload.orders CASCADE;

CREATE FUNCTION pg_temp.state(id bigint) RETURNS text LANGUAGE sql AS $$
  SELECT coalesce((SELECT state || ' v' || version || ' attempts ' || attempts
                     FROM shopping_upload.order_state WHERE order_id = id), 'not queued')
$$;

-- one transaction writing many rows of one order queues it once (version 1)
BEGIN;
INSERT INTO shopping_upload.orders (order_id, order_number_type, transaction_id, openid)
VALUES (100001, 2, '4200000001', 'o-1');
INSERT INTO shopping_upload.sub_orders VALUES (100001, 0, 'm-1', 'URL', 'https://shop.example.com/o/1', NULL, NULL);
INSERT INTO shopping_upload.items (order_id, sub_order_no, item_no, merchant_item_id, name, unit_price, quantity, image_url, link_type, link_url)
SELECT 100001, 0, g, 'i-' || g, 'Tea', 100, 1, '{https://img.example.com/t.png}', 'URL', 'https://shop.example.com/i/1'
  FROM generate_series(0, 9) g;
UPDATE shopping_upload.items SET quantity = 2 WHERE order_id = 100001;
COMMIT;
SELECT pg_temp.state(100001);

-- every later transaction that changes it queues it again: version 2, 3
UPDATE shopping_upload.items SET quantity = 3 WHERE order_id = 100001 AND item_no = 0;
SELECT pg_temp.state(100001);
DELETE FROM shopping_upload.items WHERE order_id = 100001 AND item_no = 9;
SELECT pg_temp.state(100001);

-- a rolled back transaction queues nothing, and changes nothing
BEGIN;
UPDATE shopping_upload.orders SET openid = 'o-2' WHERE order_id = 100001;
INSERT INTO shopping_upload.orders (order_id, order_number_type, transaction_id) VALUES (100002, 2, '4200000002');
ROLLBACK;
SELECT pg_temp.state(100001), pg_temp.state(100002);

-- a rolled back savepoint: what it queued is gone, later changes queue again
BEGIN;
SAVEPOINT s;
INSERT INTO shopping_upload.orders (order_id, order_number_type, transaction_id) VALUES (100003, 2, '4200000003');
ROLLBACK TO s;
INSERT INTO shopping_upload.orders (order_id, order_number_type, transaction_id) VALUES (100003, 2, '4200000003');
COMMIT;
SELECT pg_temp.state(100003);

-- moving an item to another order queues both
INSERT INTO shopping_upload.orders (order_id, order_number_type, transaction_id) VALUES (100004, 2, '4200000004');
INSERT INTO shopping_upload.sub_orders (order_id, sub_order_no) VALUES (100004, 0);
UPDATE shopping_upload.items SET order_id = 100004 WHERE order_id = 100001 AND item_no = 8;
SELECT pg_temp.state(100001), pg_temp.state(100004);

-- auto_upload off: nothing is queued; enqueue() queues by hand
SET shopping_upload.auto_upload = off;
INSERT INTO shopping_upload.orders (order_id, order_number_type, transaction_id) VALUES (100005, 2, '4200000005');
SELECT pg_temp.state(100005);
SELECT shopping_upload.enqueue(100005);
SELECT pg_temp.state(100005);
SELECT shopping_upload.enqueue(999);
RESET shopping_upload.auto_upload;

-- claim(): due orders, oldest first, leased; not twice
SELECT count(*) AS claimed FROM shopping_upload.claim(2);
SELECT count(*) AS claimed FROM shopping_upload.claim(100);
SELECT count(*) AS claimed_again FROM shopping_upload.claim(100);
SELECT state, count(*), bool_and(next_attempt_at > now() + interval '50 seconds') AS leased
  FROM shopping_upload.order_state GROUP BY state;
SELECT shopping_upload.claim(0);

-- requeue() takes back dead and rejected orders only
UPDATE shopping_upload.order_state SET state = 'dead', next_attempt_at = NULL WHERE order_id = 100001;
UPDATE shopping_upload.order_state SET state = 'rejected', next_attempt_at = NULL WHERE order_id = 100003;
SELECT shopping_upload.requeue(100001) AS one, shopping_upload.requeue() AS all_others;
SELECT order_id, state, attempts FROM shopping_upload.order_state ORDER BY 1;
SELECT shopping_upload.requeue(NULL, NULL);

-- order_status: one row per order; stats
SELECT order_id, appid, state FROM shopping_upload.order_status ORDER BY 1;
SELECT pending, uploading, uploaded, retrying, held, rejected, dead, oldest_pending_age IS NOT NULL AS waiting
  FROM shopping_upload.stats;

-- deleting an order deletes its state; TRUNCATE all of them
DELETE FROM shopping_upload.orders WHERE order_id = 100005;
SELECT pg_temp.state(100005);
-- deleted and inserted again in one transaction: queued again, a new version
-- (claimed above, its lease still runs: it stays uploading until the answer)
BEGIN;
DELETE FROM shopping_upload.orders WHERE order_id = 100004;
INSERT INTO shopping_upload.orders (order_id, order_number_type, transaction_id) VALUES (100004, 2, '4200000004');
COMMIT;
SELECT pg_temp.state(100004);
TRUNCATE shopping_upload.orders CASCADE;
SELECT count(*) AS states_left FROM shopping_upload.order_state;

-- the trigger function is for triggers only
SELECT shopping_upload.queue_trigger();
