/*-------------------------------------------------------------------------
 *
 * shopping_upload.c
 *		Module load: settings and, with shared_preload_libraries, the shared
 *		memory of the token cache.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/array.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "queue.h"
#include "shopping_upload.h"
#include "token.h"

PG_MODULE_MAGIC;

char	   *su_appid = NULL;
char	   *su_secret = NULL;
char	   *su_api_base_url = NULL;
char	   *su_ca_file = NULL;
bool		su_auto_upload = true;
int			su_connect_timeout_ms = 5000;
int			su_timeout_ms = 15000;
int			su_max_attempts = 10;
int			su_retry_base_ms = 1000;
int			su_retry_max_ms = 600000;
int			su_config_retry_s = 600;
char	   *su_database_name = NULL;
int			su_max_inflight = 64;
int			su_lease_s = 60;
int			su_max_rate = 0;
int			su_audit_retention_s = 30 * 86400;
int			su_claim_interval_ms = 2;

SuShared   *su_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static ProcessUtility_hook_type prev_process_utility = NULL;

SPIPlanPtr
su_kept_plan(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes,
			 int cursor_options)
{
	if (*cache == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, argtypes, cursor_options);

		if (plan == NULL)
			elog(ERROR, "could not prepare \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "could not keep the plan of \"%s\"", sql);
		*cache = plan;
	}
	return *cache;
}

void
su_order_missing(int64 order_id)
{
	ereport(ERROR,
			(errcode(ERRCODE_NO_DATA_FOUND),
			 errmsg("order " INT64_FORMAT " does not exist", order_id),
			 errhint("Orders are rows of shopping_upload.orders.")));
}

Datum
su_array(Datum *values, bool *nulls, int n, Oid elemtype)
{
	int16		typlen;
	bool		byval;
	char		align;
	int			dims[1] = {n};
	int			lbs[1] = {1};

	get_typlenbyvalalign(elemtype, &typlen, &byval, &align);
	return PointerGetDatum(construct_md_array(values, nulls, 1, dims, lbs,
											  elemtype, typlen, byval, align));
}

const char *
su_api_base(void)
{
	static char *cached = NULL;
	static char *cached_for = NULL;
	const char *url = su_api_base_url ? su_api_base_url : "";

	/* the setting may change on SET or SIGHUP: recompute when it did */
	if (cached_for == NULL || strcmp(cached_for, url) != 0)
	{
		size_t		n = strlen(url);

		while (n > 0 && url[n - 1] == '/')
			n--;
		if (cached)
			pfree(cached);
		if (cached_for)
			pfree(cached_for);
		cached = MemoryContextStrdup(TopMemoryContext, url);
		cached[n] = '\0';
		cached_for = MemoryContextStrdup(TopMemoryContext, url);
	}
	return cached;
}

static bool
check_api_base_url(char **newval, void **extra, GucSource source)
{
	(void) extra;
	(void) source;
	if (*newval && strncmp(*newval, "https://", 8) != 0 &&
		strncmp(*newval, "http://", 7) != 0)
	{
		GUC_check_errdetail("shopping_upload.api_base_url must start with https:// or http://.");
		return false;
	}
	return true;
}

/*
 * ALTER DATABASE/ROLE ... SET would store the secret in pg_db_role_setting,
 * which every user can read: refuse it (those commands validate with
 * PGC_S_TEST).
 */
static bool
check_secret(char **newval, void **extra, GucSource source)
{
	(void) extra;
	if (source == PGC_S_TEST && *newval && (*newval)[0])
	{
		GUC_check_errmsg("shopping_upload.secret cannot be stored with ALTER DATABASE or ALTER ROLE");
		GUC_check_errdetail("Every user can read those settings in pg_db_role_setting.");
		GUC_check_errhint("Set it in postgresql.conf (or with ALTER SYSTEM), or put it in shopping_upload.accounts.");
		return false;
	}
	return true;
}

static void
su_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(add_size(sizeof(SuShared), su_token_shmem_size()));
	RequestNamedLWLockTranche("shopping_upload", 1);
}

static void
su_shmem_startup(void)
{
	bool		found;
	SuTokenSlot *slots;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	slots = ShmemInitStruct("shopping_upload tokens", su_token_shmem_size(), &found);
	if (!found)
		memset(slots, 0, su_token_shmem_size());
	su_token_shmem_init(slots, &(GetNamedLWLockTranche("shopping_upload"))->lock);
	su_shared = ShmemInitStruct("shopping_upload state", sizeof(SuShared), &found);
	if (!found)
	{
		memset(su_shared, 0, sizeof(SuShared));
		SpinLockInit(&su_shared->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * DROP DATABASE of the worker's database would wait for the worker, then
 * fail: ask the worker to leave first, and the launcher to let it be.
 */
static void
su_process_utility(PlannedStmt *pstmt, const char *queryString,
				   bool readOnlyTree, ProcessUtilityContext context,
				   ParamListInfo params, QueryEnvironment *queryEnv,
				   DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;

	if (su_shared && IsA(parsetree, DropdbStmt) &&
		strcmp(((DropdbStmt *) parsetree)->dbname, su_database_name) == 0)
	{
		su_shared->drop_requested_at = GetCurrentTimestamp();
		if (su_shared->worker_pid > 0)
			kill(su_shared->worker_pid, SIGTERM);
	}
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context,
							 params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

static void
define_settings(void)
{
	DefineCustomStringVariable("shopping_upload.appid",
							   "Default merchant Mini Program appid.",
							   "Orders whose appid is NULL belong to this appid.",
							   &su_appid, NULL, PGC_USERSET, 0,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("shopping_upload.secret",
							   "App secret of shopping_upload.appid, for stable_token.",
							   "Shown to superusers only.  Secrets of other appids "
							   "go in shopping_upload.accounts.",
							   &su_secret, NULL, PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL,
							   check_secret, NULL, NULL);
	DefineCustomStringVariable("shopping_upload.api_base_url",
							   "Base URL of WeChat's API.",
							   NULL,
							   &su_api_base_url, "https://api.weixin.qq.com",
							   PGC_SUSET, 0,
							   check_api_base_url, NULL, NULL);
	DefineCustomStringVariable("shopping_upload.ca_file",
							   "CA certificates that verify the API's TLS certificate.",
							   "Empty: the system's CA bundle.  Peer and host name "
							   "verification are always on.",
							   &su_ca_file, "", PGC_SUSET, 0,
							   NULL, NULL, NULL);
	DefineCustomBoolVariable("shopping_upload.auto_upload",
							 "Queue orders for upload when the order tables are written.",
							 NULL,
							 &su_auto_upload, true, PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("shopping_upload.connect_timeout",
							"Time allowed to connect to the API.",
							NULL,
							&su_connect_timeout_ms, 5000, 1, 600000,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("shopping_upload.timeout",
							"Time allowed for a whole request to the API.",
							NULL,
							&su_timeout_ms, 15000, 1, 3600000,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("shopping_upload.max_attempts",
							"Attempts before an order that keeps failing is dead.",
							"Counts transport failures and -1 answers.",
							&su_max_attempts, 10, 1, 1000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("shopping_upload.retry_base_delay",
							"First retry delay; it doubles with every attempt.",
							NULL,
							&su_retry_base_ms, 1000, 1, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("shopping_upload.retry_max_delay",
							"Longest delay between two attempts.",
							NULL,
							&su_retry_max_ms, 600000, 1, 86400000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("shopping_upload.config_retry_interval",
							"How long uploads of an appid wait after a permission or configuration error.",
							NULL,
							&su_config_retry_s, 600, 1, 86400 * 7,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("shopping_upload.max_inflight",
							"Most requests the worker has in flight at once.",
							NULL,
							&su_max_inflight, 64, 1, 1024,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("shopping_upload.lease",
							"How long a claimed order is the worker's before it is claimed again.",
							"Must exceed shopping_upload.timeout: a lease that runs out "
							"(a crash mid-send) makes the order claimable again.",
							&su_lease_s, 60, 1, 86400,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("shopping_upload.max_rate",
							"Most upload requests per second per appid; 0: no cap.",
							NULL,
							&su_max_rate, 0, 0, 1000000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("shopping_upload.claim_interval",
							"Least time between two claims of the worker.",
							"Orders committed within it are claimed, built and recorded "
							"together; it adds at most this much latency.",
							&su_claim_interval_ms, 2, 0, 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("shopping_upload.audit_retention",
							"Age after which the worker deletes audit rows; 0 keeps them.",
							NULL,
							&su_audit_retention_s, 30 * 86400, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
}

void
_PG_init(void)
{
	define_settings();

	/*
	 * The worker's database is fixed at server start; the setting exists only
	 * where it can (a postmaster setting cannot be defined later, and the SQL
	 * functions work without the preload, with a token cache per backend).
	 */
	if (process_shared_preload_libraries_in_progress)
		DefineCustomStringVariable("shopping_upload.database_name",
								   "Database whose orders the background worker uploads.",
								   NULL,
								   &su_database_name, "postgres", PGC_POSTMASTER, 0,
								   NULL, NULL, NULL);
	MarkGUCPrefixReserved("shopping_upload");
	su_queue_init();

	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = su_process_utility;
	su_register_launcher();

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = su_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = su_shmem_startup;
}
