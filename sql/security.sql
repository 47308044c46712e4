--
-- Privileges: what no caller can reach through its search_path or its
-- session settings
--
SET client_min_messages = warning;

-- every SECURITY DEFINER function of the extension pins its search_path
SELECT p.oid::regprocedure AS definer_without_search_path
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_depend d
    ON d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid
   AND d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.deptype = 'e'
  JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
 WHERE e.extname = 'shopping_upload' AND p.prosecdef
   AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false);

-- the definers, and their settings
SELECT p.oid::regprocedure AS definer, p.proconfig
  FROM pg_catalog.pg_proc p
 WHERE p.pronamespace = 'shopping_upload'::regnamespace AND p.prosecdef
 ORDER BY p.oid::regprocedure::text;

-- nothing is granted to PUBLIC but audit_rows_deleted(), claim_waits(),
-- worker_status() and the yes-or-no functions the appid_grants policies call
-- as the writer (read by the stats view: a count, the names of locked tables,
-- databases' names, states and process ids): the shipping
-- tables and states, verify_shopping_info() and upload_shipping_info()
-- neither
SELECT p.oid::regprocedure AS executable_by_public
  FROM pg_catalog.pg_proc p
 WHERE p.pronamespace = 'shopping_upload'::regnamespace
   AND pg_catalog.has_function_privilege('public', p.oid, 'EXECUTE')
 ORDER BY p.oid::regprocedure::text;
SELECT c.relname AS table_of_public
  FROM pg_catalog.pg_class c
 WHERE c.relnamespace = 'shopping_upload'::regnamespace
   AND c.relkind IN ('r', 'v', 'S')
   AND (pg_catalog.has_table_privilege('public', c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER'))
 ORDER BY 1;

-- the queueing trigger runs as its caller (it writes nothing itself)
SELECT prosecdef FROM pg_catalog.pg_proc
 WHERE oid = 'shopping_upload.queue_trigger()'::regprocedure;

-- settings that steer privileged calls are an administrator's
CREATE ROLE su_plain;
SET ROLE su_plain;
SET shopping_upload.appid = 'wxother';
SET shopping_upload.timeout = '1ms';
SET shopping_upload.connect_timeout = '1ms';
SET shopping_upload.allow_insecure_http = on;
SET shopping_upload.proxy = 'http://127.0.0.1:1';
SET shopping_upload.secret = 'stolen';
-- where verifies and shipping uploads go, and when the worker verifies
SET shopping_upload.api_base_url = 'http://127.0.0.1:1';
SET shopping_upload.verify_delay = 0;
-- 42501 (insufficient_privilege); its wording differs between majors
\set VERBOSITY sqlstate
SHOW shopping_upload.proxy;
\set VERBOSITY default
SELECT count(*) AS visible_secret_settings FROM pg_catalog.pg_settings
 WHERE name IN ('shopping_upload.secret', 'shopping_upload.secret_file', 'shopping_upload.proxy');
RESET ROLE;
DROP ROLE su_plain;

-- the secret goes nowhere PostgreSQL logs or shows it: not the
-- configuration, not ALTER DATABASE/ROLE
ALTER SYSTEM SET shopping_upload.secret = 'leaky';
ALTER DATABASE contrib_regression SET shopping_upload.secret = 'leaky';
-- a superuser's SET in a session remains
SET shopping_upload.secret = 'for-a-test';
RESET shopping_upload.secret;

-- build_payload() and validate_order() run as their caller: EXECUTE alone
-- is not enough, SELECT on the tables is (README, "Privileges")
CREATE ROLE su_builder;
GRANT USAGE ON SCHEMA shopping_upload TO su_builder;
GRANT EXECUTE ON FUNCTION shopping_upload.build_payload(bigint),
	shopping_upload.validate_order(bigint), shopping_upload.validate_payload(jsonb, text)
	TO su_builder;
SET ROLE su_builder;
\set VERBOSITY sqlstate
SELECT shopping_upload.build_payload(1) IS NOT NULL AS built;
\set VERBOSITY default
SELECT count(*) AS violations FROM shopping_upload.validate_payload('{}');
RESET ROLE;
GRANT SELECT ON shopping_upload.orders, shopping_upload.sub_orders, shopping_upload.items,
	shopping_upload.order_state TO su_builder;
INSERT INTO shopping_upload.orders (order_id, order_number_type, transaction_id, openid)
	VALUES (424242, 2, 'T424242', 'o');
SET ROLE su_builder;
SELECT shopping_upload.build_payload(424242) ->> 'payer' AS payer;
SELECT count(*) > 0 AS has_violations FROM shopping_upload.validate_order(424242);
RESET ROLE;
DELETE FROM shopping_upload.orders WHERE order_id = 424242;
REVOKE ALL ON ALL TABLES IN SCHEMA shopping_upload FROM su_builder;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA shopping_upload FROM su_builder;
REVOKE ALL ON SCHEMA shopping_upload FROM su_builder;
DROP ROLE su_builder;
