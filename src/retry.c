/*-------------------------------------------------------------------------
 *
 * retry.c
 *		The retry policy: what each WeChat errcode means, the state an
 *		answer leaves its order in and when it is tried again, the holds of
 *		a whole appid, the verify schedule and the token endpoint's backoff.
 *
 * Pure: every function decides from its arguments alone.  No SPI, no I/O,
 * no globals, no randomness (the jitter is the caller's draw), no
 * PostgreSQL headers.  The unit tests are test/unit/test_retry.c.
 *
 *-------------------------------------------------------------------------
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errcodes.h"
#include "retry.h"

const char *
su_retry_state_name(SuNextState state)
{
	switch (state)
	{
		case SU_NEXT_UPLOADED:
			return "uploaded";
		case SU_NEXT_RETRYING:
			return "retrying";
		case SU_NEXT_HELD:
			return "held";
		case SU_NEXT_REJECTED:
			return "rejected";
		case SU_NEXT_DEAD:
			return "dead";
		case SU_NEXT_WAITING_PAYMENT:
			return "waiting_for_payment";
	}
	return "unknown";
}

SuErrClass
su_retry_classify(int errcode)
{
	if (errcode == SU_ERR_LOCAL_CONFIG)
		return SU_CLASS_CONFIG;
	switch (errcode)
	{
		case WX_ERR_OK:
			return SU_CLASS_OK;
		case WX_ERR_SYSTEM_BUSY:
			return SU_CLASS_RETRY;
		case WX_ERR_INVALID_CREDENTIAL:
		case WX_ERR_INVALID_ACCESS_TOKEN:
		case WX_ERR_ACCESS_TOKEN_EXPIRED:
			return SU_CLASS_REFRESH_TOKEN;
		case WX_ERR_QUOTA_MINUTE:
			return SU_CLASS_QUOTA_MINUTE;
		case WX_ERR_QUOTA_DAY:
			return SU_CLASS_QUOTA_DAY;
		case WX_ERR_API_UNAUTHORIZED:
		case WX_ERR_COMPONENT_UNAUTHORIZED:
		case WX_ERR_NO_SHOPPING_PERMISSION:
		case WX_ERR_APPID_NOT_MINI_PROGRAM:
		case WX_ERR_INVALID_APPID:
			return SU_CLASS_CONFIG;
		case WX_ERR_INVALID_OPENID:
		case WX_ERR_DATA_FORMAT:
		case WX_ERR_EMPTY_POST_DATA:
		case WX_ERR_POST_DATA_TOO_LONG:
			return SU_CLASS_DATA;
		default:
			break;
	}
	if (errcode >= WX_ERR_DATA_RANGE_FIRST && errcode <= WX_ERR_DATA_RANGE_LAST)
		return SU_CLASS_DATA;
	return SU_CLASS_UNKNOWN;
}

const char *
su_retry_class_name(SuErrClass cls)
{
	switch (cls)
	{
		case SU_CLASS_OK:
			return "ok";
		case SU_CLASS_RETRY:
			return "retry";
		case SU_CLASS_REFRESH_TOKEN:
			return "refresh_token";
		case SU_CLASS_QUOTA_MINUTE:
			return "quota_minute";
		case SU_CLASS_QUOTA_DAY:
			return "quota_day";
		case SU_CLASS_CONFIG:
			return "config";
		case SU_CLASS_DATA:
			return "data";
		case SU_CLASS_UNKNOWN:
			break;
	}
	return "unknown";
}

SuErrClass
su_retry_token_failure_class(int errcode)
{
	switch (errcode)
	{
		case WX_ERR_SYSTEM_BUSY:
			return SU_CLASS_RETRY;	/* busy or unreachable: try again */
		case SU_ERR_LOCAL_CONFIG:
			return SU_CLASS_CONFIG; /* this server's settings stop it */
		case WX_ERR_QUOTA_DAY:
			return SU_CLASS_QUOTA_DAY;	/* the endpoint's own daily quota */
		case WX_ERR_QUOTA_MINUTE:
			return SU_CLASS_QUOTA_MINUTE;
		default:
			break;
	}
	/* a secret, an appid, the IP allow-list: the configuration is wrong */
	return SU_CLASS_CONFIG;
}

const int *
su_retry_local_config_codes(int *n)
{
	static const int codes[] = {SU_ERR_LOCAL_CONFIG, WX_ERR_NO_SECRET};

	*n = (int) (sizeof(codes) / sizeof(codes[0]));
	return codes;
}

bool
su_retry_is_local_config(int errcode)
{
	int			n;
	const int  *codes = su_retry_local_config_codes(&n);

	for (int i = 0; i < n; i++)
		if (codes[i] == errcode)
			return true;
	return false;
}

const char *
su_retry_token_hint(int errcode)
{
	switch (errcode)
	{
		case WX_ERR_SYSTEM_BUSY:
			return "WeChat is busy or could not be reached: the token is asked for again shortly";
		case WX_ERR_IP_NOT_ALLOWED:
			return "add the server's outgoing IP address to the Mini Program's IP allow-list "
				"(mp.weixin.qq.com, Development > Development settings), or turn the allow-list off";
		case WX_ERR_INVALID_APPSECRET:
		case WX_ERR_INVALID_CREDENTIAL:
			return "the AppSecret is not this appid's: put the current AppSecret (mp.weixin.qq.com, "
				"Development > Development settings) in shopping_upload.secret_file or shopping_upload.accounts";
		case WX_ERR_INVALID_APPID:
			return "WeChat knows no such appid: check shopping_upload.appid, the order's appid and shopping_upload.accounts";
		case WX_ERR_ACCESS_TOKEN_EXPIRED:
			return "the access token handed in with set_access_token() has expired: hand in a fresh one";
		case WX_ERR_QUOTA_DAY:
			return "the appid's daily quota of token requests is used up: it is asked for again after midnight, Beijing time";
		case WX_ERR_API_UNAUTHORIZED:
			return "the appid may not call this API: check the Mini Program's permissions (mp.weixin.qq.com)";
		default:
			break;
	}
	return NULL;
}

/* exponential backoff with jitter: base * 2^(attempt-1), capped, times [0.5, 1) */
int64_t
su_retry_backoff_usecs(const SuRetryLimits *l, int attempt, double jitter)
{
	double		ms = l->retry_base_ms;

	for (int i = 1; i < attempt && ms < l->retry_max_ms; i++)
		ms *= 2;
	if (ms > l->retry_max_ms)
		ms = l->retry_max_ms;
	ms *= 0.5 + jitter / 2;
	return (int64_t) (ms * 1000);
}

/* the next midnight in Beijing (UTC+8) after now */
static int64_t
next_beijing_midnight(int64_t now)
{
	return ((now + SU_BEIJING_OFFSET_USECS) / SU_USECS_PER_DAY + 1) * SU_USECS_PER_DAY
		- SU_BEIJING_OFFSET_USECS;
}

SuNextState
su_retry_next(const SuRetryLimits *l, SuErrClass cls, int attempt,
			  int64_t now, double jitter, int64_t *next)
{
	*next = 0;
	switch (cls)
	{
		case SU_CLASS_OK:
			return SU_NEXT_UPLOADED;
		case SU_CLASS_RETRY:
		case SU_CLASS_REFRESH_TOKEN:
			if (attempt >= l->max_attempts)
				return SU_NEXT_DEAD;
			*next = now + (cls == SU_CLASS_RETRY ?
						   su_retry_backoff_usecs(l, attempt, jitter) : 0);
			return SU_NEXT_RETRYING;
		case SU_CLASS_QUOTA_MINUTE:
			*next = now + SU_QUOTA_MINUTE_WAIT_USECS;
			return SU_NEXT_RETRYING;
		case SU_CLASS_QUOTA_DAY:
			*next = next_beijing_midnight(now);
			return SU_NEXT_HELD;
		case SU_CLASS_CONFIG:
			*next = now + (int64_t) l->config_retry_s * SU_USECS_PER_SEC;
			return SU_NEXT_HELD;
		case SU_CLASS_DATA:
		case SU_CLASS_UNKNOWN:
			break;
	}
	return SU_NEXT_REJECTED;
}

/*
 * Every failure of a verify is retried, with backoff, up to max_attempts: a
 * verify changes nothing at WeChat, and its answer never decides the order's
 * upload.
 */
int64_t
su_retry_verify_next(const SuRetryLimits *l, SuErrClass cls, int attempt,
					 int64_t now, double jitter)
{
	int64_t		next;

	switch (cls)
	{
		case SU_CLASS_OK:
			return 0;
		case SU_CLASS_QUOTA_MINUTE:
		case SU_CLASS_QUOTA_DAY:
		case SU_CLASS_CONFIG:
			/* as an upload would wait */
			(void) su_retry_next(l, cls, attempt, now, jitter, &next);
			return next;
		case SU_CLASS_REFRESH_TOKEN:
		case SU_CLASS_RETRY:
		case SU_CLASS_DATA:
		case SU_CLASS_UNKNOWN:
			break;
	}
	if (attempt >= l->max_attempts)
		return 0;
	return now + (cls == SU_CLASS_REFRESH_TOKEN ? 0 :
				  su_retry_backoff_usecs(l, attempt, jitter));
}

int64_t
su_retry_verify_first(const SuRetryLimits *l, int64_t accepted)
{
	if (l->verify_delay_s <= 0)
		return 0;
	return accepted + (int64_t) l->verify_delay_s * SU_USECS_PER_SEC;
}

/*
 * The order shipping management service's own codes (/wxa/sec/order), then
 * the general ones.  10060023: nothing was updated, WeChat has the shipping
 * information as sent.  10060001: the payment is not found yet (normal right
 * after payment: su_retry_trade_next() waits for it).  10060002, 10060003
 * and 10060004 are final: the payment cannot be shipped (again).  48001:
 * the appid is not in the service; no hold (a hold stops every kind of the
 * appid, its shopping details too): the shipping information is rejected,
 * with WeChat's message.
 */
SuErrClass
su_retry_trade_classify(int errcode)
{
	switch (errcode)
	{
		case WX_ERR_TRADE_UNCHANGED:
			return SU_CLASS_OK;
		case WX_ERR_TRADE_PAYMENT_NOT_FOUND:
		case WX_ERR_TRADE_SYSTEM_ERROR:
		case WX_ERR_TRADE_SYSTEM_ERROR_2:
			return SU_CLASS_RETRY;
		case WX_ERR_TRADE_ALL_SHIPPED:
		case WX_ERR_TRADE_RESHIP_USED:
		case WX_ERR_TRADE_NOT_SHIPPABLE:
		case WX_ERR_API_UNAUTHORIZED:
		case SU_ERR_UNKNOWN_DELIVERY_ID:
			return SU_CLASS_DATA;
		default:
			break;
	}
	return su_retry_classify(errcode);
}

/*
 * The receipt reminder: 10060030 (already reminded) is what was wanted.
 * 10060028 (not shipped), 10060029 (received_time before the shipping) and
 * 10060032 (not express) are final.
 */
SuErrClass
su_retry_trade_confirm_classify(int errcode)
{
	switch (errcode)
	{
		case WX_ERR_TRADE_CONFIRM_DONE:
			return SU_CLASS_OK;
		case WX_ERR_TRADE_NOT_SHIPPED:
		case WX_ERR_TRADE_RECEIVED_TIME:
		case WX_ERR_TRADE_CONFIRM_NOT_EXPRESS:
			return SU_CLASS_DATA;
		default:
			break;
	}
	return su_retry_trade_classify(errcode);
}

/*
 * The worker's get_order of a payment: a failure is asked again as a
 * verify is (backoff, up to max_attempts); after an answer, or once the
 * attempts are used up, the next look is reconcile_interval later (the
 * caller stops once the payment is settled, complete or refunded).
 */
int64_t
su_retry_trade_check_next(const SuRetryLimits *l, SuErrClass cls, int attempt,
						  int64_t now, double jitter)
{
	int64_t		next = cls == SU_CLASS_OK ? 0 :
		su_retry_verify_next(l, cls, attempt, now, jitter);

	return next != 0 ? next : now + (int64_t) l->reconcile_s * SU_USECS_PER_SEC;
}

/*
 * The receipt reminder's next try: none after a final refusal (data: not
 * shipped, a received_time before the shipping, not express), else as a
 * verify's.
 */
int64_t
su_retry_trade_confirm_next(const SuRetryLimits *l, SuErrClass cls, int attempt,
							int64_t now, double jitter)
{
	if (cls == SU_CLASS_DATA)
		return 0;
	return su_retry_verify_next(l, cls, attempt, now, jitter);
}

/*
 * A payment not found (10060001) is looked for again, 5 s, 10 s, 20 s ...
 * at most 60 s apart (jittered), until payment_wait after the first such
 * answer (wait_since, 0: this one): then it is rejected, the reason saying
 * so.  Every other answer as su_retry_next().
 */
SuNextState
su_retry_trade_next(const SuRetryLimits *l, SuErrClass cls, int errcode,
					int attempt, int64_t now, int64_t wait_since,
					double jitter, int64_t *next)
{
	int64_t		gap = SU_PAYMENT_LOOK_FIRST_S * SU_USECS_PER_SEC;
	int64_t		end;

	if (errcode != WX_ERR_TRADE_PAYMENT_NOT_FOUND)
		return su_retry_next(l, cls, attempt, now, jitter, next);
	*next = 0;
	if (wait_since == 0 || wait_since > now)
		wait_since = now;
	end = wait_since + (int64_t) l->payment_wait_s * SU_USECS_PER_SEC;
	if (now >= end)
		return SU_NEXT_REJECTED;
	for (int i = 1; i < attempt && gap < SU_PAYMENT_LOOK_MAX_S * SU_USECS_PER_SEC; i++)
		gap *= 2;
	if (gap > SU_PAYMENT_LOOK_MAX_S * SU_USECS_PER_SEC)
		gap = SU_PAYMENT_LOOK_MAX_S * SU_USECS_PER_SEC;
	gap = (int64_t) (gap * (0.5 + jitter / 2));
	/* one last look when the wait ends */
	*next = now + gap < end ? now + gap : end;
	return SU_NEXT_WAITING_PAYMENT;
}

bool
su_retry_holds_appid(SuErrClass cls)
{
	return cls == SU_CLASS_QUOTA_DAY || cls == SU_CLASS_CONFIG;
}

const char *
su_retry_hold_hint(SuErrClass cls, int errcode)
{
	if (errcode == SU_ERR_LOCAL_CONFIG)
		return "This server's settings stop every request (shopping_upload.api_base_url, "
			"allow_insecure_http, ca_file): fix them and reload; held orders go at once.";
	switch (cls)
	{
		case SU_CLASS_QUOTA_DAY:
			return "The daily quota is used up; uploads go on at midnight, Beijing time.";
		case SU_CLASS_CONFIG:
			return "Check the appid's permission for uploadShoppingInfo and its credentials.";
		default:
			break;
	}
	return NULL;
}

/* a fetch failed: the next waits 1 s, 2 s, 4 s ... */
int64_t
su_retry_token_backoff_usecs(int failures)
{
	int			shift = failures < SU_TOKEN_BACKOFF_SHIFT_MAX ?
		failures : SU_TOKEN_BACKOFF_SHIFT_MAX;
	int64_t		wait;

	if (shift < 0)
		shift = 0;				/* never today: failures start at 0 */
	wait = SU_TOKEN_BACKOFF_USECS << shift;
	return wait < SU_TOKEN_BACKOFF_MAX_USECS ? wait : SU_TOKEN_BACKOFF_MAX_USECS;
}
