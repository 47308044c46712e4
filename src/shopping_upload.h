/*-------------------------------------------------------------------------
 *
 * shopping_upload.h
 *		Settings and shared state of shopping_upload.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHOPPING_UPLOAD_H
#define SHOPPING_UPLOAD_H

#define SU_SCHEMA "shopping_upload"

#include "datatype/timestamp.h"
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
} SuShared;

/* NULL unless loaded by shared_preload_libraries */
extern SuShared *su_shared;

/* settings (src/settings.c) */
extern char *su_appid;
extern char *su_secret;
extern char *su_api_base_url;
extern char *su_ca_file;
extern bool su_auto_upload;
extern int	su_connect_timeout_ms;
extern int	su_timeout_ms;
extern int	su_max_attempts;
extern int	su_retry_base_ms;
extern int	su_retry_max_ms;
extern int	su_config_retry_s;
extern char *su_database_name;
extern int	su_max_inflight;
extern int	su_lease_s;
extern int	su_max_rate;
extern int	su_audit_retention_s;
extern int	su_claim_interval_ms;

/*
 * Helpers (src/common.c).
 *
 * A statement prepared once per process and kept (SPI connected): *cache is
 * filled on first use.  cursor_options as for SPI_prepare_cursor.
 */
struct _SPI_plan;
extern struct _SPI_plan *su_kept_plan(struct _SPI_plan **cache, const char *sql,
									  int nargs, Oid *argtypes, int cursor_options);

/* Raises "order N does not exist" (ERRCODE_NO_DATA_FOUND). */
extern void su_order_missing(int64 order_id) pg_attribute_noreturn();

/* A one-dimensional array of n Datums of elemtype; nulls may be NULL. */
extern Datum su_array(Datum *values, bool *nulls, int n, Oid elemtype);

/* WeChat's day is Beijing's (UTC+8): days since 2000-01-01 there. */
#define SU_BEIJING_OFFSET_USECS (8 * USECS_PER_HOUR)
#define su_beijing_day(t) ((int) (((t) + SU_BEIJING_OFFSET_USECS) / USECS_PER_DAY))

/* api_base_url without a trailing slash */
extern const char *su_api_base(void);

/* Defines the settings; database_name only with preload. */
extern void su_define_settings(bool preload);

extern void _PG_init(void);

/* Wakes the worker of this database, if it runs (common.c). */
extern void su_wake_worker(void);

/* worker.c */
extern void su_register_launcher(void);

#endif							/* SHOPPING_UPLOAD_H */
