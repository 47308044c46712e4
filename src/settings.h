/*-------------------------------------------------------------------------
 *
 * settings.h
 *		The shopping_upload.* settings.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_SETTINGS_H
#define SU_SETTINGS_H

#include <stdbool.h>

#include "retry.h"

extern char *su_appid;
extern char *su_secret;
extern char *su_secret_file;
extern char *su_api_base_url;
extern char *su_ca_file;
extern bool su_allow_insecure_http;
extern char *su_proxy;
extern bool su_auto_upload;
extern int	su_connect_timeout_ms;
extern int	su_timeout_ms;
extern int	su_max_attempts;
extern int	su_retry_base_ms;
extern int	su_retry_max_ms;
extern int	su_config_retry_s;
extern int	su_verify_delay_s;
extern int	su_payment_wait_s;
extern int	su_reconcile_s;
extern char *su_database_name;
extern char *su_databases;
extern int	su_workers_per_database;

/* workers of one database at most (a bit each in a mask: shared.h) */
#define SU_MAX_WORKERS_PER_DATABASE 16

#define SU_MAX_DATABASE_ITEMS 256

/*
 * May a worker serve database name?  shopping_upload.databases, or, while
 * it is "*", shopping_upload.database_name when set.
 */
extern bool su_database_allowed(const char *name);

/*
 * The databases the settings name (not "*", not those after "!"), palloc'd,
 * each ended by a NUL, the list by an empty name.
 */
extern char *su_databases_named(void);
extern int	su_max_inflight;
extern int	su_lease_s;
extern int	su_max_rate;
extern int	su_audit_retention_s;

/* shopping_upload.audit_request: which audit rows keep the body sent */
typedef enum SuAuditRequest
{
	SU_AUDIT_REQUEST_FAILED,	/* those not accepted (the default) */
	SU_AUDIT_REQUEST_ALL,
	SU_AUDIT_REQUEST_NONE
} SuAuditRequest;
extern int	su_audit_request;

/* shopping_upload.trade_managed: the appids' service, unless pinned in trade_apps */
typedef enum SuTradeManaged
{
	SU_TRADE_MANAGED_AUTO,		/* as is_trade_managed says (trade_apps) */
	SU_TRADE_MANAGED_ON,
	SU_TRADE_MANAGED_OFF
} SuTradeManaged;
extern int	su_trade_managed;
extern int	su_claim_interval_ms;

/* api_base_url without a trailing slash */
extern const char *su_api_base(void);

/*
 * The secret of shopping_upload.appid, palloc'd: a superuser's SET, else
 * the content of shopping_upload.secret_file; NULL if neither, or if the
 * file is unusable: then *problem says why (naming no path; the server log
 * names it).  Never raises an error.
 */
extern char *su_config_secret(const char **problem);

/* The retry policy's settings (retry.c decides with them). */
extern SuRetryLimits su_retry_limits(void);

/* Defines the settings; the databases' and workers' only with preload. */
extern void su_define_settings(bool preload);

#endif							/* SU_SETTINGS_H */
