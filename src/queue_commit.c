/*-------------------------------------------------------------------------
 *
 * queue_commit.c
 *		Queueing at commit: the trigger on the order and shipping tables,
 *		enqueue(), and the writes of a transaction's states just before it
 *		commits.
 *
 * The trigger only notes which orders the transaction wrote.  Their states
 * are written just before it commits, all at once and in order_id order:
 * every transaction that queues orders takes their state rows' locks in the
 * same order, at the same moment (its end), holding no other lock of ours,
 * so queueing adds no deadlock to the writers' own transactions, whatever
 * order they write their orders in.  The worker never waits for a state row
 * (SKIP LOCKED), and a call by hand holds one row only.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "common.h"
#include "queue_commit.h"
#include "queue_sql.h"
#include "settings.h"
#include "spi_util.h"
#include "wake.h"

/* an order this transaction wrote or deleted */
typedef struct NotedOrder
{
	int64		order_id;		/* hash key */

	/*
	 * What to do at commit, each kept as the outermost subtransaction that
	 * asked for it (InvalidSubTransactionId: nothing): a subtransaction that
	 * rolls back takes what it asked for with it, as it takes its writes.
	 */
	SubTransactionId queue;		/* queue it, if it still exists */
	SubTransactionId forget;	/* its row was deleted: forget it if gone */
	SubTransactionId ship_queue;	/* the same for its shipping information */
	SubTransactionId ship_forget;
} NotedOrder;

/* what the statements of queue_noted() look at */
typedef enum NoteWant
{
	NOTE_QUEUE,
	NOTE_FORGET,
	NOTE_SHIP_QUEUE,
	NOTE_SHIP_FORGET
} NoteWant;

#define NOTED(sub) ((sub) != InvalidSubTransactionId)

/* lives in TopTransactionContext */
static HTAB *noted = NULL;

/* TRUNCATEs, each as the subtransaction that made it (as in NotedOrder) */
static SubTransactionId truncated;	/* orders: forget every gone order */
static SubTransactionId requeue_all;	/* sub_orders or items: queue every order */
static SubTransactionId ship_truncated; /* shippings: the same for their states */
static SubTransactionId ship_requeue_all;	/* shipments or their items */
static SubTransactionId wrote;	/* any of the tables, whatever auto_upload says */
static uint32 wake_at_commit = 0;	/* bits 1 << SuDue */
static bool release_holds_at_commit = false;	/* see su_queue_release_holds() */

/* each with the due hints ([1]) and without ([0]) */
static SPIPlanPtr queue_plan[2];
static SPIPlanPtr forget_plan[2];
static SPIPlanPtr ship_queue_plan[2];
static SPIPlanPtr ship_forget_plan[2];
static SPIPlanPtr trade_queue_plan = NULL;
static SPIPlanPtr trade_forget_plan = NULL;

/*
 * Does this database have the due hints (1.2 on)?  The writers' queueing
 * runs whatever version the database has: until ALTER EXTENSION UPDATE,
 * its statements are the ones without the hints, and the update's first
 * worker builds them from the states.  Read at each queue_noted().
 */
static bool hints = false;

/* inside an insert of the queue's own into a state table (see below) */
static bool own_insert = false;

/* statement write (src/queue_sql.h), with the due hints when they exist */
#define HINTED(kind, write, cols) \
	(hints ? SU_SQL_HINTED(kind, write, cols) : (write))

static void
note_init(void)
{
	if (noted == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(int64);
		ctl.entrysize = sizeof(NotedOrder);
		ctl.hcxt = TopTransactionContext;
		noted = hash_create("shopping_upload noted orders", 64, &ctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
}

/* notes that this subtransaction asks for *what (keeping an outer one's ask) */
static void
note_ask(SubTransactionId *what)
{
	SubTransactionId sub = GetCurrentSubTransactionId();

	if (!NOTED(*what) || sub < *what)
		*what = sub;
}

/* a subtransaction rolled back: what it (or its children) asked for goes */
static void
note_unask(SubTransactionId *what, SubTransactionId aborted)
{
	if (NOTED(*what) && *what >= aborted)
		*what = InvalidSubTransactionId;
}

static void
note_order(int64 order_id, bool queue, bool forget, bool shipping)
{
	NotedOrder *o;
	bool		found;

	note_init();
	o = hash_search(noted, &order_id, HASH_ENTER, &found);
	if (!found)
		o->queue = o->forget = o->ship_queue = o->ship_forget = InvalidSubTransactionId;
	if (queue)
		note_ask(shipping ? &o->ship_queue : &o->queue);
	if (forget)
		note_ask(shipping ? &o->ship_forget : &o->forget);
}

static void
note_truncate(const char *table)
{
	note_init();
	if (strcmp(table, "orders") == 0)
		note_ask(&truncated);
	else if (strcmp(table, "sub_orders") == 0 || strcmp(table, "items") == 0)
		note_ask(&requeue_all);
	else if (strcmp(table, "shippings") == 0)
		note_ask(&ship_truncated);
	else
		note_ask(&ship_requeue_all);
}

/* a rolled back subtransaction did not write what it wrote: what it asked for goes */
static void
queue_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	HASH_SEQ_STATUS seq;
	NotedOrder *o;

	(void) parentSubid;
	(void) arg;
	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	note_unask(&wrote, mySubid);
	if (noted == NULL)
		return;
	hash_seq_init(&seq, noted);
	note_unask(&truncated, mySubid);
	note_unask(&requeue_all, mySubid);
	note_unask(&ship_truncated, mySubid);
	note_unask(&ship_requeue_all, mySubid);
	while ((o = hash_seq_search(&seq)) != NULL)
	{
		note_unask(&o->queue, mySubid);
		note_unask(&o->forget, mySubid);
		note_unask(&o->ship_queue, mySubid);
		note_unask(&o->ship_forget, mySubid);
	}
}

static int
int64_cmp(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return x < y ? -1 : (x > y ? 1 : 0);
}

/* the owner of the extension's tables, as whom the states are written */
static Oid
state_owner(void)
{
	Oid			nsp = get_namespace_oid(SU_SCHEMA, false);
	Oid			relid = get_relname_relid("order_state", nsp);
	HeapTuple	tup;
	Oid			owner;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table " SU_SCHEMA ".order_state does not exist")));
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/* the states' writer: the tables' owner, search_path pinned, SPI connected */
typedef struct AsOwner
{
	Oid			userid;
	int			sec;
	int			nestlevel;
} AsOwner;

static void
enter_as_owner(AsOwner *saved)
{
	GetUserIdAndSecContext(&saved->userid, &saved->sec);
	SetUserIdAndSecContext(state_owner(), saved->sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	saved->nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);

	/*
	 * Each statement reaches its rows by key (as the worker's): a plan kept
	 * from while due or a state table was small must not scan it whole once
	 * it is not.
	 */
	(void) set_config_option("enable_seqscan", "off", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

static void
leave_as_owner(const AsOwner *saved)
{
	SPI_finish();
	AtEOXact_GUC(false, saved->nestlevel);
	SetUserIdAndSecContext(saved->userid, saved->sec);
}

/*
 * The statements that write the noted orders' states run as of now, not as
 * of the transaction's snapshot, and as READ COMMITTED statements do (see
 * queue_noted()): with the latest snapshot, each its own.
 */
static int
exec_now(SPIPlanPtr plan, Datum *args)
{
	int			ret = SPI_execute_snapshot(plan, args, NULL, GetLatestSnapshot(),
										   InvalidSnapshot, false, true, 0);

	/* rows returned: by the statement with the hints, or by its RETURNING */
	if (ret == SPI_OK_INSERT_RETURNING || ret == SPI_OK_UPDATE_RETURNING ||
		ret == SPI_OK_DELETE_RETURNING)
		ret = SPI_OK_SELECT;
	return ret;
}

static int
exec_now_sql(const char *sql)
{
	SPIPlanPtr	plan = SPI_prepare(sql, 0, NULL);
	int			ret;

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	ret = exec_now(plan, NULL);
	SPI_freeplan(plan);
	return ret;
}

/* runs statement plan with the sorted ids of the noted orders that want it */
static uint64
apply_noted(SPIPlanPtr plan, NoteWant want, int64 *ids, int n_all)
{
	Datum	   *elems = palloc(sizeof(Datum) * n_all);
	Datum		args[1];
	HASH_SEQ_STATUS seq;
	NotedOrder *o;
	int			n = 0;
	int			ret;

	hash_seq_init(&seq, noted);
	while ((o = hash_seq_search(&seq)) != NULL)
		if ((want == NOTE_QUEUE && NOTED(o->queue)) ||
			(want == NOTE_FORGET && NOTED(o->forget)) ||
			(want == NOTE_SHIP_QUEUE && NOTED(o->ship_queue)) ||
			(want == NOTE_SHIP_FORGET && NOTED(o->ship_forget)))
			ids[n++] = o->order_id;
	if (n == 0)
		return 0;
	qsort(ids, n, sizeof(int64), int64_cmp);
	for (int i = 0; i < n; i++)
		elems[i] = Int64GetDatum(ids[i]);
	args[0] = su_array(elems, NULL, n, INT8OID);
	ret = exec_now(plan, args);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not queue the orders of this transaction");
	return SPI_processed;
}

/*
 * Orders deleted and written again under the same id in this transaction
 * (or after a TRUNCATE of it) are new orders: no upload carried their
 * content, and their verify is not theirs.  Their states, kept for the
 * lease of a request in flight, say so: uploaded_version and the verify
 * columns are cleared, and one not queued by the trigger (auto_upload off)
 * is queued as a new version all the same, so that its state never claims
 * an upload.  True if one was queued so.
 */
static bool
requeue_reborn(int64 *ids, long n_all, bool all)
{
	static SPIPlanPtr plans[2];
	Oid			types[2] = {INT8ARRAYOID, BOOLARRAYOID};
	Datum	   *elems = palloc(sizeof(Datum) * Max(n_all, 1));
	Datum	   *queued = palloc(sizeof(Datum) * Max(n_all, 1));
	Datum		args[2];
	HASH_SEQ_STATUS seq;
	NotedOrder *o;
	int			n = 0;
	bool		any_unqueued = false;
	uint64		reborn = 0;

	hash_seq_init(&seq, noted);
	while ((o = hash_seq_search(&seq)) != NULL)
		if (NOTED(o->forget))
			ids[n++] = o->order_id;
	qsort(ids, n, sizeof(int64), int64_cmp);
	for (int i = 0; i < n; i++)
	{
		NotedOrder *e = hash_search(noted, &ids[i], HASH_FIND, NULL);
		bool		q = NOTED(e->queue);

		elems[i] = Int64GetDatum(ids[i]);
		queued[i] = BoolGetDatum(q);
		any_unqueued |= !q;
	}
#define RESET " uploaded_version = NULL, uploaded_key = NULL, verify_due_at = NULL, verify_version = NULL," \
		" verify_attempts = 0, verify_result = NULL, verified_version = NULL," \
		" verified_at = NULL, verify_errcode = NULL, verify_errmsg = NULL," \
		" updated_at = pg_catalog.now(),"
#define QUEUED "($2)[pg_catalog.array_position($1, s.order_id)]"
	if (n > 0)
	{
		su_kept_plan(&plans[hints], HINTED(SU_HINT_ORDER,
										  "UPDATE " SU_SCHEMA ".order_state s SET" RESET
										  " version = s.version OPERATOR(pg_catalog.+)"
										  "  CASE WHEN " QUEUED " THEN 0 ELSE 1 END,"
										  " state = CASE WHEN " QUEUED " OR " SU_SQL_IN_FLIGHT("s")
										  "  THEN s.state ELSE 'pending' END,"
										  " next_attempt_at = CASE WHEN " QUEUED " OR " SU_SQL_IN_FLIGHT("s")
										  "  THEN s.next_attempt_at ELSE pg_catalog.now() END"
										  " WHERE s.order_id OPERATOR(pg_catalog.=) ANY ($1)"
										  " AND EXISTS (SELECT FROM " SU_SCHEMA ".orders o"
										  "  WHERE o.order_id OPERATOR(pg_catalog.=) s.order_id OFFSET 0)"
										  " RETURNING s.order_id, s.next_attempt_at AS hint_at",
										  "w.order_id"),
					 2, types, CURSOR_OPT_GENERIC_PLAN);
		args[0] = su_array(elems, NULL, n, INT8OID);
		args[1] = su_array(queued, NULL, n, BOOLOID);
		if (exec_now(plans[hints], args) != SPI_OK_SELECT)
			elog(ERROR, "could not queue the orders written again in this transaction");
		if (any_unqueued)
			reborn += SPI_processed;
	}
	/* after a TRUNCATE, every order there is was written by this transaction */
	if (all)
	{
		if (exec_now_sql(HINTED(SU_HINT_ORDER,
									   "UPDATE " SU_SCHEMA ".order_state s SET" RESET
									   " version = s.version OPERATOR(pg_catalog.+) 1,"
									   " state = CASE WHEN " SU_SQL_IN_FLIGHT("s") " THEN s.state ELSE 'pending' END,"
									   " next_attempt_at = CASE WHEN " SU_SQL_IN_FLIGHT("s")
									   "  THEN s.next_attempt_at ELSE pg_catalog.now() END"
									   " WHERE EXISTS (SELECT FROM " SU_SCHEMA ".orders o"
									   "  WHERE o.order_id OPERATOR(pg_catalog.=) s.order_id)"
									   " RETURNING s.order_id, s.next_attempt_at AS hint_at",
									   "w.order_id")) != SPI_OK_SELECT)
			elog(ERROR, "could not queue the orders written again after TRUNCATE");
		reborn += SPI_processed;
	}
#undef QUEUED
#undef RESET
	return reborn > 0;
}

/*
 * The same for shipping information, after the orders (one global lock
 * order: order states, then shipping states).  It is queued pending; the
 * worker sends it once the order's own upload was accepted, and until then
 * keeps it waiting_for_order.  Nothing is prepared unless a shipping table
 * was written (a database still at 1.0 has no shipping_state).
 */
static void queue_noted_now(int64 *ids, long n);
static void queue_noted_trade(int64 *ids, long n);

static void
queue_noted_shipping(int64 *ids, long n)
{
	Oid			types[1] = {INT8ARRAYOID};
	HASH_SEQ_STATUS seq;
	NotedOrder *o;
	bool		any = NOTED(ship_truncated) || NOTED(ship_requeue_all);

	hash_seq_init(&seq, noted);
	while ((o = hash_seq_search(&seq)) != NULL)
		if (NOTED(o->ship_queue) || NOTED(o->ship_forget))
			any = true;
	if (!any)
		return;

	su_kept_plan(&ship_queue_plan[hints], HINTED(SU_HINT_SHIPPING,
												 "INSERT INTO " SU_SCHEMA ".shipping_state AS s (order_id, queued_at)"
												 " SELECT h.order_id, pg_catalog.clock_timestamp()"
												 " FROM pg_catalog.unnest($1) AS k(order_id),"
												 "  LATERAL (SELECT h.order_id FROM " SU_SCHEMA ".shippings h"
												 "   WHERE h.order_id OPERATOR(pg_catalog.=) k.order_id OFFSET 0) h"
												 " ORDER BY h.order_id"
												 " ON CONFLICT (order_id) DO UPDATE SET"
												 SU_SQL_QUEUE_AGAIN("s")
												 " RETURNING s.order_id, s.next_attempt_at AS hint_at",
												 "w.order_id"),
				 1, types, CURSOR_OPT_GENERIC_PLAN);
	su_kept_plan(&ship_forget_plan[hints], HINTED(SU_HINT_SHIPPING,
												  "DELETE FROM " SU_SCHEMA ".shipping_state s"
												  " WHERE s.order_id OPERATOR(pg_catalog.=) ANY ($1)"
												  " AND NOT EXISTS (SELECT FROM " SU_SCHEMA ".shippings h"
												  "  WHERE h.order_id OPERATOR(pg_catalog.=) s.order_id OFFSET 0)"
												  " RETURNING s.order_id, CAST(NULL AS pg_catalog.timestamptz) AS hint_at",
												  "w.order_id"),
				 1, types, CURSOR_OPT_GENERIC_PLAN);
	if (NOTED(ship_requeue_all) &&
		exec_now_sql(HINTED(SU_HINT_SHIPPING,
								   "UPDATE " SU_SCHEMA ".shipping_state s SET"
								   SU_SQL_QUEUE_AGAIN("s")
								   " RETURNING s.order_id, s.next_attempt_at AS hint_at",
								   "w.order_id")) != SPI_OK_SELECT)
		elog(ERROR, "could not queue the shipping information of truncated shipments");
	if (NOTED(ship_truncated) &&
		exec_now_sql(HINTED(SU_HINT_SHIPPING,
								   "DELETE FROM " SU_SCHEMA ".shipping_state s WHERE NOT EXISTS"
								   " (SELECT FROM " SU_SCHEMA ".shippings h"
								   "  WHERE h.order_id OPERATOR(pg_catalog.=) s.order_id)"
								   " RETURNING s.order_id, CAST(NULL AS pg_catalog.timestamptz) AS hint_at",
								   "w.order_id")) != SPI_OK_SELECT)
		elog(ERROR, "could not delete the states of truncated shipping information");
	if (apply_noted(ship_queue_plan[hints], NOTE_SHIP_QUEUE, ids, n) > 0 ||
		NOTED(ship_requeue_all))
		wake_at_commit |= 1 << SU_DUE_SHIPPING;
	(void) apply_noted(ship_forget_plan[hints], NOTE_SHIP_FORGET, ids, n);
	if (hints)
		queue_noted_trade(ids, n);
}

/*
 * The same for the order shipping management service (trade_state, 1.2
 * and later, which has the due hints): the shipping information of an
 * order whose appid is in the service (trade_apps; an order without an
 * appid is the configured appid's) is queued for it too.  It waits for the
 * payment, never for the order's own upload.
 */
#define TRADE_CONFIGURED \
	"NULLIF(pg_catalog.current_setting('shopping_upload.appid', true), '')"
#define TRADE_APP(o, col) \
	"(SELECT a." col " FROM " SU_SCHEMA ".trade_apps a" \
	"  WHERE a.appid OPERATOR(pg_catalog.=) coalesce(" o ".appid, " TRADE_CONFIGURED "))"
#define TRADE_IN_SERVICE(o) \
	"coalesce(" TRADE_APP(o, "pinned") "," \
	" CASE pg_catalog.current_setting('shopping_upload.trade_managed', true)" \
	"  WHEN 'on' THEN true WHEN 'off' THEN false END," \
	" " TRADE_APP(o, "managed") ", false)"

static void
queue_noted_trade(int64 *ids, long n)
{
	Oid			types[1] = {INT8ARRAYOID};

	su_kept_plan(&trade_queue_plan, SU_SQL_HINTED(SU_HINT_TRADE,
												  "INSERT INTO " SU_SCHEMA ".trade_state AS s (order_id, queued_at)"
												  " SELECT h.order_id, pg_catalog.clock_timestamp()"
												  " FROM pg_catalog.unnest($1) AS k(order_id),"
												  "  LATERAL (SELECT h.order_id FROM " SU_SCHEMA ".shippings h"
												  "   JOIN " SU_SCHEMA ".orders o ON o.order_id OPERATOR(pg_catalog.=) h.order_id"
												  "   WHERE h.order_id OPERATOR(pg_catalog.=) k.order_id"
												  "   AND " TRADE_IN_SERVICE("o") " OFFSET 0) h"
												  " ORDER BY h.order_id"
												  " ON CONFLICT (order_id) DO UPDATE SET"
												  SU_SQL_QUEUE_AGAIN("s")
												  " RETURNING s.order_id, s.next_attempt_at AS hint_at",
												  "w.order_id"),
				 1, types, CURSOR_OPT_GENERIC_PLAN);
	su_kept_plan(&trade_forget_plan,
				 SU_SQL_TRADE_FORGET("s.order_id OPERATOR(pg_catalog.=) ANY ($1)"
									 " AND NOT EXISTS (SELECT FROM " SU_SCHEMA ".shippings h"
									 "  WHERE h.order_id OPERATOR(pg_catalog.=) s.order_id OFFSET 0)"),
				 1, types, CURSOR_OPT_GENERIC_PLAN);
	if (NOTED(ship_requeue_all) &&
		exec_now_sql(SU_SQL_HINTED(SU_HINT_TRADE,
								   "UPDATE " SU_SCHEMA ".trade_state s SET"
								   SU_SQL_QUEUE_AGAIN("s")
								   " RETURNING s.order_id, s.next_attempt_at AS hint_at",
								   "w.order_id")) != SPI_OK_SELECT)
		elog(ERROR, "could not queue the trade shipping of truncated shipments");
	if (NOTED(ship_truncated) &&
		exec_now_sql(SU_SQL_TRADE_FORGET("NOT EXISTS (SELECT FROM " SU_SCHEMA ".shippings h"
										 " WHERE h.order_id OPERATOR(pg_catalog.=) s.order_id)")) != SPI_OK_SELECT)
		elog(ERROR, "could not delete the trade states of truncated shipping information");
	if (apply_noted(trade_queue_plan, NOTE_SHIP_QUEUE, ids, n) > 0 ||
		NOTED(ship_requeue_all))
		wake_at_commit |= 1 << SU_DUE_TRADE;
	(void) apply_noted(trade_forget_plan, NOTE_SHIP_FORGET, ids, n);
}

/*
 * Just before commit: writes the noted orders' states, as the tables' owner
 * and with a pinned search_path (the transaction may have set any).
 */
static void
queue_noted(void)
{
	long		n = hash_get_num_entries(noted);
	int64	   *ids;
	AsOwner		saved;
	int			save_iso;

	if (n == 0 && !NOTED(truncated) && !NOTED(requeue_all) &&
		!NOTED(ship_truncated) && !NOTED(ship_requeue_all))
		return;
	ids = MemoryContextAlloc(TopTransactionContext, sizeof(int64) * Max(n, 1));
	enter_as_owner(&saved);
	PushActiveSnapshot(GetLatestSnapshot());
	hints = OidIsValid(get_relname_relid("due", get_namespace_oid(SU_SCHEMA, false)));

	/*
	 * A REPEATABLE READ or SERIALIZABLE writer must commit as it would
	 * without the extension: the worker updates the state rows at any time,
	 * and an update of a row changed after the transaction's snapshot is a
	 * serialization failure at that level.  The states are the extension's
	 * bookkeeping, not data the transaction read: they are written as of
	 * now (each statement with the latest snapshot) and as READ COMMITTED
	 * writes them, waiting for a row another transaction holds and then
	 * updating its latest version.  The level is the transaction's again
	 * before anything else of the commit runs.
	 */
	save_iso = XactIsoLevel;
	XactIsoLevel = XACT_READ_COMMITTED;
	PG_TRY();
	{
		own_insert = true;
		queue_noted_now(ids, n);
	}
	PG_FINALLY();
	{
		own_insert = false;
		XactIsoLevel = save_iso;
	}
	PG_END_TRY();

	PopActiveSnapshot();
	leave_as_owner(&saved);
}

/* queue_noted()'s statements (SPI connected, as the tables' owner) */
static void
queue_noted_now(int64 *ids, long n)
{
	Oid			types[1] = {INT8ARRAYOID};

	/*
	 * The plans are kept, and generic (planned once per backend: left to
	 * choose, the plan cache would plan anew at every commit, a custom plan
	 * for the array's size looking cheaper than the generic one): the
	 * OFFSET 0 fences make them look each order up by its key, whatever the
	 * tables' size was when they were made (a join planned on a small table
	 * would scan it whole at every commit as it grows).
	 *
	 * An order in flight keeps its lease: the worker sends the new version
	 * once the answer to the old one is in (su_queue_record), so that one
	 * request per order is in flight at a time.
	 */
	su_kept_plan(&queue_plan[hints], HINTED(SU_HINT_ORDER,
											"INSERT INTO " SU_SCHEMA ".order_state AS s (order_id, queued_at)"
											" SELECT o.order_id, pg_catalog.clock_timestamp()"
											" FROM pg_catalog.unnest($1) AS k(order_id),"
											"  LATERAL (SELECT o.order_id FROM " SU_SCHEMA ".orders o"
											"   WHERE o.order_id OPERATOR(pg_catalog.=) k.order_id OFFSET 0) o"
											" ORDER BY o.order_id"
											" ON CONFLICT (order_id) DO UPDATE SET"
											SU_SQL_QUEUE_AGAIN("s")
											" RETURNING s.order_id, s.next_attempt_at AS hint_at",
											"w.order_id"),
				 1, types, CURSOR_OPT_GENERIC_PLAN);

	/* a deleted order's hints go with its state (verify's too) */
#define FORGET(where) \
	"DELETE FROM " SU_SCHEMA ".order_state s WHERE " where " RETURNING s.order_id"
#define FORGET_HINTED(where) \
	"WITH w AS (" FORGET(where) ")," \
	" hd AS (DELETE FROM " SU_SCHEMA ".due h" \
	"  WHERE h.kind OPERATOR(pg_catalog.=) ANY ('{" SU_HINT_ORDER "," SU_HINT_VERIFY "}')" \
	"  AND h.order_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT w.order_id FROM w)))" \
	" SELECT w.order_id FROM w"
#define FORGET_LISTED \
	"s.order_id OPERATOR(pg_catalog.=) ANY ($1)" \
	" AND NOT EXISTS (SELECT FROM " SU_SCHEMA ".orders o" \
	"  WHERE o.order_id OPERATOR(pg_catalog.=) s.order_id OFFSET 0)"
#define FORGET_TRUNCATED \
	"NOT EXISTS (SELECT FROM " SU_SCHEMA ".orders o" \
	" WHERE o.order_id OPERATOR(pg_catalog.=) s.order_id)"
	su_kept_plan(&forget_plan[hints],
				 hints ? FORGET_HINTED(FORGET_LISTED) : FORGET(FORGET_LISTED),
				 1, types, CURSOR_OPT_GENERIC_PLAN);
	if (NOTED(truncated) &&
		exec_now_sql(hints ? FORGET_HINTED(FORGET_TRUNCATED) : FORGET(FORGET_TRUNCATED)) != SPI_OK_SELECT)
		elog(ERROR, "could not delete the states of truncated orders");
	if (apply_noted(queue_plan[hints], NOTE_QUEUE, ids, n) > 0)
		wake_at_commit |= 1 << SU_DUE_ORDER;
	(void) apply_noted(forget_plan[hints], NOTE_FORGET, ids, n);
	if (requeue_reborn(ids, n, NOTED(truncated)))
		wake_at_commit |= 1 << SU_DUE_ORDER;

	/*
	 * sub_orders or items truncated: every order may have lost parts, and
	 * WeChat still has them.  Each one is queued as a new version (an order
	 * in flight keeps its lease, as above).
	 */
	if (NOTED(requeue_all))
	{
		/* locked in order_id order, as every queueing does */
		if (exec_now_sql(HINTED(SU_HINT_ORDER,
									   "WITH l AS (SELECT st.order_id FROM " SU_SCHEMA ".order_state st"
									   "  ORDER BY st.order_id FOR UPDATE)"
									   " UPDATE " SU_SCHEMA ".order_state s SET"
									   SU_SQL_QUEUE_AGAIN("s")
									   " FROM l WHERE s.order_id OPERATOR(pg_catalog.=) l.order_id"
									   " AND EXISTS (SELECT FROM " SU_SCHEMA ".orders o"
									   "  WHERE o.order_id OPERATOR(pg_catalog.=) s.order_id)"
									   " RETURNING s.order_id, s.next_attempt_at AS hint_at",
									   "w.order_id")) != SPI_OK_SELECT)
			elog(ERROR, "could not queue the orders of truncated sub-orders or items");
		if (SPI_processed > 0)
			wake_at_commit |= 1 << SU_DUE_ORDER;
	}
	queue_noted_shipping(ids, n);
}

static void
queue_xact_callback(XactEvent event, void *arg)
{
	(void) arg;
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			if (noted != NULL)
				queue_noted();
			noted = NULL;
			truncated = requeue_all = wrote = InvalidSubTransactionId;
			ship_truncated = ship_requeue_all = InvalidSubTransactionId;
			break;
		case XACT_EVENT_COMMIT:
			if (release_holds_at_commit)
				su_wake_release_holds();
			if (wake_at_commit)
				su_wake_worker(wake_at_commit);
			/* FALLTHROUGH */
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			own_insert = false;
			noted = NULL;		/* lived in TopTransactionContext */
			truncated = requeue_all = wrote = InvalidSubTransactionId;
			ship_truncated = ship_requeue_all = InvalidSubTransactionId;
			wake_at_commit = 0;
			release_holds_at_commit = false;
			break;
		default:
			break;
	}
}

void
su_queue_init(void)
{
	RegisterXactCallback(queue_xact_callback, NULL);
	RegisterSubXactCallback(queue_subxact_callback, NULL);
}

void
su_queue_release_holds(void)
{
	release_holds_at_commit = true;
}

void
su_queue_own_insert(bool own)
{
	own_insert = own;
}

/*
 * AFTER INSERT ... FOR EACH STATEMENT on order_state and shipping_state.
 * The queue's own inserts write the due hints of their rows (see
 * src/queue_sql.h); rows inserted otherwise, by a restore's COPY or by
 * hand, have none: the hints' marker is deleted, and the worker rebuilds
 * them from the states (su_queue_next_due()).  As the tables' owner, as the
 * queue writes them.
 */
PG_FUNCTION_INFO_V1(su_due_rows_inserted);
Datum
su_due_rows_inserted(PG_FUNCTION_ARGS)
{
	AsOwner		saved;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("due_rows_inserted() is a trigger function")));
	if (own_insert)
		return PointerGetDatum(NULL);

	enter_as_owner(&saved);
	if (SPI_execute("DELETE FROM " SU_SCHEMA ".due h"
					" WHERE " SU_SQL_DUE_MARKER("h"), false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not ask for a rebuild of the due hints");
	leave_as_owner(&saved);
	/* the worker looks at commit (and rebuilds them) */
	wake_at_commit |= (1 << SU_DUE_ORDER) | (1 << SU_DUE_SHIPPING) |
		(1 << SU_DUE_VERIFY) | (1 << SU_DUE_TRADE) |
		(1 << SU_DUE_TRADE_CHECK) | (1 << SU_DUE_TRADE_CONFIRM);
	return PointerGetDatum(NULL);
}

bool
su_queue_wrote(void)
{
	return NOTED(wrote);
}

void
su_queue_wake_at_commit(SuDue due)
{
	wake_at_commit |= 1 << due;
}

bool
su_queue_order(int64 order_id)
{
	static SPIPlanPtr exists_plan = NULL;
	Oid			types[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(order_id)};
	Oid			nsp = get_namespace_oid(SU_SCHEMA, false);
	Oid			relid = get_relname_relid("order_state", nsp);

	/* its state is written as the tables' owner: the caller must be allowed to */
	if (pg_class_aclcheck(relid, GetUserId(), ACL_INSERT) != ACLCHECK_OK ||
		pg_class_aclcheck(relid, GetUserId(), ACL_UPDATE) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, "order_state");
	su_kept_plan(&exists_plan,
				 "SELECT FROM " SU_SCHEMA ".orders o"
				 " WHERE o.order_id OPERATOR(pg_catalog.=) $1",
				 1, types, 0);
	if (SPI_execute_plan(exists_plan, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read order " INT64_FORMAT, order_id);
	if (SPI_processed == 0)
		return false;
	note_order(order_id, true, false, false);
	return true;
}

static int64
tuple_order_id(TriggerData *td, HeapTuple tuple, bool *isnull)
{
	int			attnum = SPI_fnumber(td->tg_relation->rd_att, "order_id");

	if (attnum <= 0)
		elog(ERROR, "table \"%s\" has no order_id column",
			 RelationGetRelationName(td->tg_relation));
	return DatumGetInt64(heap_getattr(tuple, attnum, td->tg_relation->rd_att,
									  isnull));
}

static void
note_tuple(TriggerData *td, HeapTuple tuple, bool queue, bool forget,
		   bool shipping)
{
	bool		isnull;
	int64		order_id = tuple_order_id(td, tuple, &isnull);

	if (!isnull)
		note_order(order_id, queue, forget, shipping);
}

/*
 * AFTER INSERT OR UPDATE OR DELETE ... FOR EACH ROW on orders, sub_orders
 * and items: notes the order whose row changed, to be queued at commit.  A
 * deleted order takes its state along (at commit, if it is still gone);
 * AFTER TRUNCATE on orders, all of it at once.  Runs as the caller (it
 * writes nothing itself): the states are written at commit as the tables'
 * owner, by statements that name every object with its schema.
 */
PG_FUNCTION_INFO_V1(su_queue_trigger);
Datum
su_queue_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	const char *table;
	bool		shipping;
	bool		is_head;		/* orders, or shippings: the row of the whole */

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("queue_trigger() must be called as a trigger")));
	note_ask(&wrote);
	table = RelationGetRelationName(td->tg_relation);
	/* queue_trigger('shipping'): the shipping tables */
	shipping = td->tg_trigger->tgnargs > 0 &&
		strcmp(td->tg_trigger->tgargs[0], "shipping") == 0;
	is_head = strcmp(table, shipping ? "shippings" : "orders") == 0;

	if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
	{
		note_truncate(table);
		return PointerGetDatum(NULL);
	}
	if (TRIGGER_FIRED_BY_DELETE(td->tg_event) && is_head)
	{
		note_tuple(td, td->tg_trigtuple, false, true, shipping);
		return PointerGetDatum(NULL);
	}

	/*
	 * An order's id is its identity here: its state, its history and its
	 * verify belong to it.  Renumbered, a new order could inherit another's
	 * state; a new id is a delete and an insert.
	 */
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event) && is_head)
	{
		bool		old_null;
		bool		new_null;
		int64		old_id = tuple_order_id(td, td->tg_trigtuple, &old_null);
		int64		new_id = tuple_order_id(td, td->tg_newtuple, &new_null);

		if (old_null != new_null || old_id != new_id)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("the order_id of %s.%s cannot change",
							SU_SCHEMA, table),
					 errdetail("Order " INT64_FORMAT " would become order " INT64_FORMAT
							   ": its upload state and history belong to its id.",
							   old_id, new_id),
					 errhint("Delete the order and insert it under the new id: it is then uploaded as a new order.")));
	}
	if (!su_auto_upload)
		return PointerGetDatum(NULL);

	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
		note_tuple(td, td->tg_trigtuple, true, false, shipping);
	else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		note_tuple(td, td->tg_newtuple, true, false, shipping);
		/* moved from another order */
		note_tuple(td, td->tg_trigtuple, true, false, shipping);
	}
	else if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
		note_tuple(td, td->tg_trigtuple, true, false, shipping);
	return PointerGetDatum(NULL);
}
