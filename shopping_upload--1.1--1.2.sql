/* shopping_upload--1.1--1.2.sql */

\echo Use "ALTER EXTENSION shopping_upload UPDATE TO '1.2'" to load this file. \quit

/*
 * The order keys' unique indexes: 1.1 indexed the md5 digests of every
 * key, which scatters a merchant's growing order numbers over the whole
 * index (a full-page image per insert after each checkpoint).  A key of at
 * most 1,000 bytes is indexed as it is again, as in 1.0; a longer one by
 * its digests, compared byte for byte (COLLATE "C": an index in the
 * database's collation would be corrupted by a change of the operating
 * system's collation rules).  Rebuilt here: the update holds orders' lock
 * meanwhile.
 */
DROP INDEX orders_merchant_key;
DROP INDEX orders_transaction_key;
CREATE UNIQUE INDEX orders_merchant_key
	ON orders ((coalesce(appid, '')) COLLATE "C", mchid COLLATE "C",
			   out_trade_no COLLATE "C")
	WHERE order_number_type = 1
	  AND octet_length(coalesce(appid, '')) + octet_length(mchid)
		  + octet_length(out_trade_no) <= 1000;
CREATE UNIQUE INDEX orders_merchant_key_long
	ON orders ((md5(coalesce(appid, ''))), (md5(mchid)), (md5(out_trade_no)))
	WHERE order_number_type = 1
	  AND octet_length(coalesce(appid, '')) + octet_length(mchid)
		  + octet_length(out_trade_no) > 1000;
CREATE UNIQUE INDEX orders_transaction_key
	ON orders ((coalesce(appid, '')) COLLATE "C", transaction_id COLLATE "C")
	WHERE order_number_type = 2
	  AND octet_length(coalesce(appid, '')) + octet_length(transaction_id) <= 1000;
CREATE UNIQUE INDEX orders_transaction_key_long
	ON orders ((md5(coalesce(appid, ''))), (md5(transaction_id)))
	WHERE order_number_type = 2
	  AND octet_length(coalesce(appid, '')) + octet_length(transaction_id) > 1000;

/*
 * The audit keeps what a merchant reads: the version sent, when it was
 * queued, and the digest of the exact body sent; the body itself only for
 * attempts that were not accepted (shopping_upload.audit_request).  Rows
 * written before keep their request, and NULL in the new columns.
 */
ALTER TABLE audit ADD COLUMN version bigint,
	ADD COLUMN queued_at timestamptz,
	ADD COLUMN request_sha256 bytea;
COMMENT ON COLUMN audit.request IS 'The body sent (or refused); under shopping_upload.audit_request = failed (the default) only for attempts that were not accepted';
COMMENT ON COLUMN audit.version IS 'The version of the order (or of its shipping information) that the attempt sent';
COMMENT ON COLUMN audit.queued_at IS 'When that version was queued (the commit of the change): accepted minus queued is the 5-second rule''s measure';
COMMENT ON COLUMN audit.request_sha256 IS 'The SHA-256 digest of the exact body sent, whether or not request keeps it';

/*
 * A TRUNCATE of sub_orders or items changes every order that had some:
 * WeChat still has them, so every order is queued again.
 */
CREATE TRIGGER requeue_orders AFTER TRUNCATE ON sub_orders
	FOR EACH STATEMENT EXECUTE FUNCTION queue_trigger();
CREATE TRIGGER requeue_orders AFTER TRUNCATE ON items
	FOR EACH STATEMENT EXECUTE FUNCTION queue_trigger();

/*
 * The holds: orders (and shipping information) held by a configuration
 * error, a permission or the daily quota, per appid and errcode, with the
 * latest reason.  requeue(NULL, '{held}') ends them on purpose.
 */
CREATE VIEW holds AS
SELECT coalesce(o.appid, current_setting('shopping_upload.appid', true)) AS appid,
	   h.kind,
	   h.last_errcode AS errcode,
	   count(*) AS orders,
	   max(h.next_attempt_at) AS held_until,
	   (array_agg(h.last_errmsg ORDER BY h.updated_at DESC))[1] AS reason
  FROM (SELECT s.order_id, 'order'::text AS kind, s.last_errcode, s.last_errmsg,
			   s.next_attempt_at, s.updated_at
		  FROM order_state s WHERE s.state = 'held'
		UNION ALL
		SELECT s.order_id, 'shipping', s.last_errcode, s.last_errmsg,
			   s.next_attempt_at, s.updated_at
		  FROM shipping_state s WHERE s.state = 'held') h
  JOIN orders o USING (order_id)
 GROUP BY 1, 2, 3;

COMMENT ON VIEW holds IS
'Orders and shipping information held (configuration, permission, daily quota), per appid and errcode, with the latest reason; requeue(NULL, ''{held}'') ends them';

REVOKE ALL ON holds FROM PUBLIC;

/* What the worker's claims of each kind wait for (a locked table). */
CREATE FUNCTION claim_waits(OUT kind text, OUT waiting_for text,
	OUT since timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'su_claim_waits_sql'
LANGUAGE C VOLATILE STRICT;

COMMENT ON FUNCTION claim_waits() IS
'The kinds of call whose claims wait, for what (a lock on a table of theirs) and since when, as the worker last found them';

/*
 * The set-up, checked without sending an order: the settings, the database
 * served, the versions, the secret, https and the CA store, a token fetch.
 * The rows that touch secrets are for those who may read accounts.
 */
CREATE FUNCTION check_setup(appid text DEFAULT NULL)
RETURNS TABLE (item text, ok boolean, detail text)
AS 'MODULE_PATHNAME', 'su_check_setup_sql'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION check_setup(text) IS
'The set-up, item by item (version, preload, database, api_base_url, ca, appid, secret, token), checked without sending an order; ok NULL: not checked';
REVOKE ALL ON FUNCTION check_setup(text) FROM PUBLIC;

/*
 * The databases of the server, as the launcher and the workers see them:
 * which have the extension and their workers, which are left out, and
 * which wait for a background worker slot.
 */
CREATE FUNCTION worker_status(OUT database name, OUT state text,
	OUT workers integer, OUT wanted integer, OUT pids integer[],
	OUT since timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'su_worker_status_sql'
LANGUAGE C VOLATILE STRICT;

COMMENT ON FUNCTION worker_status() IS
'Every database the launcher knows: state (looking, served, no_extension, excluded, no_slot, paused), its workers running and wanted, their process ids, since when';

CREATE VIEW workers AS
SELECT database, state, workers, wanted, pids, since FROM worker_status();

COMMENT ON VIEW workers IS
'The databases of the server and their shopping_upload workers (see worker_status()); state no_slot: no background worker slot was free, raise max_worker_processes';
REVOKE ALL ON workers FROM PUBLIC;
/* names, states and process ids, as pg_database and pg_stat_activity show them, for the stats view */
GRANT EXECUTE ON FUNCTION worker_status() TO PUBLIC;


/*
 * WeChat's 5-second rule, per appid, over the last hour: the orders
 * accepted, the share accepted within 5 s of the commit that queued them,
 * p50 and p99 of commit to accepted, the count over 5 s.  From the audit
 * alone (its queued_at and created_at): nothing more is written per order.
 */
CREATE VIEW upload_latency AS
SELECT coalesce(a.appid, current_setting('shopping_upload.appid', true)) AS appid,
	   count(*) AS accepted,
	   count(*) FILTER (WHERE a.created_at - a.queued_at <= interval '5 seconds')
		 ::float8 / count(*) AS within_5s,
	   percentile_cont(0.5) WITHIN GROUP (ORDER BY a.created_at - a.queued_at) AS p50,
	   percentile_cont(0.99) WITHIN GROUP (ORDER BY a.created_at - a.queued_at) AS p99,
	   count(*) FILTER (WHERE a.created_at - a.queued_at > interval '5 seconds') AS over_5s
  FROM audit a
 WHERE a.created_at > now() - interval '1 hour' AND a.kind = 'order'
   AND a.errcode = 0 AND a.queued_at IS NOT NULL
 GROUP BY 1;

COMMENT ON VIEW upload_latency IS
'WeChat''s 5-second rule per appid over the last hour: orders accepted, the share within 5 s of their commit, p50 and p99 commit to accepted, the count over 5 s';

REVOKE ALL ON upload_latency FROM PUBLIC;

/* a table's name, for the stats view of whoever may read it */
GRANT EXECUTE ON FUNCTION claim_waits() TO PUBLIC;

/*
 * The order_key and payer that an accepted upload sent, kept with its
 * version: its verify asks about them, and a change of them accepted later
 * sends the shipping information again.
 */
ALTER TABLE order_state ADD COLUMN uploaded_key jsonb;
COMMENT ON COLUMN order_state.uploaded_key IS
'The order_key and payer sent by the accepted upload of uploaded_version (a verify''s body)';

/*
 * Writers limited to appids, for a database that serves several merchants
 * (opt-in).  A role listed in appid_grants, or a member of one, may write,
 * see and upload by hand only the orders (and their parts and shipping
 * information) of the appids listed for it; a role none of whose roles is
 * listed is not limited.  Both the current role and the session's role are
 * checked: a limited login role gains nothing by SET ROLE to a group that is
 * not limited.  grant_appid() and revoke_appid() keep the list, and a change
 * of it turns the tables' row level security on while it is not empty (a
 * trigger: a restore that copies the rows turns it on too): it costs nothing
 * until then.  The tables' owner and superusers are never limited.
 */
CREATE TABLE appid_grants (
	role_name	name NOT NULL,
	appid		text NOT NULL,
	PRIMARY KEY (role_name, appid)
);

COMMENT ON TABLE appid_grants IS 'The appids a role (and its members) may write and upload orders for; a role not listed is not limited';

/*
 * Is the role limited to some appids?  Answered only about a role the
 * session's role belongs to (NULL otherwise): nobody learns another's grants.
 */
CREATE FUNCTION writer_limited(role_name name)
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT NOT r.rolsuper
		AND EXISTS (SELECT FROM shopping_upload.appid_grants g
					  JOIN pg_catalog.pg_roles gr ON gr.rolname OPERATOR(pg_catalog.=) g.role_name
					 WHERE pg_catalog.pg_has_role(r.oid, gr.oid, 'MEMBER'))
	  FROM pg_catalog.pg_roles r
	 WHERE r.rolname OPERATOR(pg_catalog.=) $1
	   AND pg_catalog.pg_has_role(SESSION_USER, r.oid, 'MEMBER')
$$;

/* may the role write orders of this appid?  (as writer_limited() answers) */
CREATE FUNCTION appid_allowed(role_name name, appid text)
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT NOT shopping_upload.writer_limited($1)
		OR EXISTS (SELECT FROM shopping_upload.appid_grants g
					 JOIN pg_catalog.pg_roles r ON r.rolname OPERATOR(pg_catalog.=) g.role_name
					WHERE g.appid OPERATOR(pg_catalog.=) $2
					  AND pg_catalog.pg_has_role($1, r.oid, 'MEMBER'))
$$;

/*
 * May the role write this order (its appid: the order's, or
 * shopping_upload.appid)?  An order it cannot see does not exist for it:
 * no.
 */
CREATE FUNCTION order_allowed(role_name name, order_id bigint)
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce((SELECT shopping_upload.appid_allowed($1,
				coalesce(o.appid, pg_catalog.current_setting('shopping_upload.appid', true)))
		   FROM shopping_upload.orders o WHERE o.order_id OPERATOR(pg_catalog.=) $2), false)
$$;

CREATE POLICY appid_grants ON orders
	USING ((SELECT NOT shopping_upload.writer_limited(CURRENT_USER)
				   AND NOT shopping_upload.writer_limited(SESSION_USER))
		   OR (shopping_upload.appid_allowed(CURRENT_USER,
				   coalesce(appid, pg_catalog.current_setting('shopping_upload.appid', true)))
			   AND shopping_upload.appid_allowed(SESSION_USER,
				   coalesce(appid, pg_catalog.current_setting('shopping_upload.appid', true)))));
CREATE POLICY appid_grants ON sub_orders
	USING ((SELECT NOT shopping_upload.writer_limited(CURRENT_USER)
				   AND NOT shopping_upload.writer_limited(SESSION_USER))
		   OR (shopping_upload.order_allowed(CURRENT_USER, order_id)
			   AND shopping_upload.order_allowed(SESSION_USER, order_id)));
CREATE POLICY appid_grants ON items
	USING ((SELECT NOT shopping_upload.writer_limited(CURRENT_USER)
				   AND NOT shopping_upload.writer_limited(SESSION_USER))
		   OR (shopping_upload.order_allowed(CURRENT_USER, order_id)
			   AND shopping_upload.order_allowed(SESSION_USER, order_id)));
CREATE POLICY appid_grants ON shippings
	USING ((SELECT NOT shopping_upload.writer_limited(CURRENT_USER)
				   AND NOT shopping_upload.writer_limited(SESSION_USER))
		   OR (shopping_upload.order_allowed(CURRENT_USER, order_id)
			   AND shopping_upload.order_allowed(SESSION_USER, order_id)));
CREATE POLICY appid_grants ON shipments
	USING ((SELECT NOT shopping_upload.writer_limited(CURRENT_USER)
				   AND NOT shopping_upload.writer_limited(SESSION_USER))
		   OR (shopping_upload.order_allowed(CURRENT_USER, order_id)
			   AND shopping_upload.order_allowed(SESSION_USER, order_id)));
CREATE POLICY appid_grants ON shipment_items
	USING ((SELECT NOT shopping_upload.writer_limited(CURRENT_USER)
				   AND NOT shopping_upload.writer_limited(SESSION_USER))
		   OR (shopping_upload.order_allowed(CURRENT_USER, order_id)
			   AND shopping_upload.order_allowed(SESSION_USER, order_id)));

/* row level security on the order and shipping tables while appid_grants has rows */
CREATE FUNCTION limit_writers()
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	limited boolean := EXISTS (SELECT FROM shopping_upload.appid_grants);
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['orders', 'sub_orders', 'items', 'shippings', 'shipments', 'shipment_items']
	LOOP
		EXECUTE pg_catalog.format('ALTER TABLE shopping_upload.%I %s ROW LEVEL SECURITY', t,
								  CASE WHEN limited THEN 'ENABLE' ELSE 'DISABLE' END);
	END LOOP;
	RETURN limited;
END
$$;

COMMENT ON FUNCTION limit_writers() IS
'Turns the row level security of the order and shipping tables on while appid_grants has rows, off otherwise; returns which';

/* a change of appid_grants (grant_appid(), a restore's COPY) sets it */
CREATE FUNCTION appid_grants_changed()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM shopping_upload.limit_writers();
	RETURN NULL;
END
$$;

CREATE TRIGGER limit_writers AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON appid_grants
	FOR EACH STATEMENT EXECUTE FUNCTION appid_grants_changed();

CREATE FUNCTION grant_appid(role_name name, appid text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) role_name) THEN
		RAISE EXCEPTION 'role "%" does not exist', role_name USING ERRCODE = 'undefined_object';
	END IF;
	INSERT INTO shopping_upload.appid_grants AS g VALUES (role_name, appid) ON CONFLICT DO NOTHING;
END
$$;

COMMENT ON FUNCTION grant_appid(name, text) IS
'Limits a role (and its members) to the appids granted to it; this adds one';

CREATE FUNCTION revoke_appid(role_name name, appid text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	DELETE FROM shopping_upload.appid_grants g
	 WHERE g.role_name OPERATOR(pg_catalog.=) revoke_appid.role_name
	   AND g.appid OPERATOR(pg_catalog.=) revoke_appid.appid;
END
$$;

COMMENT ON FUNCTION revoke_appid(name, text) IS
'Takes an appid back from a role; a role with none left is no longer limited';

SELECT pg_catalog.pg_extension_config_dump('appid_grants', '');
REVOKE ALL ON appid_grants FROM PUBLIC;
REVOKE ALL ON FUNCTION limit_writers(), appid_grants_changed(), grant_appid(name, text),
	revoke_appid(name, text) FROM PUBLIC;
/* the policies call them as the writer: a yes or no about a role and an appid */
GRANT EXECUTE ON FUNCTION writer_limited(name), appid_allowed(name, text),
	order_allowed(name, bigint) TO PUBLIC;

ALTER TABLE shippings ADD COLUMN logistics_type integer,
	ADD COLUMN is_all_delivered boolean,
	ADD COLUMN received_at timestamptz;
ALTER TABLE shipments ADD COLUMN item_desc text;

/*
 * WeChat's order shipping management service (/wxa/sec/order,
 * docs/order-shipping.md): the same shipping tables feed it.  A parcel is
 * described in free text (item_desc; derived from its items when empty);
 * logistics_type is the order's unless the shipping information says
 * otherwise; is_all_delivered ends a split delivery; received_at is when the
 * courier reports the parcel signed for.
 */
CREATE TABLE delivery_companies (
	delivery_id text PRIMARY KEY,	/* what express_company takes */
	delivery_name text,
	updated_at	timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE delivery_companies IS
'WeChat''s delivery company list (get_delivery_list): an express_company must be one of its delivery_ids once it is filled';

CREATE FUNCTION build_trade_shipping_payload(order_id bigint)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'su_build_trade_shipping_payload_sql'
LANGUAGE C VOLATILE STRICT;

COMMENT ON FUNCTION build_trade_shipping_payload(bigint) IS
'The /wxa/sec/order/upload_shipping_info body that would be sent for an order now';

CREATE FUNCTION validate_trade_shipping_payload(payload jsonb, appid text DEFAULT NULL)
RETURNS TABLE (errcode integer, errmsg text, field text)
AS 'MODULE_PATHNAME', 'su_validate_trade_shipping_payload_sql'
LANGUAGE C STABLE PARALLEL RESTRICTED;

COMMENT ON FUNCTION validate_trade_shipping_payload(jsonb, text) IS
'Every violation of the rules of /wxa/sec/order/upload_shipping_info in a body, with WeChat''s errcode and the JSON path; express_company is checked against delivery_companies once that is filled';

COMMENT ON COLUMN shippings.logistics_type IS 'The order shipping management service''s logistics_type; NULL: the order''s';
COMMENT ON COLUMN shippings.is_all_delivered IS 'A split delivery is complete (the service''s is_all_delivered)';
COMMENT ON COLUMN shippings.received_at IS 'When the courier reports the parcel signed for';
COMMENT ON COLUMN shipments.item_desc IS 'The parcel''s description (at most 120 characters); NULL or empty: derived from its items, name*quantity';

SELECT pg_catalog.pg_extension_config_dump('delivery_companies', '');
REVOKE ALL ON delivery_companies FROM PUBLIC;
REVOKE ALL ON FUNCTION build_trade_shipping_payload(bigint),
	validate_trade_shipping_payload(jsonb, text) FROM PUBLIC;

DROP INDEX order_state_due_idx;
DROP INDEX order_state_verify_idx;
DROP INDEX shipping_state_due_idx;
ALTER TABLE order_state SET (fillfactor = 70);
ALTER TABLE shipping_state SET (fillfactor = 70);

/*
 * The due hints (src/queue_sql.h): the everyday updates of a state row
 * (the claim, the record) change no indexed column, so they can be HOT,
 * with room left on each page (fillfactor).  The claims find due rows
 * through an unlogged table of hints instead of indexes on the due columns:
 * nothing of it is written to the WAL; emptied by a crash, a failover or a
 * restore, it is rebuilt from the states by the worker.
 */
CREATE UNLOGGED TABLE due (
	kind		"char" NOT NULL,	/* o order, s shipping, v verify; * the marker */
	order_id	bigint NOT NULL,
	at			timestamptz NOT NULL,	/* at or before the row's due column */
	PRIMARY KEY (order_id, kind)	/* the order first: see due_at_idx */
);
/*
 * The claims' order, by kind: on the kind as text, so that only statements
 * that ask for it (CAST(kind AS text) = ..., ORDER BY at) can use it.  Every
 * other statement names its hints' order_id, the primary key's first
 * column, and can reach them by no other index, whatever the plan cache
 * planned it with: a plan made while due was small, that scanned a kind's
 * every hint for a few of them, would be kept as it grows.
 */
CREATE INDEX due_at_idx ON due ((CAST(kind AS text)), at);

COMMENT ON TABLE due IS
'Hints of the queue''s due rows for the worker''s claims (unlogged: rebuilt from order_state and shipping_state after a crash)';
REVOKE ALL ON due FROM PUBLIC;

/*
 * Rows inserted into a state table by something else than the queue (a
 * restore's COPY, an INSERT by hand) have no due hints: their trigger asks
 * the worker to rebuild the hints (src/queue_commit.c).
 */
CREATE FUNCTION due_rows_inserted()
RETURNS trigger
AS 'MODULE_PATHNAME', 'su_due_rows_inserted'
LANGUAGE C;

CREATE TRIGGER due_hints AFTER INSERT ON order_state
	FOR EACH STATEMENT EXECUTE FUNCTION due_rows_inserted();
CREATE TRIGGER due_hints AFTER INSERT ON shipping_state
	FOR EACH STATEMENT EXECUTE FUNCTION due_rows_inserted();
REVOKE ALL ON FUNCTION due_rows_inserted() FROM PUBLIC;

/*
 * Which appids ship through the order shipping management service: WeChat
 * says (is_trade_managed, cached in managed), or the administrator pins it
 * (pinned wins).  Shipping information of an order whose appid is in the
 * service is queued for /wxa/sec/order/upload_shipping_info (trade_state).
 */
CREATE TABLE trade_apps (
	appid		text PRIMARY KEY,
	managed		boolean,		/* WeChat's is_trade_managed; NULL: not asked yet */
	pinned		boolean,		/* the administrator's; NULL: WeChat decides */
	checked_at	timestamptz,	/* when WeChat was last asked */
	updated_at	timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE trade_apps IS
'The appids in WeChat''s order shipping management service: coalesce(pinned, managed) (pinned by the administrator, managed as is_trade_managed answered)';

/*
 * Where every payment's shipping information stands at the order shipping
 * management service, as shipping_state for /user-order: waiting_for_payment
 * while WeChat has not found the payment yet (10060001, for up to
 * shopping_upload.payment_wait), needs_reship when a change after the
 * shipping was complete and accepted waits for reship().
 */
CREATE TABLE trade_state (
	order_id	bigint PRIMARY KEY,
	state		text NOT NULL DEFAULT 'pending'
		CHECK (state IN ('pending', 'waiting_for_payment', 'uploading', 'uploaded',
						 'retrying', 'rejected', 'dead', 'held', 'needs_reship')),
	version		bigint NOT NULL DEFAULT 1,
	uploaded_version bigint,
	attempts	integer NOT NULL DEFAULT 0,
	next_attempt_at timestamptz DEFAULT now(),
	last_upload_time timestamptz,
	last_errcode integer,
	last_errmsg text,
	queued_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now(),
	payment_wait_since timestamptz, /* the first 10060001 of this wait */
	finish_count integer NOT NULL DEFAULT 0,	/* accepted uploads that completed
												 * the shipping: 1, 2 after the
												 * re-ship */
	reship_allowed boolean NOT NULL DEFAULT false,	/* reship() was called */
	reship_used boolean NOT NULL DEFAULT false,	/* the one re-ship was accepted */
	uploaded_body jsonb,		/* the last accepted body, without upload_time */
	/* WeChat's view of the payment (get_order, push events) */
	wechat_order_state integer,
	in_complaint boolean,
	estimated_settlement_at timestamptz,
	settled_at	timestamptz,
	shipping_reminded_at timestamptz,	/* the 48-hour reminder */
	checked_at	timestamptz,	/* get_order last answered */
	wechat_order jsonb,			/* ... its order object */
	unshipped_resends integer NOT NULL DEFAULT 0,	/* sent again because
													 * get_order showed it
													 * unshipped (at most 2) */
	/* the worker's get_order: next (while asking, the lease's end; NULL: none) */
	check_due_at timestamptz,
	check_attempts integer NOT NULL DEFAULT 0,
	check_errcode integer,
	check_errmsg text,
	/* the receipt reminder (notify_confirm_receive), once */
	confirm_due_at timestamptz,
	confirm_attempts integer NOT NULL DEFAULT 0,
	confirm_notified_at timestamptz,
	confirm_errcode integer,
	confirm_errmsg text
) WITH (fillfactor = 70);

COMMENT ON TABLE trade_state IS
'Upload state of every shipping information queued for the order shipping management service (/wxa/sec/order)';

CREATE TRIGGER due_hints AFTER INSERT ON trade_state
	FOR EACH STATEMENT EXECUTE FUNCTION due_rows_inserted();

CREATE FUNCTION upload_trade_shipping(order_id bigint)
RETURNS TABLE (errcode integer, errmsg text, http_status integer,
	audit_id bigint)
AS 'MODULE_PATHNAME', 'su_upload_trade_shipping_sql'
LANGUAGE C VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION upload_trade_shipping(bigint) IS
'Uploads an order''s shipping information to the order shipping management service now: validate, POST, audit; answers WeChat''s errcode and errmsg';

CREATE FUNCTION reship(order_id bigint)
RETURNS void
AS 'MODULE_PATHNAME', 'su_reship_sql'
LANGUAGE C VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION get_trade_order(order_id bigint)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'su_get_trade_order_sql'
LANGUAGE C VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION get_trade_order(bigint) IS
'Asks the order shipping management service for the payment of an order now (get_order): stores WeChat''s state in trade_state, answers WeChat''s order object';

CREATE FUNCTION notify_confirm_receive(order_id bigint,
	received_at timestamptz DEFAULT NULL)
RETURNS TABLE (errcode integer, errmsg text, http_status integer,
	audit_id bigint)
AS 'MODULE_PATHNAME', 'su_notify_confirm_receive_sql'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION notify_confirm_receive(bigint, timestamptz) IS
'Asks WeChat to remind the buyer to confirm receipt (once a payment): received_at, or shippings.received_at, is when the parcel was signed for';

COMMENT ON FUNCTION reship(bigint) IS
'Allows the payment''s one re-ship: the shipping information as it is now is sent once more, after its shipping was complete and accepted';

SELECT pg_catalog.pg_extension_config_dump('trade_apps', '');
SELECT pg_catalog.pg_extension_config_dump('trade_state', '');

CREATE FUNCTION is_trade_managed(appid text DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'su_is_trade_managed_sql'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION is_trade_managed(text) IS
'Asks WeChat whether an appid (NULL: shopping_upload.appid) is in the order shipping management service; keeps the answer in trade_apps.managed';

CREATE FUNCTION refresh_delivery_companies(appid text DEFAULT NULL)
RETURNS integer
AS 'MODULE_PATHNAME', 'su_refresh_delivery_companies_sql'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION refresh_delivery_companies(text) IS
'Replaces delivery_companies with WeChat''s list (get_delivery_list); returns how many';

CREATE FUNCTION set_msg_jump_path(path text, appid text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'su_set_msg_jump_path_sql'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION set_msg_jump_path(text, text) IS
'The Mini Program page WeChat''s shipping and receipt messages open (set_msg_jump_path); '''' brings back WeChat''s own';

CREATE FUNCTION report_special_order(order_id bigint, kind text,
	ship_by timestamptz DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'su_report_special_order_sql'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION report_special_order(bigint, text, timestamptz) IS
'Reports an unshipped order to WeChat (opspecialorder): kind presale (ship_by: when it ships) or test';

/*
 * The service's push events (trade_manage_remind_access_api,
 * trade_manage_remind_shipping, trade_manage_order_settlement), as the
 * merchant's message endpoint receives them, stored and applied to the
 * payment's state by receive_event().
 */
CREATE TABLE events (
	event_id	bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	received_at timestamptz NOT NULL DEFAULT now(),
	event		text,			/* its Event */
	order_id	bigint,			/* the order of its payment, if one is found */
	applied		text,			/* what it changed, or why nothing */
	payload		jsonb NOT NULL
);

COMMENT ON TABLE events IS
'Push events of the order shipping management service, as received (receive_event()), with the order they name and what they changed';

CREATE FUNCTION receive_event(event jsonb)
RETURNS bigint
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	name text;
	found_order bigint;
	what text;
	id bigint;
	ts timestamptz;
BEGIN
	IF jsonb_typeof(event) IS DISTINCT FROM 'object' THEN
		RAISE EXCEPTION 'a push event is a JSON object, not %', jsonb_typeof(event)
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF octet_length(event::text) > 65536 THEN
		RAISE EXCEPTION 'the push event is % bytes long; at most 65536 are taken', octet_length(event::text)
			USING ERRCODE = 'program_limit_exceeded';
	END IF;
	IF jsonb_typeof(event -> 'Event') IS DISTINCT FROM 'string' THEN
		RAISE EXCEPTION 'the push event has no Event (a string)'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass the JSON WeChat posted to the message endpoint, as it is (XML pushes converted member by member).';
	END IF;
	name := event ->> 'Event';

	/* the payment's order: by transaction_id, else merchant and its order number */
	IF coalesce(event ->> 'transaction_id', '') <> '' THEN
		SELECT o.order_id INTO found_order FROM shopping_upload.orders o
		 WHERE o.transaction_id = event ->> 'transaction_id'
		 ORDER BY o.order_id LIMIT 1;
	END IF;
	IF found_order IS NULL AND coalesce(event ->> 'merchant_trade_no', '') <> '' THEN
		SELECT o.order_id INTO found_order FROM shopping_upload.orders o
		 WHERE o.out_trade_no = event ->> 'merchant_trade_no'
		   AND o.mchid IN (event ->> 'merchant_id', event ->> 'sub_merchant_id')
		 ORDER BY o.order_id LIMIT 1;
	END IF;

	IF name NOT IN ('trade_manage_remind_shipping', 'trade_manage_order_settlement') THEN
		what := 'stored (no payment state to change)';
	ELSIF found_order IS NULL THEN
		what := 'no order has this payment''s transaction_id, or merchant_id and merchant_trade_no';
	ELSIF NOT EXISTS (SELECT FROM shopping_upload.trade_state t WHERE t.order_id = found_order) THEN
		what := 'the order''s shipping was never queued for the shipping management service';
	ELSIF name = 'trade_manage_remind_shipping' THEN
		UPDATE shopping_upload.trade_state t SET shipping_reminded_at = now(), updated_at = now()
		 WHERE t.order_id = found_order;
		what := 'shipping_reminded_at set: WeChat reminds that the payment is unshipped after 48 hours';
	ELSIF jsonb_typeof(event -> 'settlement_time') = 'number' THEN
		ts := to_timestamp((event ->> 'settlement_time')::double precision);
		/* settled: WeChat's view is final, the worker's get_order stops */
		UPDATE shopping_upload.trade_state t SET settled_at = ts, check_due_at = NULL,
			   wechat_order_state = CASE WHEN t.wechat_order_state = 5 THEN 5 ELSE 4 END,
			   updated_at = now()
		 WHERE t.order_id = found_order;
		what := 'settled_at set';
	ELSE
		ts := CASE WHEN jsonb_typeof(event -> 'estimated_settlement_time') = 'number'
			THEN to_timestamp((event ->> 'estimated_settlement_time')::double precision) END;
		UPDATE shopping_upload.trade_state t SET estimated_settlement_at = coalesce(ts, t.estimated_settlement_at),
			   wechat_order_state = CASE WHEN coalesce(t.wechat_order_state, 1) < 2 THEN 2
				   ELSE t.wechat_order_state END,
			   updated_at = now()
		 WHERE t.order_id = found_order;
		what := 'shipped: estimated_settlement_at set';
	END IF;

	INSERT INTO shopping_upload.events (event, order_id, applied, payload)
	VALUES (name, found_order, what, event)
	RETURNING event_id INTO id;
	RETURN id;
END
$$;

COMMENT ON FUNCTION receive_event(jsonb) IS
'Stores a push event of the order shipping management service and applies it to its payment''s state (the 48-hour reminder, shipped, settled); returns its event_id';

SELECT pg_catalog.pg_extension_config_dump('events', '');
SELECT pg_catalog.pg_extension_config_dump('events_event_id_seq', '');

ALTER TABLE audit DROP CONSTRAINT audit_kind_check,
	ADD CONSTRAINT audit_kind_check
		CHECK (kind IN ('order', 'verify', 'shipping', 'trade_shipping', 'trade_order',
					   'trade_confirm'));

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
	   sh.last_errmsg AS shipping_errmsg,
	   /* added in 1.2: the order shipping management service's */
	   t.state AS trade_shipping_state,
	   t.last_errcode AS trade_shipping_errcode,
	   t.last_errmsg AS trade_shipping_errmsg,
	   CASE t.wechat_order_state WHEN 1 THEN 'awaiting_shipment' WHEN 2 THEN 'shipped'
		   WHEN 3 THEN 'receipt_confirmed' WHEN 4 THEN 'complete' WHEN 5 THEN 'refunded'
		   WHEN 6 THEN 'awaiting_settlement' END AS wechat_order_state,
	   t.in_complaint,
	   t.reship_used
  FROM orders o
  LEFT JOIN order_state s USING (order_id)
  LEFT JOIN shipping_state sh USING (order_id)
  LEFT JOIN trade_state t USING (order_id);

REVOKE ALL ON trade_apps, trade_state, events FROM PUBLIC;
REVOKE ALL ON FUNCTION upload_trade_shipping(bigint), reship(bigint),
	get_trade_order(bigint), notify_confirm_receive(bigint, timestamptz),
	receive_event(jsonb), is_trade_managed(text), refresh_delivery_companies(text),
	set_msg_jump_path(text, text), report_special_order(bigint, text, timestamptz) FROM PUBLIC;

/* At a glance: now with what the claims wait for. */
CREATE OR REPLACE VIEW stats AS
SELECT s.*, l.*, t.*
  FROM (SELECT count(*) FILTER (WHERE state = 'pending') AS pending,
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
			 AS shippings_failed,
		   (SELECT string_agg(w.kind || ' waits for ' || w.waiting_for || ' since ' || w.since, '; '
							  ORDER BY w.kind)
			  FROM claim_waits() w)
			 AS claims_waiting,
		   (SELECT w.workers FROM worker_status() w
			 WHERE w.database = current_database())
			 AS workers,
		   (SELECT string_agg(w.database, ', ' ORDER BY w.database) FROM worker_status() w
			 WHERE w.state = 'no_slot')
			 AS databases_unserved
		  FROM order_state) s
 CROSS JOIN (SELECT count(*) AS accepted_last_hour,
					count(*) FILTER (WHERE a.created_at - a.queued_at <= interval '5 seconds')
					  ::float8 / nullif(count(*), 0) AS within_5s_last_hour,
					percentile_cont(0.5) WITHIN GROUP (ORDER BY a.created_at - a.queued_at)
					  AS commit_to_accepted_p50,
					percentile_cont(0.99) WITHIN GROUP (ORDER BY a.created_at - a.queued_at)
					  AS commit_to_accepted_p99,
					count(*) FILTER (WHERE a.created_at - a.queued_at > interval '5 seconds')
					  AS over_5s_last_hour
			   FROM audit a
			  WHERE a.created_at > now() - interval '1 hour' AND a.kind = 'order'
				AND a.errcode = 0 AND a.queued_at IS NOT NULL) l
 /* added in 1.2: the order shipping management service (trade_state) */
 CROSS JOIN (SELECT count(*) FILTER (WHERE x.state = 'uploaded') AS trade_shipped,
					count(*) FILTER (WHERE x.state IN ('pending', 'uploading', 'retrying'))
					  AS trade_pending,
					count(*) FILTER (WHERE x.state = 'waiting_for_payment')
					  AS trade_waiting_for_payment,
					count(*) FILTER (WHERE x.state = 'needs_reship') AS trade_needs_reship,
					count(*) FILTER (WHERE x.state IN ('held', 'rejected', 'dead'))
					  AS trade_failed,
					count(*) FILTER (WHERE x.in_complaint) AS payments_in_complaint,
					count(*) FILTER (WHERE x.finish_count >= 1 AND x.settled_at IS NULL
									 AND coalesce(x.wechat_order_state, 0) NOT IN (4, 5))
					  AS payments_awaiting_settlement,
					count(*) FILTER (WHERE x.settled_at IS NOT NULL) AS payments_settled,
					count(*) FILTER (WHERE x.shipping_reminded_at IS NOT NULL
									 AND x.finish_count = 0)
					  AS payments_reminded_unshipped
			   FROM trade_state x) t;

COMMENT ON VIEW stats IS
'Orders per state, uploads in the last minute, age of the oldest order waiting, audit rows deleted, verifies, shipping information per state, what the workers'' claims wait for, the workers serving this database, the databases of the server left without a worker (no background worker slot), WeChat''s 5-second rule over the last hour: orders accepted, the share within 5 s of their commit, p50 and p99 commit to accepted, the count over 5 s; and the payments at the order shipping management service: shipped, pending, waiting for the payment, needing reship(), failed, in dispute, awaiting settlement, settled, reminded unshipped';
