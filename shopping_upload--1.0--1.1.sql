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

/*
 * Verify (/user-order/shoppinginfo/verify): WeChat links an accepted upload
 * to its payment later; the worker asks, verify_delay after the upload was
 * accepted, and keeps WeChat's verify_result verbatim.  A verify never
 * changes the upload's own columns.
 */
ALTER TABLE order_state
	ADD COLUMN verify_due_at timestamptz,	/* next verify; while verifying, the lease's end; NULL: none planned */
	ADD COLUMN verify_version bigint,	/* the accepted version to verify */
	ADD COLUMN verify_attempts integer NOT NULL DEFAULT 0,
	ADD COLUMN verify_result text,	/* WeChat's, verbatim */
	ADD COLUMN verified_version bigint,
	ADD COLUMN verified_at timestamptz,
	ADD COLUMN verify_errcode integer,	/* the last verify's errcode */
	ADD COLUMN verify_errmsg text;

CREATE INDEX order_state_verify_idx ON order_state (verify_due_at)
	WHERE verify_due_at IS NOT NULL;

/* what each audit row is the attempt of; a verify's answer */
ALTER TABLE audit
	ADD COLUMN kind text NOT NULL DEFAULT 'order'
		CHECK (kind IN ('order', 'verify', 'shipping')),
	ADD COLUMN verify_result text;

/*
 * Where every order's shipping information stands, as order_state for the
 * order itself; waiting_for_order: not sent before the order's own upload
 * was accepted.
 */
CREATE TABLE shipping_state (
	order_id	bigint PRIMARY KEY,
	state		text NOT NULL DEFAULT 'pending'
		CHECK (state IN ('pending', 'waiting_for_order', 'uploading', 'uploaded',
						 'retrying', 'rejected', 'dead', 'held')),
	version		bigint NOT NULL DEFAULT 1,
	uploaded_version bigint,
	attempts	integer NOT NULL DEFAULT 0,
	next_attempt_at timestamptz DEFAULT now(),
	last_upload_time timestamptz,
	last_errcode integer,
	last_errmsg text,
	queued_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE shipping_state IS 'Upload state of every queued or uploaded shipping information';

CREATE INDEX shipping_state_due_idx ON shipping_state (next_attempt_at)
	WHERE next_attempt_at IS NOT NULL;

CREATE FUNCTION verify_shopping_info(order_id bigint)
RETURNS TABLE (errcode integer, errmsg text, verify_result text)
AS 'MODULE_PATHNAME', 'su_verify_shopping_info_sql'
LANGUAGE C VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION verify_shopping_info(bigint) IS
'Asks WeChat now whether an order''s upload was linked to its payment; audits it; answers WeChat''s verify_result verbatim';

CREATE FUNCTION upload_shipping_info(order_id bigint)
RETURNS TABLE (errcode integer, errmsg text, http_status integer,
	audit_id bigint)
AS 'MODULE_PATHNAME', 'su_upload_shipping_info_sql'
LANGUAGE C VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION upload_shipping_info(bigint) IS
'Uploads an order''s shipping information to WeChat now: validate, POST, audit; answers WeChat''s errcode and errmsg';

CREATE TRIGGER queue_shipping AFTER INSERT OR UPDATE OR DELETE ON shippings
	FOR EACH ROW EXECUTE FUNCTION queue_trigger('shipping');
CREATE TRIGGER forget_shippings AFTER TRUNCATE ON shippings
	FOR EACH STATEMENT EXECUTE FUNCTION queue_trigger('shipping');
CREATE TRIGGER queue_shipping AFTER INSERT OR UPDATE OR DELETE ON shipments
	FOR EACH ROW EXECUTE FUNCTION queue_trigger('shipping');
CREATE TRIGGER requeue_shippings AFTER TRUNCATE ON shipments
	FOR EACH STATEMENT EXECUTE FUNCTION queue_trigger('shipping');
CREATE TRIGGER queue_shipping AFTER INSERT OR UPDATE OR DELETE ON shipment_items
	FOR EACH ROW EXECUTE FUNCTION queue_trigger('shipping');
CREATE TRIGGER requeue_shippings AFTER TRUNCATE ON shipment_items
	FOR EACH STATEMENT EXECUTE FUNCTION queue_trigger('shipping');

CREATE OR REPLACE VIEW order_status AS
SELECT o.order_id,
	   coalesce(o.appid, current_setting('shopping_upload.appid', true)) AS appid,
	   s.state,
	   coalesce(s.attempts, 0) AS attempts,
	   s.last_errcode,
	   s.last_errmsg,
	   s.next_attempt_at,
	   s.version,
	   s.uploaded_version,
	   s.last_upload_time,
	   s.queued_at,
	   coalesce(s.updated_at, o.updated_at) AS updated_at,
	   s.verify_result,
	   s.verified_at,
	   s.verify_due_at AS next_verify_at,
	   s.verify_errcode,
	   sh.state AS shipping_state,
	   sh.last_errcode AS shipping_errcode,
	   sh.last_errmsg AS shipping_errmsg
  FROM orders o
  LEFT JOIN order_state s USING (order_id)
  LEFT JOIN shipping_state sh USING (order_id);

COMMENT ON VIEW order_status IS
'Where every order stands (its upload, verify and shipping information); state is NULL for an order never queued';

CREATE OR REPLACE VIEW stats AS
SELECT count(*) FILTER (WHERE state = 'pending') AS pending,
	   count(*) FILTER (WHERE state = 'uploading') AS uploading,
	   count(*) FILTER (WHERE state = 'uploaded') AS uploaded,
	   count(*) FILTER (WHERE state = 'retrying') AS retrying,
	   count(*) FILTER (WHERE state = 'held') AS held,
	   count(*) FILTER (WHERE state = 'rejected') AS rejected,
	   count(*) FILTER (WHERE state = 'dead') AS dead,
	   (SELECT count(*) FROM audit a
		 WHERE a.created_at > now() - interval '1 minute' AND a.kind = 'order'
		   AND a.errcode = 0)
		 AS uploads_last_minute,
	   (SELECT count(*) FROM audit a
		 WHERE a.created_at > now() - interval '1 minute' AND a.kind = 'order'
		   AND a.errcode <> 0)
		 AS failures_last_minute,
	   now() - min(queued_at) FILTER (WHERE state IN ('pending', 'retrying', 'uploading'))
		 AS oldest_pending_age,
	   audit_rows_deleted() AS audit_rows_deleted,
	   count(*) FILTER (WHERE verified_at IS NOT NULL) AS verified,
	   count(*) FILTER (WHERE verify_due_at IS NOT NULL) AS awaiting_verification,
	   (SELECT count(*) FROM shipping_state h WHERE h.state = 'uploaded')
		 AS shippings_uploaded,
	   (SELECT count(*) FROM shipping_state h WHERE h.state = 'waiting_for_order')
		 AS shippings_waiting_for_order,
	   (SELECT count(*) FROM shipping_state h
		 WHERE h.state IN ('pending', 'uploading', 'retrying'))
		 AS shippings_pending,
	   (SELECT count(*) FROM shipping_state h
		 WHERE h.state IN ('held', 'rejected', 'dead'))
		 AS shippings_failed
  FROM order_state;

COMMENT ON VIEW stats IS
'Orders per state, uploads in the last minute, age of the oldest order waiting, audit rows deleted, verifies, shipping information per state';

SELECT pg_catalog.pg_extension_config_dump('shipping_state', '');

REVOKE ALL ON TABLE shipping_state FROM PUBLIC;
REVOKE ALL ON FUNCTION verify_shopping_info(bigint),
	upload_shipping_info(bigint) FROM PUBLIC;
