/*-------------------------------------------------------------------------
 *
 * setup_check.c
 *		check_setup(): everything about the set-up that can be checked
 *		without sending an order, one row per item, for an operator before
 *		the first order (and after any change).
 *
 * The rows that touch secrets (the secret and a token fetch) are for those
 * who may read shopping_upload.accounts (its owner, a superuser): for
 * others they say so, with ok NULL.  No row ever holds a secret or a token.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>
#include <unistd.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/spin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "common.h"
#include "extversion.h"
#include "http.h"
#include "retry.h"
#include "settings.h"
#include "registry.h"
#include "text_clean.h"
#include "token.h"

PG_FUNCTION_INFO_V1(su_check_setup_sql);

/* one row: item, ok (NULL: not checked), detail */
static void
put_row(ReturnSetInfo *rsinfo, const char *item, int ok, const char *detail)
{
	Datum		values[3];
	bool		nulls[3] = {false, ok < 0, false};

	values[0] = CStringGetTextDatum(item);
	values[1] = BoolGetDatum(ok > 0);
	values[2] = CStringGetTextDatum(detail);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* may the caller see the checks that read secrets: a superuser, the owner? */
static bool
may_read_secrets(void)
{
	Oid			nsp = get_namespace_oid(SU_SCHEMA, true);
	Oid			rel = OidIsValid(nsp) ? get_relname_relid("accounts", nsp) : InvalidOid;
	HeapTuple	tup;
	Oid			owner;

	if (superuser())
		return true;
	if (!OidIsValid(rel))
		return false;
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(rel));
	if (!HeapTupleIsValid(tup))
		return false;
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return has_privs_of_role(GetUserId(), owner);
}

/* how long check_setup() waits for a worker that has not attached yet */
#define SU_SETUP_WORKER_WAIT_MS 5000

static void
check_version(ReturnSetInfo *rsinfo)
{
	char	   *version = su_installed_version(CurrentMemoryContext);

	if (version != NULL && strcmp(version, SU_EXTVERSION) == 0)
		put_row(rsinfo, "version", 1,
				psprintf("the extension and its library are both version %s", SU_EXTVERSION));
	else
		put_row(rsinfo, "version", 0,
				psprintf("the extension is version %s, its library version %s: "
						 "run ALTER EXTENSION shopping_upload UPDATE (after a restart, "
						 "if the package was upgraded)",
						 version ? version : "(none)", SU_EXTVERSION));
}

/*
 * Was the extension created (or updated) by this transaction, not committed
 * yet?  No worker can serve it then: a set-up's DO block or procedure that
 * runs CREATE EXTENSION and check_setup() is not a transaction block, but
 * is one transaction all the same.
 */
static bool
extension_created_here(void)
{
	bool		here = false;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT xmin FROM pg_catalog.pg_extension"
					" WHERE extname OPERATOR(pg_catalog.=) 'shopping_upload'",
					true, 1) == SPI_OK_SELECT && SPI_processed == 1)
	{
		bool		isnull;
		Datum		xmin = SPI_getbinval(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 1, &isnull);

		here = !isnull &&
			TransactionIdIsCurrentTransactionId(DatumGetTransactionId(xmin));
	}
	SPI_finish();
	return here;
}

static void
check_worker(ReturnSetInfo *rsinfo)
{
	char	   *here = get_database_name(MyDatabaseId);
	pid_t		pid;
	int			n;
	bool		may_wait;

	if (su_shared == NULL)
	{
		put_row(rsinfo, "preload", 0,
				"shopping_upload is not in shared_preload_libraries: no worker uploads, "
				"and every call by hand fetches its own token; add it and restart the server");
		put_row(rsinfo, "database", -1, "no worker without shared_preload_libraries");
		return;
	}
	put_row(rsinfo, "preload", 1, "shopping_upload is in shared_preload_libraries");
	n = su_registry_workers_here(&pid);

	/*
	 * Right after CREATE EXTENSION (a set-up script's next statement) the
	 * worker is on its way: wait a little for it rather than report it
	 * missing.  Not inside a transaction block, which may hold the
	 * uncommitted CREATE EXTENSION that the worker waits for, nor in the
	 * transaction that created the extension.
	 */
	may_wait = n == 0 && su_database_allowed(here) && !IsTransactionBlock() &&
		!extension_created_here();
	if (may_wait)
	{
		TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														SU_SETUP_WORKER_WAIT_MS);

		while (n == 0 && GetCurrentTimestamp() < until)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 100L, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			n = su_registry_workers_here(&pid);
		}
	}

	if (!su_database_allowed(here))
		put_row(rsinfo, "database", 0,
				psprintf("shopping_upload.databases (or shopping_upload.database_name) leaves this database (\"%s\") out: "
						 "orders stored here are uploaded by calls by hand only", here));
	else if (n == 0)
		put_row(rsinfo, "database", 0,
				psprintf("no worker serves this database (\"%s\") after %d s: it starts within a second of "
						 "CREATE EXTENSION's commit; shopping_upload.workers and the server log say why not",
						 here, may_wait ? SU_SETUP_WORKER_WAIT_MS / 1000 : 0));
	else
		put_row(rsinfo, "database", 1,
				psprintf("%d worker%s (process %d%s) serve%s this database (\"%s\")", n, n > 1 ? "s" : "",
						 (int) pid, n > 1 ? ", ..." : "", n > 1 ? "" : "s", here));
}

static bool
readable_file(const char *path, bool dir_ok, const char **why)
{
	struct stat st;

	if (stat(path, &st) != 0)
		*why = "does not exist";
	else if (!S_ISREG(st.st_mode) && !(dir_ok && S_ISDIR(st.st_mode)))
		*why = "is not a regular file";
	else if (access(path, R_OK) != 0)
		*why = "cannot be read by the server's operating system user";
	else
		return true;
	return false;
}

static void
check_endpoint(ReturnSetInfo *rsinfo)
{
	const char *url = su_api_base();
	bool		https = pg_strncasecmp(url, "https://", 8) == 0;
	const char *why;

	if (https)
		put_row(rsinfo, "api_base_url", 1, psprintf("%s (https)", url));
	else if (pg_strncasecmp(url, "http://", 7) == 0 && su_allow_insecure_http)
		put_row(rsinfo, "api_base_url", 1,
				psprintf("%s: plain http, allowed by shopping_upload.allow_insecure_http "
						 "(for a test server only: tokens travel in the URL)", url));
	else if (pg_strncasecmp(url, "http://", 7) == 0)
		put_row(rsinfo, "api_base_url", 0,
				psprintf("%s: plain http is refused, every request would fail; use https "
						 "(shopping_upload.allow_insecure_http is for a test server)", url));
	else
		put_row(rsinfo, "api_base_url", 0,
				psprintf("%s is no http(s) URL: set shopping_upload.api_base_url", url));

	if (!https)
		put_row(rsinfo, "ca", -1, "not used: the endpoint is not https");
	else if (su_ca_file != NULL && su_ca_file[0] != '\0')
	{
		if (readable_file(su_ca_file, false, &why))
			put_row(rsinfo, "ca", 1,
					psprintf("servers are verified with shopping_upload.ca_file (%s)", su_ca_file));
		else
			put_row(rsinfo, "ca", 0,
					psprintf("shopping_upload.ca_file (%s) %s: every https request would fail",
							 su_ca_file, why));
	}
	else
	{
		const char *bundle = su_http_default_ca();

		if (bundle == NULL)
			put_row(rsinfo, "ca", -1,
					"libcurl does not say where its CA store is: the first request will tell");
		else if (readable_file(bundle, true, &why))
			put_row(rsinfo, "ca", 1,
					psprintf("servers are verified with the system's CA store (%s)", bundle));
		else
			put_row(rsinfo, "ca", 0,
					psprintf("the system's CA store (%s) %s: install the package ca-certificates, "
							 "or set shopping_upload.ca_file", bundle, why));
	}
}

/* the appid and its credentials; the token fetch (SPI connected) */
static void
check_credentials(ReturnSetInfo *rsinfo, const char *appid)
{
	SuCredentials creds;
	SuTokenResult tok;
	const char *from;

	if (!may_read_secrets())
	{
		put_row(rsinfo, "secret", -1,
				"not checked: only the extension's owner (of shopping_upload.accounts) or a superuser may");
		put_row(rsinfo, "token", -1,
				"not checked: only the extension's owner (of shopping_upload.accounts) or a superuser may");
		return;
	}
	su_credentials_load(appid, &creds);
	from = creds.secret_from ? creds.secret_from : "";
	if (creds.secret != NULL && creds.secret[0] != '\0')
		put_row(rsinfo, "secret", 1, psprintf("a secret is set for appid \"%s\" (from %s)", appid, from));
	else if (creds.secret_problem != NULL)
	{
		put_row(rsinfo, "secret", 0, psprintf("%s", creds.secret_problem));
		put_row(rsinfo, "token", -1, "not asked: no usable secret");
		return;
	}
	else if (creds.access_token != NULL && creds.token_expires_at > GetCurrentTimestamp())
		put_row(rsinfo, "secret", 1,
				psprintf("no secret for appid \"%s\": an access token handed in with "
						 "set_access_token(), valid until %s", appid,
						 timestamptz_to_str(creds.token_expires_at)));
	else
	{
		put_row(rsinfo, "secret", 0,
				psprintf("no secret for appid \"%s\": add a row to shopping_upload.accounts, or set "
						 "shopping_upload.secret_file for shopping_upload.appid", appid));
		put_row(rsinfo, "token", -1, "not asked: no secret");
		return;
	}
	if (su_token_check(&creds, &tok))
		put_row(rsinfo, "token", 1,
				psprintf("WeChat (%s) gave appid \"%s\" an access token", su_api_base(), appid));
	else
		put_row(rsinfo, "token", 0,
				psprintf("errcode %d: %s", tok.errcode,
						 tok.errmsg ? su_clean_text_capped(tok.errmsg) : "(no message)"));
}

/*
 * check_setup(appid text DEFAULT NULL)
 *		RETURNS TABLE (item text, ok boolean, detail text)
 */
Datum
su_check_setup_sql(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const char *appid = PG_ARGISNULL(0) ? su_appid : text_to_cstring(PG_GETARG_TEXT_PP(0));

	InitMaterializedSRF(fcinfo, 0);
	check_version(rsinfo);
	check_worker(rsinfo);
	check_endpoint(rsinfo);
	if (appid == NULL || appid[0] == '\0')
	{
		put_row(rsinfo, "appid", 0,
				"no appid: pass one (check_setup('wx...')), or set shopping_upload.appid");
		return (Datum) 0;
	}
	put_row(rsinfo, "appid", 1,
			psprintf("appid \"%s\"%s", appid,
					 su_appid && strcmp(su_appid, appid) == 0 ?
					 " (shopping_upload.appid)" : ""));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	check_credentials(rsinfo, appid);
	SPI_finish();
	return (Datum) 0;
}
