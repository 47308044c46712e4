/*-------------------------------------------------------------------------
 *
 * retry.h
 *		The retry policy of shopping_upload in one room: what a WeChat
 *		errcode means, the state an answer leaves its order in and when it
 *		is tried again, the backoff, the holds of a whole appid (45009, a
 *		permission), the verify schedule, the token endpoint's backoff, and
 *		every timing constant of the policy and of the worker's schedule.
 *		Callers ask it; they do not decide.
 *
 * Pure: no SPI, no I/O, no globals read, no randomness (the caller draws
 * the jitter), no PostgreSQL headers; only <stdint.h>, <stdbool.h> and
 * errcodes.h.  Times are int64_t microseconds with PostgreSQL's TimestampTz
 * epoch (2000-01-01 00:00 UTC): callers pass TimestampTz values as they are.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_RETRY_H
#define SU_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#include "errcodes.h"

/*
 * Units, named apart from PostgreSQL's USECS_PER_SEC and its kin so that
 * both headers may be included in one file.
 */
#define SU_USECS_PER_MSEC	INT64_C(1000)
#define SU_USECS_PER_SEC	INT64_C(1000000)
#define SU_USECS_PER_HOUR	INT64_C(3600000000)
#define SU_USECS_PER_DAY	INT64_C(86400000000)

/*
 * WeChat's day is Beijing's (UTC+8): days since 2000-01-01 there.  The same
 * values as common.h's (which includes PostgreSQL's headers); a file that
 * includes both must include common.h first, as long as common.h keeps its
 * own definitions.
 */
#ifndef SU_BEIJING_OFFSET_USECS
#define SU_BEIJING_OFFSET_USECS (8 * SU_USECS_PER_HOUR)
#endif
#ifndef su_beijing_day
#define su_beijing_day(t) ((int) (((t) + SU_BEIJING_OFFSET_USECS) / SU_USECS_PER_DAY))
#endif

/* ---------------------------------------------------------------------
 * Timing constants
 * ---------------------------------------------------------------------
 */

/* the policy: how long a 45011 (the per-minute quota) waits */
#define SU_QUOTA_MINUTE_WAIT_USECS	(60 * SU_USECS_PER_SEC)

/* the follow-up calls (queue_followup.c) */
/* how long shipping information waits for its order before a new look */
#define SU_WAITING_RECHECK_S	300
#define SU_PAYMENT_LOOK_FIRST_S	5	/* 10060001: the first look again */
#define SU_PAYMENT_LOOK_MAX_S	60	/* ... the longest gap between two */
/* ... and when the order changed between the claim and the body's read */
#define SU_DEFERRED_RECHECK_MS	1000

/* the access tokens (token.c) */
/* a token is used until this long (at most half its life) before it expires */
#define SU_TOKEN_MARGIN_USECS	(300 * SU_USECS_PER_SEC)
/* force_refresh fetches in one Beijing day, at most */
#define SU_FORCE_PER_DAY		20
/* least time between two force_refresh fetches */
#define SU_FORCE_GAP_USECS		(30 * SU_USECS_PER_SEC)
/* no fetch so long after a first failed fetch (then doubled) */
#define SU_TOKEN_BACKOFF_USECS	(1 * SU_USECS_PER_SEC)
/* doublings of SU_TOKEN_BACKOFF_USECS at most (256 s) */
#define SU_TOKEN_BACKOFF_SHIFT_MAX	8
/* cap of the wait after failed fetches */
#define SU_TOKEN_BACKOFF_MAX_USECS	(300 * SU_USECS_PER_SEC)

/* the worker's round (worker.c) */
#define SU_CLOCK_STEP_USECS		(1 * SU_USECS_PER_SEC)	/* a wall-clock step seen */
#define SU_AUDIT_TRIM_BUDGET_MS 20	/* per round, while behind */
#define SU_RECORD_RETRY_MS		20	/* answers whose state row was held */
#define SU_ERROR_PAUSE_MS		1000	/* after an error */
#define SU_LOCKED_RETRY_MS		100 /* a due order another transaction holds */
/* least time between two reads of next due times, claims taking orders */
#define SU_NEXT_DUE_READ_MS		250

/* the worker's and the launcher's literals of today (worker.c), named */
#define SU_AUDIT_TRIM_IDLE_MS	60000	/* next audit trim once caught up */
#define SU_TRADE_APPS_MS		(24 * 3600 * 1000)	/* is_trade_managed again */
#define SU_WAIT_MAX_MS			60000	/* the longest wait of a round */
#define SU_LOOK_ALL_MS			60000	/* every kind looked at, known due or not */
#define SU_RATE_LIMITED_MS		5	/* a look again while a rate limit holds */
#define SU_EXTENSION_POLL_MS	5000	/* a look for CREATE EXTENSION, or its update */
#define SU_LAUNCHER_RESTART_MS	1000	/* a worker that stopped: restarted */
#define SU_LAUNCHER_START_RETRY_MS	5000	/* after a start that failed (no slot) */
#define SU_LAUNCHER_SCAN_MS		5000	/* pg_database read again */
#define SU_CREDENTIALS_RECHECK_MS	60000	/* a database's credentials read again */
#define SU_LAUNCHER_RESCAN_MS	1000	/* ... at most so often when asked */
#define SU_LAUNCHER_MAX_LOOKS	2	/* looks for the extension at once */
#define SU_LAUNCHER_KEEP_OUT_MS	10000	/* after DROP DATABASE and the like */
#define SU_LAUNCHER_ATTACH_MS	60000	/* a reserved slot never attached: freed */

/* a call by hand waiting for a free background worker slot (sync_call.c) */
#define SU_SLOT_WAIT_MS			5000	/* how long at most */
#define SU_SLOT_RETRY_MS		10	/* between two looks */

/* ---------------------------------------------------------------------
 * The policy
 * ---------------------------------------------------------------------
 */

/* the settings the caller reads from its GUCs */
typedef struct SuRetryLimits
{
	int			max_attempts;	/* shopping_upload.max_attempts */
	int			retry_base_ms;	/* shopping_upload.retry_base_delay */
	int			retry_max_ms;	/* shopping_upload.retry_max_delay */
	int			config_retry_s; /* shopping_upload.config_retry_interval */
	int			verify_delay_s; /* shopping_upload.verify_delay; 0: none */
	int			payment_wait_s; /* shopping_upload.payment_wait */
	int			reconcile_s;	/* shopping_upload.reconcile_interval */
} SuRetryLimits;

/* the state an answer leaves its order in (su_retry_state_name) */
typedef enum SuNextState
{
	SU_NEXT_UPLOADED,			/* accepted */
	SU_NEXT_RETRYING,			/* tried again at next */
	SU_NEXT_HELD,				/* held until next (a quota, the config) */
	SU_NEXT_REJECTED,			/* not again until the order changes */
	SU_NEXT_DEAD,				/* max_attempts used up */
	SU_NEXT_WAITING_PAYMENT		/* the payment not found yet: looked for
								 * again at next (trade_shipping) */
} SuNextState;

/*
 * The state's name, as order_state.state stores it: "uploaded", "retrying",
 * "held", "rejected", "dead" ("unknown" for a value outside the enum, which
 * the table's CHECK refuses).
 */
extern const char *su_retry_state_name(SuNextState state);

/*
 * What a client does about a WeChat errcode.  Transport failures (HTTP 5xx,
 * timeouts, connection or TLS errors) carry no errcode: the caller treats
 * them as SU_CLASS_RETRY itself.
 */
extern SuErrClass su_retry_classify(int errcode);

/* the class's name: "ok", "retry", "refresh_token", ... "unknown" */
extern const char *su_retry_class_name(SuErrClass cls);

/*
 * The class of a failure to get an access token (errcode as the token
 * endpoint or the token cache gave it): busy (-1, also a transport
 * failure) is retried, the endpoint's quotas wait as an upload's would,
 * anything else is a configuration problem.
 */
extern SuErrClass su_retry_token_failure_class(int errcode);

/*
 * What an operator does about an errcode of the token endpoint (or about a
 * handed-in token WeChat refused), in one line; NULL when there is nothing
 * to add to WeChat's errmsg.
 */
extern const char *su_retry_token_hint(int errcode);

/*
 * The errcodes of this server's own configuration (a secret that cannot be
 * read, plain http refused, a CA file): the rows they hold are due again as
 * soon as the settings are reloaded, not config_retry_s later.  *n gets
 * their count.
 */
extern const int *su_retry_local_config_codes(int *n);

/* Is errcode one of su_retry_local_config_codes()? */
extern bool su_retry_is_local_config(int errcode);

/*
 * Exponential backoff: retry_base_ms * 2^(attempt-1), capped at
 * retry_max_ms, times (0.5 + jitter/2); jitter in [0, 1), drawn by the
 * caller.
 */
extern int64_t su_retry_backoff_usecs(const SuRetryLimits *l, int attempt,
									   double jitter);

/*
 * The state an upload's answer of class cls leaves its order in, after its
 * attempt-th attempt (1 for the first) at now; *next is when it is tried
 * again, or 0 for never (uploaded, rejected, dead).  Retries and token
 * refreshes end at max_attempts; a 45011 waits a minute, a 45009 holds
 * until the next midnight in Beijing, a configuration problem holds for
 * config_retry_s, all without a limit of attempts.
 */
extern SuNextState su_retry_next(const SuRetryLimits *l, SuErrClass cls,
								 int attempt, int64_t now, double jitter,
								 int64_t *next);

/*
 * When a verify whose answer was of class cls, after its attempt-th attempt
 * at now, is tried again; 0: not again.  Quotas and configuration wait as
 * an upload would; every other failure is retried with backoff up to
 * max_attempts.
 */
extern int64_t su_retry_verify_next(const SuRetryLimits *l, SuErrClass cls,
									int attempt, int64_t now, double jitter);

/*
 * When the verify of an upload accepted at accepted is first due:
 * verify_delay_s later, or 0 (no verify) when verify_delay_s is 0.
 */
extern int64_t su_retry_verify_first(const SuRetryLimits *l, int64_t accepted);
extern SuErrClass su_retry_trade_classify(int errcode);
extern SuErrClass su_retry_trade_confirm_classify(int errcode);
extern int64_t su_retry_trade_confirm_next(const SuRetryLimits *l, SuErrClass cls,
										   int attempt, int64_t now, double jitter);
extern int64_t su_retry_trade_check_next(const SuRetryLimits *l, SuErrClass cls,
										 int attempt, int64_t now, double jitter);
extern SuNextState su_retry_trade_next(const SuRetryLimits *l, SuErrClass cls,
									   int errcode, int attempt, int64_t now,
									   int64_t wait_since, double jitter,
									   int64_t *next);

/*
 * Does an answer of class cls hold every call of its appid (until
 * su_retry_next's *next)?  45009 and configuration problems do.  The caller
 * holds an appid only when the request was sent with a token: a failure
 * before any request holds its order alone.
 */
extern bool su_retry_holds_appid(SuErrClass cls);

/*
 * the hint logged when an appid is held after errcode (of class cls); NULL
 * for a class that holds none
 */
extern const char *su_retry_hold_hint(SuErrClass cls, int errcode);

/*
 * How long the token endpoint is left alone after a failed fetch, given
 * failures, the failed fetches in a row BEFORE this one: 1 s, 2 s, 4 s ...
 * doubled at most SU_TOKEN_BACKOFF_SHIFT_MAX times (256 s), capped at
 * SU_TOKEN_BACKOFF_MAX_USECS.
 */
extern int64_t su_retry_token_backoff_usecs(int failures);

#endif							/* SU_RETRY_H */
