/* shopping_upload--1.1--1.2.sql */

\echo Use "ALTER EXTENSION shopping_upload UPDATE TO '1.2'" to load this file. \quit

/*
 * A TRUNCATE of sub_orders or items changes every order that had some:
 * WeChat still has them, so every order is queued again.
 */
CREATE TRIGGER requeue_orders AFTER TRUNCATE ON sub_orders
	FOR EACH STATEMENT EXECUTE FUNCTION queue_trigger();
CREATE TRIGGER requeue_orders AFTER TRUNCATE ON items
	FOR EACH STATEMENT EXECUTE FUNCTION queue_trigger();
