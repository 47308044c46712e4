-- Makes :n valid 3-item orders, numbered from :first, without queueing them
-- (psql -v n=50000 -v first=1 -f bench/orders.sql).
SET shopping_upload.auto_upload = off;
INSERT INTO shopping_upload.orders (order_id, order_number_type, mchid, out_trade_no, openid, logistics_type)
SELECT g, 1, '1230000109', 'BENCH' || lpad(g::text, 12, '0'), 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o', 1
  FROM generate_series(:first, :first + :n - 1) g;
INSERT INTO shopping_upload.sub_orders
SELECT g, 0, 'BENCH' || g || '-1', 'MINI_PROGRAM', NULL, 'wxtestappid', '/pages/order?no=' || g
  FROM generate_series(:first, :first + :n - 1) g;
INSERT INTO shopping_upload.items
SELECT g, 0, i, 'sku-' || i, '商品 ' || i, NULL, 100 * (i + 1), 1,
       ARRAY['https://img.example.com/' || i || '.png'],
       'MINI_PROGRAM', NULL, 'wxtestappid', '/pages/item?sku=' || i
  FROM generate_series(:first, :first + :n - 1) g, generate_series(0, 2) i;
