/* shopping_upload--1.0--1.1.sql */

\echo Use "ALTER EXTENSION shopping_upload UPDATE TO '1.1'" to load this file. \quit

/*
 * The queueing trigger no longer runs SQL as its owner: it notes the order,
 * and the C code writes the states at commit as the tables' owner, under a
 * pinned search_path.  As SECURITY DEFINER without a search_path, its plans
 * resolved functions and operators through the writer's search_path.
 */
ALTER FUNCTION queue_trigger() SECURITY INVOKER;
