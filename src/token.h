/*-------------------------------------------------------------------------
 *
 * token.h
 *		Access tokens per appid: one shared cache for every backend and the
 *		worker, filled from WeChat's stable_token or from a token handed in.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_TOKEN_H
#define SU_TOKEN_H

#include "datatype/timestamp.h"
#include "storage/lwlock.h"

#include "http.h"

#define SU_APPID_LEN 64
#define SU_TOKEN_LEN 1024
#define SU_MAX_APPIDS 64


/* One cached token; lives in shared memory. */
typedef struct SuTokenSlot
{
	char		appid[SU_APPID_LEN];	/* "" = free */
	char		token[SU_TOKEN_LEN];	/* "" = none */
	TimestampTz expires_at;		/* WeChat's expiry */
	TimestampTz fetched_at;
	int			rejections;		/* rejections since a token last worked */
	int			force_day;		/* day (UTC+8, days since 2000) of force_count */
	int			force_count;	/* force_refresh calls that day */
	TimestampTz last_force;
	int64		fetches;		/* stable_token calls made */
	int			failures;		/* failed fetches in a row */
	TimestampTz retry_at;		/* no fetch before, after failures */
	int			last_errcode;	/* the last failed fetch's errcode */
} SuTokenSlot;

/* What is needed to get a token for an appid; read from shopping_upload.accounts. */
typedef struct SuCredentials
{
	char	   *appid;
	char	   *secret;			/* NULL: none */
	const char *secret_problem; /* the secret file is unusable: why */
	const char *secret_from;	/* where the secret came from (a setting's or
								 * a table's name), for messages */
	char	   *access_token;	/* handed in (authorizer_access_token) */
	TimestampTz token_expires_at;
} SuCredentials;

typedef struct SuTokenResult
{
	char	   *token;			/* palloc'd; NULL on failure */
	int			errcode;		/* on failure: WeChat's, -1 transport, 41004 */
	char	   *errmsg;			/* on failure: why, never with a secret */
} SuTokenResult;

extern Size su_token_shmem_size(void);
extern void su_token_shmem_init(SuTokenSlot *slots, LWLock *lock);

/* Reads an appid's credentials (SPI connected; as the extension's owner). */
extern void su_credentials_load(const char *appid, SuCredentials *creds);

/* A cached token still good for a while, palloc'd, or NULL. */
extern char *su_token_peek(const char *appid);

/*
 * Has this database credentials for the appid (a secret, or a token handed
 * in)?  Only then is the shared cache's token used for it.
 */
extern bool su_credentials_present(const SuCredentials *creds);

/* A usable token: the cached one, or a new one (blocking HTTP, cancellable). */
extern bool su_token_get(const SuCredentials *creds, SuTokenResult *res);

/*
 * As su_token_get(), but an appid with a secret asks WeChat now, whatever
 * the cache holds or the backoff says (check_setup()).
 */
extern bool su_token_check(const SuCredentials *creds, SuTokenResult *res);

/*
 * The settings were reloaded: the backoff after fetches that failed for a
 * local configuration problem (retry.c's su_retry_local_config_codes()) ends;
 * a failing endpoint's own backoff goes on.
 */
extern void su_token_clear_backoff(void);

/* WeChat rejected token (40001/40014/42001): drop it from the cache. */
extern void su_token_rejected(const char *appid, const char *token);

/* WeChat accepted a request made with the appid's token. */
extern void su_token_accepted(const char *appid);

/* Stores a handed-in token in the cache. */
extern void su_token_put(const char *appid, const char *token,
						 TimestampTz expires_at);

/* Copies the cache (tokens blanked) into out[SU_MAX_APPIDS]; returns the count. */
extern int	su_token_snapshot(SuTokenSlot *out);


#endif							/* SU_TOKEN_H */
