-- bench/payload_reference.sql: the plain-SQL reference for build_payload(),
-- loaded by bench/payload.sh into its throwaway cluster.
--
-- It builds the same jsonb as shopping_upload.build_payload() from the same
-- tables, with jsonb_build_object/jsonb_agg only:
--   * order_key members omitted when NULL or empty, payer.openid and the
--     other members omitted when NULL, item description omitted when NULL or
--     empty;
--   * a jump link holds only its non-NULL members, and is omitted when all
--     four are NULL;
--   * image_url is always an array (NULL elements skipped, [] when NULL);
--   * order_list and item_list are always arrays, in sub_order_no / item_no
--     order;
--   * upload_time is now (clock_timestamp(), as the C code reads the clock),
--     RFC 3339 with milliseconds and a numeric offset in the session's
--     TimeZone.
-- jsonb_strip_nulls() removes the NULL members, which it does at every
-- depth; NULLIF(..., '{}') turns an all-NULL link into NULL first.

CREATE SCHEMA IF NOT EXISTS bench;

CREATE OR REPLACE FUNCTION bench.payload_ref(p_order_id bigint)
RETURNS jsonb
LANGUAGE sql STABLE
AS $ref$
SELECT jsonb_strip_nulls(jsonb_build_object(
	'order_key', jsonb_build_object(
		'order_number_type', o.order_number_type,
		'transaction_id', nullif(o.transaction_id, ''),
		'mchid', nullif(o.mchid, ''),
		'out_trade_no', nullif(o.out_trade_no, '')),
	'order_list', coalesce((
		SELECT jsonb_agg(jsonb_build_object(
			'merchant_order_no', s.merchant_order_no,
			'order_detail_jump_link', nullif(jsonb_strip_nulls(jsonb_build_object(
				'type', s.link_type, 'url', s.link_url,
				'appid', s.link_appid, 'path', s.link_path)), '{}'),
			'item_list', coalesce((
				SELECT jsonb_agg(jsonb_build_object(
					'merchant_item_id', i.merchant_item_id,
					'name', i.name,
					'description', nullif(i.description, ''),
					'unit_price', i.unit_price,
					'quantity', i.quantity,
					'image_url', coalesce(to_jsonb(array_remove(i.image_url, NULL)),
										  '[]'),
					'item_detail_jump_link', nullif(jsonb_strip_nulls(jsonb_build_object(
						'type', i.link_type, 'url', i.link_url,
						'appid', i.link_appid, 'path', i.link_path)), '{}'))
					ORDER BY i.item_no)
				  FROM shopping_upload.items i
				 WHERE i.order_id = s.order_id
				   AND i.sub_order_no = s.sub_order_no), '[]'))
			ORDER BY s.sub_order_no)
		  FROM shopping_upload.sub_orders s
		 WHERE s.order_id = o.order_id), '[]'),
	'payer', jsonb_build_object('openid', o.openid),
	'logistics_type', o.logistics_type,
	'upload_time', to_char(clock_timestamp(),
						   'YYYY-MM-DD"T"HH24:MI:SS.MSTZH:TZM')))
  FROM shopping_upload.orders o
 WHERE o.order_id = p_order_id
$ref$;
