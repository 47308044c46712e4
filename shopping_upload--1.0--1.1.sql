/* shopping_upload--1.0--1.1.sql */

\echo Use "ALTER EXTENSION shopping_upload UPDATE TO '1.1'" to load this file. \quit

/*
 * The queueing trigger no longer runs SQL as its owner: it notes the order,
 * and the C code writes the states at commit as the tables' owner, under a
 * pinned search_path.  Run as its owner without a pinned search_path, its plans
 * resolved functions and operators through the writer's search_path.
 */
ALTER FUNCTION queue_trigger() SECURITY INVOKER;

/*
 * Order keys of any length: the unique indexes hold digests of the key's
 * parts (an index row holds at most about 2.7 kB).
 */
DROP INDEX orders_merchant_key;
DROP INDEX orders_transaction_key;
CREATE UNIQUE INDEX orders_merchant_key
	ON orders ((pg_catalog.md5(coalesce(appid, ''))), (pg_catalog.md5(mchid)),
			   (pg_catalog.md5(out_trade_no)))
	WHERE order_number_type = 1;
CREATE UNIQUE INDEX orders_transaction_key
	ON orders ((pg_catalog.md5(coalesce(appid, ''))), (pg_catalog.md5(transaction_id)))
	WHERE order_number_type = 2;

/* Audit rows the worker deleted past retention since the server started. */
CREATE FUNCTION audit_rows_deleted()
RETURNS bigint
AS 'MODULE_PATHNAME', 'su_audit_rows_deleted_sql'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION audit_rows_deleted() IS
'Audit rows the worker deleted past shopping_upload.audit_retention since the server started';

/* a count, for the stats view of whoever may read it */
REVOKE ALL ON FUNCTION audit_rows_deleted() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_rows_deleted() TO PUBLIC;

CREATE OR REPLACE VIEW stats AS
SELECT count(*) FILTER (WHERE state = 'pending') AS pending,
	   count(*) FILTER (WHERE state = 'uploading') AS uploading,
	   count(*) FILTER (WHERE state = 'uploaded') AS uploaded,
	   count(*) FILTER (WHERE state = 'retrying') AS retrying,
	   count(*) FILTER (WHERE state = 'held') AS held,
	   count(*) FILTER (WHERE state = 'rejected') AS rejected,
	   count(*) FILTER (WHERE state = 'dead') AS dead,
	   (SELECT count(*) FROM audit a
		 WHERE a.created_at > now() - interval '1 minute' AND a.errcode = 0)
		 AS uploads_last_minute,
	   (SELECT count(*) FROM audit a
		 WHERE a.created_at > now() - interval '1 minute' AND a.errcode <> 0)
		 AS failures_last_minute,
	   now() - min(queued_at) FILTER (WHERE state IN ('pending', 'retrying', 'uploading'))
		 AS oldest_pending_age,
	   audit_rows_deleted() AS audit_rows_deleted
  FROM order_state;

COMMENT ON VIEW stats IS
'Orders per state, uploads in the last minute, age of the oldest order waiting, audit rows deleted';

/*
 * Shipping information (/user-order/orders/shippings), one per order: its
 * delivery_mode, its shipments (shipping_list) and, for split delivery, the
 * items of each shipment (item_list).  As for the order tables, the
 * constraints hold only the structure: shipping information that breaks one
 * of WeChat's rules is still stored, and refused at upload time with its
 * errcode (see validate_shipping_payload()).  No trigger queues it yet: the
 * worker does not upload shipping information (a queueing trigger on these
 * three tables is later work).
 */
CREATE TABLE shippings (
	order_id	bigint PRIMARY KEY REFERENCES orders ON DELETE CASCADE,
	delivery_mode integer,		/* 1 UNIFIED_DELIVERY, 2 SPLIT_DELIVERY */
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE shippings IS 'The shipping information of an order: its delivery_mode';

CREATE TABLE shipments (
	order_id	bigint NOT NULL REFERENCES shippings ON DELETE CASCADE,
	shipment_no integer NOT NULL,	/* position in shipping_list, from 0 */
	tracking_no text,
	express_company text,		/* a code of WeChat's delivery company list */
	consignor_contact text,		/* contact: masked phone numbers */
	receiver_contact text,
	PRIMARY KEY (order_id, shipment_no)
);

COMMENT ON TABLE shipments IS 'The shipping_list entries of an order''s shipping information';

CREATE TABLE shipment_items (
	order_id	bigint NOT NULL,
	shipment_no integer NOT NULL,
	item_no		integer NOT NULL,	/* position in item_list, from 0 */
	merchant_item_id text,		/* an item of the order: checked at upload */
	PRIMARY KEY (order_id, shipment_no, item_no),
	FOREIGN KEY (order_id, shipment_no) REFERENCES shipments
		ON DELETE CASCADE ON UPDATE CASCADE
);

COMMENT ON TABLE shipment_items IS 'The item_list entries of a shipment (split delivery)';

/* Shipping bodies: validation, import, building.  C, see src/shipping.c. */
CREATE FUNCTION validate_shipping_payload(payload jsonb, appid text DEFAULT NULL)
RETURNS TABLE (errcode integer, errmsg text, field text)
AS 'MODULE_PATHNAME', 'su_validate_shipping_payload_sql'
LANGUAGE C STABLE PARALLEL RESTRICTED;

COMMENT ON FUNCTION validate_shipping_payload(jsonb, text) IS
'Every violation of the rules of /user-order/orders/shippings in a body, with WeChat''s errcode and the JSON path; a stored order of the body''s order_key gives the items a split shipment may hold';

CREATE FUNCTION import_shipping(payload jsonb, appid text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'su_import_shipping_sql'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION import_shipping(jsonb, text) IS
'Stores a shipping body as the shipping information of the order of its order_key and appid (replacing any); returns its order_id';

CREATE FUNCTION build_shipping_payload(order_id bigint)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'su_build_shipping_payload_sql'
LANGUAGE C VOLATILE STRICT;

COMMENT ON FUNCTION build_shipping_payload(bigint) IS
'The /user-order/orders/shippings body that would be sent for an order now';

SELECT pg_catalog.pg_extension_config_dump('shippings', '');
SELECT pg_catalog.pg_extension_config_dump('shipments', '');
SELECT pg_catalog.pg_extension_config_dump('shipment_items', '');

/* Nothing is granted to PUBLIC, as in a fresh install: see README, "Privileges". */
REVOKE ALL ON TABLE shippings, shipments, shipment_items FROM PUBLIC;
REVOKE ALL ON FUNCTION validate_shipping_payload(jsonb, text),
	import_shipping(jsonb, text), build_shipping_payload(bigint) FROM PUBLIC;
