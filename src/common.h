/*-------------------------------------------------------------------------
 *
 * common.h
 *		What every file of shopping_upload uses: the schema's name, the
 *		state shared in memory, kept SPI plans, SQL arrays, Beijing's day.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_COMMON_H
#define SU_COMMON_H

#define SU_SCHEMA "shopping_upload"

/*
 * The largest body sent: an order whose text passes it is refused before it
 * is built (errcode 45002, content size out of limit).  WeChat's limits make
 * a real order far smaller: 50 items of at most about 8 kB per sub-order.
 */
#define SU_MAX_BODY_BYTES (1024 * 1024)

#include "datatype/timestamp.h"
#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/spin.h"

/* State shared by backends, the launcher and the worker (shared memory). */
typedef struct SuShared
{
	slock_t		mutex;			/* protects worker_latch and worker_pid */
	Latch	   *worker_latch;	/* set to wake the worker; NULL if none */
	pid_t		worker_pid;
	Oid			worker_dboid;	/* the database the worker serves */
	pid_t		launcher_pid;
	TimestampTz drop_requested_at;	/* DROP DATABASE of our database */
	pg_atomic_uint64 audit_deleted; /* audit rows past retention, deleted */
	pg_atomic_uint32 wake_wanted;	/* 1: a commit that queues must set the
									 * worker's latch; 0: it will look anyway */
	pg_atomic_uint32 queued_kinds;	/* bit 1 << SuKind: rows of that kind
									 * were queued since the last claim */
	pg_atomic_uint32 holds_released;	/* grows when a requeue() of held
										 * orders commits */
	/* what each kind's claims wait for (mutex): a locked table, or "" */
	char		claim_wait[3][64];
	TimestampTz claim_wait_since[3];
} SuShared;

/* NULL unless loaded by shared_preload_libraries */
extern SuShared *su_shared;

/*
 * A statement prepared once per process and kept (SPI connected): *cache is
 * filled on first use.  cursor_options as for SPI_prepare_cursor.
 */
struct _SPI_plan;
extern char *su_installed_version(MemoryContext cxt);
extern void su_require_extension_version(void);
extern struct _SPI_plan *su_kept_plan(struct _SPI_plan **cache, const char *sql,
									  int nargs, Oid *argtypes, int cursor_options);

/* Raises "order N does not exist" (ERRCODE_NO_DATA_FOUND). */
#if PG_VERSION_NUM >= 180000
/* PostgreSQL 18 replaced pg_attribute_noreturn() with pg_noreturn */
pg_noreturn extern void su_order_missing(int64 order_id);
#else
extern void su_order_missing(int64 order_id) pg_attribute_noreturn();
#endif

/* A one-dimensional array of n Datums of elemtype; nulls may be NULL. */
extern Datum su_array(Datum *values, bool *nulls, int n, Oid elemtype);

/* WeChat's day is Beijing's (UTC+8): days since 2000-01-01 there. */
#define SU_BEIJING_OFFSET_USECS (8 * USECS_PER_HOUR)
#define su_beijing_day(t) ((int) (((t) + SU_BEIJING_OFFSET_USECS) / USECS_PER_DAY))

/*
 * Text from the network, palloc'd and valid in the database encoding: a
 * byte that is no character becomes \xNN (so that pg_dump/pg_restore and
 * readers in any client_encoding get what was stored).
 */
extern char *su_clean_text(const char *s);

/*
 * The most of a text from the network that is kept (an errmsg, a transport
 * error, a verify_result): past it, the text is cut at a character and a
 * marker says how long it was.
 */
#define SU_MAX_ANSWER_TEXT 1024

/* su_clean_text(), cut to at most SU_MAX_ANSWER_TEXT bytes and a marker */
extern char *su_clean_text_capped(const char *s);

/* Wakes the worker of this database, if it runs. */
extern void su_wake_worker(uint32 kinds);

#endif							/* SU_COMMON_H */
