/*-------------------------------------------------------------------------
 *
 * settings.c
 *		The shopping_upload.* settings.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <limits.h>
#include <unistd.h>
#include <sys/stat.h>

#include "lib/stringinfo.h"
#include "storage/fd.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "settings.h"

char	   *su_appid = NULL;
char	   *su_secret = NULL;
char	   *su_secret_file = NULL;
char	   *su_api_base_url = NULL;
char	   *su_ca_file = NULL;
bool		su_allow_insecure_http = false;
char	   *su_proxy = NULL;
bool		su_auto_upload = true;
int			su_connect_timeout_ms = 5000;
int			su_timeout_ms = 15000;
int			su_max_attempts = 10;
int			su_retry_base_ms = 1000;
int			su_retry_max_ms = 600000;
int			su_config_retry_s = 600;
int			su_verify_delay_s = 60;
int			su_payment_wait_s = 600;
int			su_reconcile_s = 21600;
char	   *su_database_name = NULL;
char	   *su_databases = NULL;
int			su_workers_per_database = 1;
int			su_max_inflight = 64;
int			su_lease_s = 60;
int			su_max_rate = 0;
int			su_audit_retention_s = 30 * 86400;
int			su_audit_request = SU_AUDIT_REQUEST_FAILED;

static const struct config_enum_entry audit_request_options[] = {
	{"failed", SU_AUDIT_REQUEST_FAILED, false},
	{"all", SU_AUDIT_REQUEST_ALL, false},
	{"none", SU_AUDIT_REQUEST_NONE, false},
	{NULL, 0, false}
};
int			su_claim_interval_ms = 100;
int			su_trade_managed = SU_TRADE_MANAGED_AUTO;

static const struct config_enum_entry trade_managed_options[] = {
	{"auto", SU_TRADE_MANAGED_AUTO, false},
	{"on", SU_TRADE_MANAGED_ON, false},
	{"off", SU_TRADE_MANAGED_OFF, false},
	{NULL, 0, false}
};

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
 * The secret is never read from a place whose value may reach a log or
 * another user: postgresql.conf and ALTER SYSTEM (PostgreSQL logs the new
 * value of a changed setting on reload), the command line, ALTER
 * DATABASE/ROLE ... SET (pg_db_role_setting, which every user can read).
 * A superuser's SET in a session remains, for tests; production puts the
 * secret in shopping_upload.secret_file or shopping_upload.accounts.
 */
static bool
check_secret(char **newval, void **extra, GucSource source)
{
	(void) extra;
	if (*newval == NULL || (*newval)[0] == '\0' || source == PGC_S_SESSION ||
		source == PGC_S_DEFAULT)
		return true;
	if (source == PGC_S_TEST)
	{
		GUC_check_errmsg("shopping_upload.secret cannot be stored with ALTER DATABASE or ALTER ROLE");
		GUC_check_errdetail("Every user can read those settings in pg_db_role_setting.");
	}
	else
	{
		GUC_check_errmsg("shopping_upload.secret cannot be set in the configuration");
		GUC_check_errdetail("PostgreSQL writes the new value of a changed setting to its log.");
	}
	GUC_check_errhint("Put the secret in a file that only the server's operating system user can read, "
					  "and set shopping_upload.secret_file to its path; or put it in shopping_upload.accounts.");
	return false;
}

/* one entry of shopping_upload.databases */
typedef struct DbItem
{
	char	   *name;			/* NULL for "*" */
	bool		exclude;		/* after "!" */
} DbItem;

/*
 * Splits shopping_upload.databases into its entries, in place: a name,
 * trimmed, or in double quotes (taken as it is: "*" and "!x" are then
 * names); "*"; either after "!".  False on a bad list.
 */
static bool
split_databases(char *list, DbItem *items, int max, int *n)
{
	char	   *p = list;

	*n = 0;
	for (;;)
	{
		char	   *start;
		char	   *end;
		char		sep;
		bool		quoted = false;
		bool		exclude = false;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '!')
		{
			exclude = true;
			p++;
			while (*p == ' ' || *p == '\t')
				p++;
		}
		if (*p == '"')
		{
			quoted = true;
			start = ++p;
			end = strchr(p, '"');
			if (end == NULL)
				return false;
			p = end + 1;
		}
		else
		{
			start = p;
			while (*p && *p != ',')
				p++;
			end = p;
			while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
				end--;
		}
		while (*p == ' ' || *p == '\t')
			p++;
		if (end == start || end - start >= NAMEDATALEN || (*p && *p != ',') || *n >= max)
			return false;
		sep = *p;				/* the end may be the comma itself */
		*end = '\0';
		items[*n].name = (!quoted && strcmp(start, "*") == 0) ? NULL : start;
		items[*n].exclude = exclude;
		(*n)++;
		if (sep == '\0')
			return true;
		p++;
	}
}

static bool
check_databases(char **newval, void **extra, GucSource source)
{
	char	   *copy = pstrdup(*newval);
	DbItem		items[SU_MAX_DATABASE_ITEMS];
	int			n;
	bool		ok = split_databases(copy, items, lengthof(items), &n);

	(void) extra;
	(void) source;
	pfree(copy);
	if (!ok)
		GUC_check_errdetail("shopping_upload.databases is a comma-separated list of at most %d database names "
							"(in double quotes to keep spaces, a leading \"!\" or \"*\"), \"*\" for all, "
							"and names after \"!\" to leave out",
							SU_MAX_DATABASE_ITEMS);
	return ok;
}

char *
su_databases_named(void)
{
	StringInfoData names;
	char	   *copy;
	DbItem		items[SU_MAX_DATABASE_ITEMS];
	int			n;

	initStringInfo(&names);
	if (su_databases == NULL || strcmp(su_databases, "*") == 0)
	{
		if (su_database_name != NULL && su_database_name[0] != '\0')
		{
			appendStringInfoString(&names, su_database_name);
			appendStringInfoChar(&names, '\0');
		}
		return names.data;
	}
	copy = pstrdup(su_databases);
	if (!split_databases(copy, items, lengthof(items), &n))
		n = 0;
	for (int i = 0; i < n; i++)
		if (!items[i].exclude && items[i].name != NULL)
		{
			appendStringInfoString(&names, items[i].name);
			appendStringInfoChar(&names, '\0');
		}
	pfree(copy);
	return names.data;
}

bool
su_database_allowed(const char *name)
{
	char	   *copy;
	DbItem		items[SU_MAX_DATABASE_ITEMS];
	int			n;
	bool		listed = false;
	bool		any_positive = false;
	bool		excluded = false;

	if (su_databases == NULL || strcmp(su_databases, "*") == 0)
		return su_database_name == NULL || su_database_name[0] == '\0' ||
			strcmp(su_database_name, name) == 0;
	copy = pstrdup(su_databases);
	if (!split_databases(copy, items, lengthof(items), &n))
		n = 0;
	for (int i = 0; i < n; i++)
	{
		bool		match = items[i].name == NULL || strcmp(items[i].name, name) == 0;

		if (items[i].exclude)
			excluded |= match;
		else
		{
			any_positive = true;
			listed |= match;
		}
	}
	pfree(copy);
	return !excluded && (listed || !any_positive);
}

void
su_define_settings(bool preload)
{
	DefineCustomStringVariable("shopping_upload.appid",
							   "Default merchant Mini Program appid.",
							   "Orders whose appid is NULL belong to this appid.  Set by "
							   "an administrator (postgresql.conf, ALTER DATABASE ... SET).",
							   &su_appid, NULL, PGC_SUSET, 0,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("shopping_upload.secret",
							   "App secret of shopping_upload.appid, for stable_token.",
							   "A superuser's SET only: the configuration names a file "
							   "(shopping_upload.secret_file) instead.",
							   &su_secret, NULL, PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL,
							   check_secret, NULL, NULL);
	DefineCustomStringVariable("shopping_upload.secret_file",
							   "File that holds the app secret of shopping_upload.appid.",
							   "Readable by the server's operating system user only; "
							   "read whenever a token is fetched.",
							   &su_secret_file, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
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
	DefineCustomBoolVariable("shopping_upload.allow_insecure_http",
							 "Allows an http:// api_base_url (a local stand-in for tests).",
							 "Off: requests go over https only, so that the secret and "
							 "the tokens never travel in clear text.",
							 &su_allow_insecure_http, false, PGC_SUSET, 0,
							 NULL, NULL, NULL);
	DefineCustomStringVariable("shopping_upload.proxy",
							   "Proxy for the requests to the API; empty: none.",
							   "Proxy variables of the server's environment are ignored.",
							   &su_proxy, "", PGC_SUSET, GUC_SUPERUSER_ONLY,
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
							PGC_SUSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("shopping_upload.timeout",
							"Time allowed for a whole request to the API.",
							NULL,
							&su_timeout_ms, 15000, 1, 3600000,
							PGC_SUSET, GUC_UNIT_MS,
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
	DefineCustomIntVariable("shopping_upload.payment_wait",
							"How long shipping information for the order shipping management service waits for WeChat to find its payment.",
							"WeChat answers 10060001 (payment not found) for a while after the payment: the upload is tried again, "
							"with backoff, in the state waiting_for_payment, for this long after the first such answer; then it is "
							"rejected, the reason saying so.",
							&su_payment_wait_s, 600, 1, 86400 * 7,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("shopping_upload.reconcile_interval",
							"How often the worker asks the order shipping management service for a payment's state (get_order).",
							"For each payment whose shipping was accepted, until WeChat shows it complete or refunded, or "
							"it is settled; once shortly after each accepted upload too.",
							&su_reconcile_s, 21600, 1, 86400 * 7,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("shopping_upload.verify_delay",
							"How long after an accepted upload the worker verifies it.",
							"WeChat links an upload to its payment asynchronously; 0 turns the worker's verifies off.",
							&su_verify_delay_s, 60, 0, 86400 * 7,
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
							"Least time between two claims of the worker, but in a backlog.",
							"Orders committed within it are claimed, built and recorded "
							"together; it adds at most this much latency. A backlog is "
							"claimed as fast as answers make room.",
							&su_claim_interval_ms, 100, 0, 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("shopping_upload.audit_retention",
							"Age after which the worker deletes audit rows; 0 keeps them.",
							NULL,
							&su_audit_retention_s, 30 * 86400, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomEnumVariable("shopping_upload.trade_managed",
							 "Are the appids served in the order shipping management service: auto (as WeChat's "
							 "is_trade_managed says for each), on or off.",
							 "Their shipping information goes to /wxa/sec/order/upload_shipping_info when they are; "
							 "trade_apps.pinned decides for one appid, whatever this says.",
							 &su_trade_managed, SU_TRADE_MANAGED_AUTO,
							 trade_managed_options,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);
	DefineCustomEnumVariable("shopping_upload.audit_request",
							 "Which audit rows keep the body sent: failed (those not accepted), all, or none.",
							 "Every row of a request sent keeps the SHA-256 digest of its body, and every row its version and upload_time.",
							 &su_audit_request, SU_AUDIT_REQUEST_FAILED,
							 audit_request_options,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);

	/*
	 * The databases served exist only where they can (the SQL functions
	 * work without the preload, with a token cache per backend).
	 */
	if (preload)
	{
		DefineCustomStringVariable("shopping_upload.databases",
								   "Databases whose orders workers upload: * for every one that has the extension.",
								   "A comma-separated list of database names (case-sensitive; "
								   "double quotes allowed); * for all; a name after ! is left out.",
								   &su_databases, "*", PGC_SIGHUP, 0,
								   check_databases, NULL, NULL);
		DefineCustomStringVariable("shopping_upload.database_name",
								   "The one database whose orders are uploaded, when shopping_upload.databases is *.",
								   "Kept for compatibility: empty (the default) serves every database "
								   "shopping_upload.databases allows.",
								   &su_database_name, "", PGC_SIGHUP, 0,
								   NULL, NULL, NULL);
		DefineCustomIntVariable("shopping_upload.workers_per_database",
								"Worker processes that upload each database's orders.",
								"Each claims its own share of the orders; a backlog is sent by "
								"all of them at once.",
								&su_workers_per_database, 1, 1, SU_MAX_WORKERS_PER_DATABASE,
								PGC_SIGHUP, 0,
								NULL, NULL, NULL);
	}
	MarkGUCPrefixReserved("shopping_upload");
}

SuRetryLimits
su_retry_limits(void)
{
	SuRetryLimits l;

	l.max_attempts = su_max_attempts;
	l.retry_base_ms = su_retry_base_ms;
	l.retry_max_ms = su_retry_max_ms;
	l.config_retry_s = su_config_retry_s;
	l.verify_delay_s = su_verify_delay_s;
	l.payment_wait_s = su_payment_wait_s;
	l.reconcile_s = su_reconcile_s;
	return l;
}

/*
 * The secret file is opened without following a symbolic link and without
 * blocking (a FIFO would hang the opener in open(), beyond any cancel), then
 * checked on the open descriptor: a regular file, owned by the server's
 * operating system user, that nobody else may read or write (0600 or
 * 0400).  Anything else is a configuration error: *problem says what, in
 * words that name no path (they reach the audit and order_status); the
 * server log names the path, once per reason and path.
 */
char *
su_config_secret(const char **problem)
{
	static char *said = NULL;	/* the last problem logged, with its path */
	struct stat st;
	char		buf[1024];
	ssize_t		n;
	int			fd;
	const char *why = NULL;
	char	   *secret;

	*problem = NULL;
	if (su_secret != NULL && su_secret[0] != '\0')
		return pstrdup(su_secret);
	if (su_secret_file == NULL || su_secret_file[0] == '\0')
		return NULL;
	fd = OpenTransientFile(su_secret_file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | PG_BINARY);
	if (fd < 0)
		why = errno == ELOOP ? "is a symbolic link" :
			errno == ENOENT ? "does not exist" :
			errno == EACCES ? "cannot be read by the server" : "cannot be opened";
	else if (fstat(fd, &st) != 0)
		why = "cannot be examined";
	else if (!S_ISREG(st.st_mode))
		why = "is not a regular file";
	else if (st.st_uid != geteuid())
		why = "is not owned by the server's operating system user";
	else if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
		why = "may be read or written by others than its owner (its mode must be 0600 or 0400)";
	if (why != NULL)
	{
		char	   *line = psprintf("%s %s", su_secret_file, why);

		if (fd >= 0)
			CloseTransientFile(fd);
		if (said == NULL || strcmp(said, line) != 0)
		{
			/* the server log only: a client may ask for LOG messages */
			ereport(LOG_SERVER_ONLY,
					(errcode(ERRCODE_CONFIG_FILE_ERROR),
					 errmsg("shopping_upload: the secret file \"%s\" %s", su_secret_file, why),
					 errhint("Make it a regular file owned by the server's operating system user, mode 0600 or 0400; "
							 "shopping_upload.secret_file names it.")));
			if (said)
				pfree(said);
			said = MemoryContextStrdup(TopMemoryContext, line);
		}
		pfree(line);
		*problem = psprintf("the secret file of shopping_upload.appid %s; "
							"the server log names it", why);
		return NULL;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	CloseTransientFile(fd);
	if (n < 0)
	{
		*problem = pstrdup("the secret file of shopping_upload.appid cannot be read; the server log names it");
		ereport(LOG_SERVER_ONLY,
				(errcode_for_file_access(),
				 errmsg("shopping_upload: could not read the secret file \"%s\": %m", su_secret_file)));
		return NULL;
	}
	if (said)
	{
		pfree(said);
		said = NULL;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
					 buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		n--;
	secret = n > 0 ? pnstrdup(buf, n) : NULL;
	explicit_bzero(buf, sizeof(buf));
	if (secret == NULL)
		*problem = pstrdup("the secret file of shopping_upload.appid is empty");
	return secret;
}
