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
