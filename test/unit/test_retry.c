/*-------------------------------------------------------------------------
 *
 * test_retry.c
 *		Unit tests of retry.c, the retry policy, without PostgreSQL.
 *
 * Linked into test_validate's binary (make unit-test), whose main() calls
 * run_retry_tests() and prints one line "N passed, N failed" over every
 * case.  Every expected value is written out as a number, worked out by
 * hand from today's policy, never computed by the code under test.
 *
 * Timestamps are PostgreSQL's: microseconds since 2000-01-01 00:00 UTC.
 *
 *-------------------------------------------------------------------------
 */
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "errcodes.h"
#include "retry.h"
#include "unit.h"

/* the largest jitter pg_prng_double() draws: 1 - 2^-52 */
#define JMAX		(1.0 - DBL_EPSILON)

#define SEC			INT64_C(1000000)
#define MSEC		INT64_C(1000)

/* 2024-03-10 12:00:00 UTC (20:00 in Beijing) */
#define T_NOON				INT64_C(763387200000000)
/* 2024-03-10 15:59:59.999999 UTC (23:59:59.999999 in Beijing) */
#define T_BJ_LAST_US		INT64_C(763401599999999)
/* 2024-03-10 16:00:00 UTC: midnight in Beijing, 2024-03-11 begins there */
#define T_BJ_MIDNIGHT_11	INT64_C(763401600000000)
/* 2024-03-10 23:59:59.999999 UTC (07:59:59.999999 on the 11th in Beijing) */
#define T_UTC_LAST_US		INT64_C(763430399999999)
/* 2024-03-11 00:00:00 UTC: the UTC day boundary (08:00 in Beijing) */
#define T_UTC_MIDNIGHT_11	INT64_C(763430400000000)
/* 2024-03-11 16:00:00 UTC: midnight in Beijing, 2024-03-12 begins there */
#define T_BJ_MIDNIGHT_12	INT64_C(763488000000000)
/* 2024-02-28 20:00:00 UTC (04:00 on the 29th, a leap day, in Beijing) */
#define T_LEAP_EVE			INT64_C(762465600000000)
/* 2024-02-29 16:00:00 UTC: midnight in Beijing, 2024-03-01 begins there */
#define T_LEAP_NEXT			INT64_C(762537600000000)
/* 2024-12-31 20:00:00 UTC (04:00 on 2025-01-01 in Beijing) */
#define T_YEAR_UTC_EVE		INT64_C(788990400000000)
/* 2025-01-01 16:00:00 UTC: midnight in Beijing, 2025-01-02 begins there */
#define T_YEAR_NEXT			INT64_C(789062400000000)
/* 2000-01-01 16:00:00 UTC: the first midnight in Beijing after the epoch */
#define T_EPOCH_NEXT		INT64_C(57600000000)

/* the GUCs' defaults */
static const SuRetryLimits defaults = {
	.max_attempts = 10,
	.retry_base_ms = 1000,
	.retry_max_ms = 600000,
	.config_retry_s = 600,
	.verify_delay_s = 60,
	.payment_wait_s = 600,
	.reconcile_s = 21600,
};

static void
pass_or_fail(int ok, const char *what, const char *detail)
{
	if (ok)
		passed++;
	else
	{
		failed++;
		fprintf(stderr, "FAIL: retry: %s: %s\n", what, detail);
	}
}

static void
expect_i64(const char *what, int64_t got, int64_t want)
{
	char		detail[128];

	snprintf(detail, sizeof(detail), "expected %" PRId64 ", got %" PRId64,
			 want, got);
	pass_or_fail(got == want, what, detail);
}

static void
expect_str(const char *what, const char *got, const char *want)
{
	char		detail[512];

	snprintf(detail, sizeof(detail), "expected %s, got %s",
			 want ? want : "NULL", got ? got : "NULL");
	pass_or_fail(got == want || (got && want && strcmp(got, want) == 0),
				 what, detail);
}

static void
expect_bool(const char *what, bool got, bool want)
{
	pass_or_fail(got == want, what, want ? "expected true, got false" :
				 "expected false, got true");
}

/* su_retry_next: the state's name and *next */
static void
expect_next(const char *what, const SuRetryLimits *l, SuErrClass cls,
			int attempt, int64_t now, double jitter,
			const char *want_state, int64_t want_next)
{
	char		name[256];
	int64_t		next = -1;		/* must be overwritten, 0 included */
	SuNextState state = su_retry_next(l, cls, attempt, now, jitter, &next);

	snprintf(name, sizeof(name), "%s: state", what);
	expect_str(name, su_retry_state_name(state), want_state);
	snprintf(name, sizeof(name), "%s: next", what);
	expect_i64(name, next, want_next);
}

static void
test_state_names(void)
{
	expect_str("state name uploaded",
			   su_retry_state_name(SU_NEXT_UPLOADED), "uploaded");
	expect_str("state name retrying",
			   su_retry_state_name(SU_NEXT_RETRYING), "retrying");
	expect_str("state name held", su_retry_state_name(SU_NEXT_HELD), "held");
	expect_str("state name rejected",
			   su_retry_state_name(SU_NEXT_REJECTED), "rejected");
	expect_str("state name dead", su_retry_state_name(SU_NEXT_DEAD), "dead");
	expect_str("state name outside the enum",
			   su_retry_state_name((SuNextState) 99), "unknown");
}

static void
test_backoff(void)
{
	SuRetryLimits l = defaults;

	/* attempt 1: base, times 0.5 + jitter/2 */
	expect_i64("backoff attempt 1, jitter 0",
			   su_retry_backoff_usecs(&l, 1, 0.0), 500 * MSEC);
	expect_i64("backoff attempt 1, jitter 0.5",
			   su_retry_backoff_usecs(&l, 1, 0.5), 750 * MSEC);
	/* 1000 ms * (1 - 2^-53), truncated to the microsecond */
	expect_i64("backoff attempt 1, jitter 1 - 2^-52",
			   su_retry_backoff_usecs(&l, 1, JMAX), 999999);
	expect_i64("backoff attempt 1, jitter 0.999",
			   su_retry_backoff_usecs(&l, 1, 0.999), 999500);

	/* doubled per attempt */
	expect_i64("backoff attempt 2, jitter 0",
			   su_retry_backoff_usecs(&l, 2, 0.0), 1000 * MSEC);
	expect_i64("backoff attempt 3, jitter 0",
			   su_retry_backoff_usecs(&l, 3, 0.0), 2000 * MSEC);
	expect_i64("backoff attempt 2, jitter 1 - 2^-52",
			   su_retry_backoff_usecs(&l, 2, JMAX), 1999999);
	/* 1000 * 2^9 = 512000 ms, under the cap */
	expect_i64("backoff attempt 10, jitter 0",
			   su_retry_backoff_usecs(&l, 10, 0.0), 256000 * MSEC);

	/* 1000 * 2^10 = 1024000 ms: capped at 600000 */
	expect_i64("backoff attempt 11 capped, jitter 0",
			   su_retry_backoff_usecs(&l, 11, 0.0), 300000 * MSEC);
	expect_i64("backoff attempt 11 capped, jitter 1 - 2^-52",
			   su_retry_backoff_usecs(&l, 11, JMAX), 599999999);
	expect_i64("backoff attempt 1000 capped, jitter 0.5",
			   su_retry_backoff_usecs(&l, 1000, 0.5), 450000 * MSEC);
	expect_i64("backoff attempt INT_MAX capped, jitter 0",
			   su_retry_backoff_usecs(&l, INT_MAX, 0.0), 300000 * MSEC);

	/* attempt 0 or below: the base, as attempt 1 */
	expect_i64("backoff attempt 0", su_retry_backoff_usecs(&l, 0, 0.0), 500 * MSEC);
	expect_i64("backoff attempt -3", su_retry_backoff_usecs(&l, -3, 0.0), 500 * MSEC);

	/* a cap reached exactly, and one not a power of two of the base */
	l.retry_max_ms = 4000;
	expect_i64("backoff cap 4000, attempt 3 reaches it",
			   su_retry_backoff_usecs(&l, 3, 0.0), 2000 * MSEC);
	expect_i64("backoff cap 4000, attempt 4 stays on it",
			   su_retry_backoff_usecs(&l, 4, 0.0), 2000 * MSEC);
	l.retry_max_ms = 3000;
	expect_i64("backoff cap 3000, attempt 2 under it",
			   su_retry_backoff_usecs(&l, 2, 0.0), 1000 * MSEC);
	expect_i64("backoff cap 3000, attempt 3 cut to it",
			   su_retry_backoff_usecs(&l, 3, 0.0), 1500 * MSEC);

	/* a base above the cap: the cap */
	l.retry_base_ms = 5000;
	expect_i64("backoff base above the cap",
			   su_retry_backoff_usecs(&l, 1, 0.0), 1500 * MSEC);

	/* the GUCs' extremes: a wait past 2^31 microseconds */
	l.retry_base_ms = 1;
	l.retry_max_ms = 86400000;
	expect_i64("backoff base 1 ms, attempt 1",
			   su_retry_backoff_usecs(&l, 1, 0.0), 500);
	expect_i64("backoff cap one day, attempt 1000, jitter 0",
			   su_retry_backoff_usecs(&l, 1000, 0.0), INT64_C(43200000000));
	/* 2^26 = 67108864 ms, under the cap */
	expect_i64("backoff base 1 ms, attempt 27, jitter 0.5",
			   su_retry_backoff_usecs(&l, 27, 0.5), INT64_C(50331648000));
}

static void
test_next(void)
{
	SuRetryLimits l = defaults;

	expect_next("next ok", &l, SU_CLASS_OK, 1, T_NOON, 0.5, "uploaded", 0);
	expect_next("next ok at attempt max", &l, SU_CLASS_OK, 10, T_NOON, 0.5,
				"uploaded", 0);

	/* retry: backoff until max_attempts */
	expect_next("next retry attempt 1, jitter 0", &l, SU_CLASS_RETRY, 1,
				T_NOON, 0.0, "retrying", T_NOON + 500 * MSEC);
	expect_next("next retry attempt 1, jitter 1 - 2^-52", &l, SU_CLASS_RETRY, 1,
				T_NOON, JMAX, "retrying", T_NOON + 999999);
	expect_next("next retry attempt 9 (max - 1)", &l, SU_CLASS_RETRY, 9,
				T_NOON, 0.0, "retrying", T_NOON + 128000 * MSEC);
	expect_next("next retry attempt 10 (max)", &l, SU_CLASS_RETRY, 10,
				T_NOON, 0.0, "dead", 0);
	expect_next("next retry attempt 11 (past max)", &l, SU_CLASS_RETRY, 11,
				T_NOON, 0.0, "dead", 0);

	/* refresh_token: again at once, until max_attempts */
	expect_next("next refresh_token attempt 1", &l, SU_CLASS_REFRESH_TOKEN, 1,
				T_NOON, 0.9, "retrying", T_NOON);
	expect_next("next refresh_token attempt 9", &l, SU_CLASS_REFRESH_TOKEN, 9,
				T_NOON, 0.9, "retrying", T_NOON);
	expect_next("next refresh_token attempt 10 (max)", &l, SU_CLASS_REFRESH_TOKEN,
				10, T_NOON, 0.9, "dead", 0);

	/* quota_minute: 60 s, without a limit of attempts */
	expect_next("next quota_minute attempt 1", &l, SU_CLASS_QUOTA_MINUTE, 1,
				T_NOON, 0.9, "retrying", T_NOON + 60 * SEC);
	expect_next("next quota_minute attempt 10 (max)", &l, SU_CLASS_QUOTA_MINUTE,
				10, T_NOON, 0.0, "retrying", T_NOON + 60 * SEC);
	expect_next("next quota_minute attempt 50", &l, SU_CLASS_QUOTA_MINUTE, 50,
				T_NOON, 0.0, "retrying", T_NOON + 60 * SEC);

	/* quota_day: held until the next midnight in Beijing */
	expect_next("next quota_day at 20:00 Beijing", &l, SU_CLASS_QUOTA_DAY, 1,
				T_NOON, 0.5, "held", T_BJ_MIDNIGHT_11);
	expect_next("next quota_day a microsecond before midnight Beijing", &l,
				SU_CLASS_QUOTA_DAY, 1, T_BJ_LAST_US, 0.5, "held",
				T_BJ_MIDNIGHT_11);
	expect_next("next quota_day at midnight Beijing: the next one", &l,
				SU_CLASS_QUOTA_DAY, 1, T_BJ_MIDNIGHT_11, 0.5, "held",
				T_BJ_MIDNIGHT_12);
	expect_next("next quota_day a microsecond after midnight Beijing", &l,
				SU_CLASS_QUOTA_DAY, 1, T_BJ_MIDNIGHT_11 + 1, 0.5, "held",
				T_BJ_MIDNIGHT_12);
	expect_next("next quota_day a microsecond before midnight UTC", &l,
				SU_CLASS_QUOTA_DAY, 1, T_UTC_LAST_US, 0.5, "held",
				T_BJ_MIDNIGHT_12);
	expect_next("next quota_day at midnight UTC", &l, SU_CLASS_QUOTA_DAY, 1,
				T_UTC_MIDNIGHT_11, 0.5, "held", T_BJ_MIDNIGHT_12);
	expect_next("next quota_day over a leap day", &l, SU_CLASS_QUOTA_DAY, 1,
				T_LEAP_EVE, 0.5, "held", T_LEAP_NEXT);
	expect_next("next quota_day on New Year in Beijing, not yet in UTC", &l,
				SU_CLASS_QUOTA_DAY, 1, T_YEAR_UTC_EVE, 0.5, "held", T_YEAR_NEXT);
	expect_next("next quota_day at the epoch", &l, SU_CLASS_QUOTA_DAY, 1, 0,
				0.5, "held", T_EPOCH_NEXT);
	expect_next("next quota_day attempt 50", &l, SU_CLASS_QUOTA_DAY, 50,
				T_NOON, 0.5, "held", T_BJ_MIDNIGHT_11);

	/* config: held for config_retry_s, without a limit of attempts */
	expect_next("next config", &l, SU_CLASS_CONFIG, 1, T_NOON, 0.5, "held",
				T_NOON + 600 * SEC);
	expect_next("next config attempt 50", &l, SU_CLASS_CONFIG, 50, T_NOON, 0.5,
				"held", T_NOON + 600 * SEC);
	l.config_retry_s = 86400 * 7;	/* the GUC's largest: past int's range in
									 * microseconds */
	expect_next("next config a week", &l, SU_CLASS_CONFIG, 1, T_NOON, 0.5,
				"held", T_NOON + INT64_C(604800) * SEC);
	l = defaults;

	/* data, unknown: rejected */
	expect_next("next data", &l, SU_CLASS_DATA, 1, T_NOON, 0.5, "rejected", 0);
	expect_next("next data attempt 10 (max)", &l, SU_CLASS_DATA, 10, T_NOON, 0.5,
				"rejected", 0);
	expect_next("next unknown", &l, SU_CLASS_UNKNOWN, 1, T_NOON, 0.5,
				"rejected", 0);
	expect_next("next class outside the enum", &l, (SuErrClass) 99, 1, T_NOON,
				0.5, "rejected", 0);

	/* max_attempts 1: the first failure is the last */
	l.max_attempts = 1;
	expect_next("next retry, max_attempts 1", &l, SU_CLASS_RETRY, 1, T_NOON,
				0.0, "dead", 0);
	expect_next("next refresh_token, max_attempts 1", &l,
				SU_CLASS_REFRESH_TOKEN, 1, T_NOON, 0.0, "dead", 0);
	l.max_attempts = 2;
	expect_next("next retry, max_attempts 2, attempt 1", &l, SU_CLASS_RETRY, 1,
				T_NOON, 0.0, "retrying", T_NOON + 500 * MSEC);
}

static void
test_verify_next(void)
{
	SuRetryLimits l = defaults;

	expect_i64("verify ok", su_retry_verify_next(&l, SU_CLASS_OK, 1, T_NOON, 0.5), 0);

	/* quotas and config: as an upload, whatever the attempt */
	expect_i64("verify quota_minute",
			   su_retry_verify_next(&l, SU_CLASS_QUOTA_MINUTE, 1, T_NOON, 0.5),
			   T_NOON + 60 * SEC);
	expect_i64("verify quota_minute attempt 10 (max)",
			   su_retry_verify_next(&l, SU_CLASS_QUOTA_MINUTE, 10, T_NOON, 0.5),
			   T_NOON + 60 * SEC);
	expect_i64("verify quota_day",
			   su_retry_verify_next(&l, SU_CLASS_QUOTA_DAY, 1, T_UTC_MIDNIGHT_11, 0.5),
			   T_BJ_MIDNIGHT_12);
	expect_i64("verify quota_day attempt 12 (past max)",
			   su_retry_verify_next(&l, SU_CLASS_QUOTA_DAY, 12, T_BJ_LAST_US, 0.5),
			   T_BJ_MIDNIGHT_11);
	expect_i64("verify config",
			   su_retry_verify_next(&l, SU_CLASS_CONFIG, 1, T_NOON, 0.5),
			   T_NOON + 600 * SEC);
	expect_i64("verify config attempt 10 (max)",
			   su_retry_verify_next(&l, SU_CLASS_CONFIG, 10, T_NOON, 0.5),
			   T_NOON + 600 * SEC);

	/* refresh_token: at once, until max_attempts */
	expect_i64("verify refresh_token attempt 1",
			   su_retry_verify_next(&l, SU_CLASS_REFRESH_TOKEN, 1, T_NOON, 0.5),
			   T_NOON);
	expect_i64("verify refresh_token attempt 10 (max)",
			   su_retry_verify_next(&l, SU_CLASS_REFRESH_TOKEN, 10, T_NOON, 0.5), 0);

	/* retry, data, unknown: backoff, until max_attempts */
	expect_i64("verify retry attempt 1, jitter 0",
			   su_retry_verify_next(&l, SU_CLASS_RETRY, 1, T_NOON, 0.0),
			   T_NOON + 500 * MSEC);
	expect_i64("verify retry attempt 1, jitter 1 - 2^-52",
			   su_retry_verify_next(&l, SU_CLASS_RETRY, 1, T_NOON, JMAX),
			   T_NOON + 999999);
	expect_i64("verify retry attempt 9",
			   su_retry_verify_next(&l, SU_CLASS_RETRY, 9, T_NOON, 0.0),
			   T_NOON + 128000 * MSEC);
	expect_i64("verify retry attempt 10 (max)",
			   su_retry_verify_next(&l, SU_CLASS_RETRY, 10, T_NOON, 0.0), 0);
	expect_i64("verify retry attempt 11 (past max)",
			   su_retry_verify_next(&l, SU_CLASS_RETRY, 11, T_NOON, 0.0), 0);
	expect_i64("verify data attempt 1, jitter 0.5",
			   su_retry_verify_next(&l, SU_CLASS_DATA, 1, T_NOON, 0.5),
			   T_NOON + 750 * MSEC);
	expect_i64("verify data attempt 10 (max)",
			   su_retry_verify_next(&l, SU_CLASS_DATA, 10, T_NOON, 0.5), 0);
	expect_i64("verify unknown attempt 2, jitter 0",
			   su_retry_verify_next(&l, SU_CLASS_UNKNOWN, 2, T_NOON, 0.0),
			   T_NOON + 1000 * MSEC);
	expect_i64("verify unknown attempt 10 (max)",
			   su_retry_verify_next(&l, SU_CLASS_UNKNOWN, 10, T_NOON, 0.0), 0);
	expect_i64("verify retry attempt 11 capped",
			   su_retry_verify_next(&(SuRetryLimits) {.max_attempts = 20,
					   .retry_base_ms = 1000, .retry_max_ms = 600000},
					   SU_CLASS_RETRY, 11, T_NOON, 0.0),
			   T_NOON + 300000 * MSEC);

	/* the first verify: verify_delay_s after the acceptance, 0 for none */
	expect_i64("verify first after 60 s",
			   su_retry_verify_first(&l, T_NOON), T_NOON + 60 * SEC);
	l.verify_delay_s = 86400 * 7;
	expect_i64("verify first after a week",
			   su_retry_verify_first(&l, T_NOON), T_NOON + INT64_C(604800) * SEC);
	l.verify_delay_s = 0;
	expect_i64("verify first with verify_delay 0",
			   su_retry_verify_first(&l, T_NOON), 0);
}

static void
test_holds(void)
{
	static const struct
	{
		SuErrClass	cls;
		bool		holds;
		const char *hint;
	}			classes[] = {
		{SU_CLASS_OK, false, NULL},
		{SU_CLASS_RETRY, false, NULL},
		{SU_CLASS_REFRESH_TOKEN, false, NULL},
		{SU_CLASS_QUOTA_MINUTE, false, NULL},
		{SU_CLASS_QUOTA_DAY, true,
		"The daily quota is used up; uploads go on at midnight, Beijing time."},
		{SU_CLASS_CONFIG, true,
		"Check the appid's permission for uploadShoppingInfo and its credentials."},
		{SU_CLASS_DATA, false, NULL},
		{SU_CLASS_UNKNOWN, false, NULL},
		{(SuErrClass) 99, false, NULL},
	};

	for (size_t k = 0; k < sizeof(classes) / sizeof(classes[0]); k++)
	{
		char		name[128];

		snprintf(name, sizeof(name), "holds appid, class %s",
				 su_retry_class_name(classes[k].cls));
		expect_bool(name, su_retry_holds_appid(classes[k].cls), classes[k].holds);
		snprintf(name, sizeof(name), "hold hint, class %s",
				 su_retry_class_name(classes[k].cls));
		expect_str(name, su_retry_hold_hint(classes[k].cls, 0), classes[k].hint);
	}
	expect_bool("a local configuration problem's hold hint names the settings",
				strstr(su_retry_hold_hint(SU_CLASS_CONFIG, SU_ERR_LOCAL_CONFIG),
					   "allow_insecure_http") != NULL, true);
	expect_i64("a local configuration problem is of class config",
			   su_retry_classify(SU_ERR_LOCAL_CONFIG), SU_CLASS_CONFIG);
	expect_i64("a token failure of local configuration is of class config",
			   su_retry_token_failure_class(SU_ERR_LOCAL_CONFIG), SU_CLASS_CONFIG);
}

static void
test_token_backoff(void)
{
	/* failures: the failed fetches in a row before this one */
	static const struct
	{
		int			failures;
		int64_t		usecs;
	}			steps[] = {
		{0, 1 * SEC},			/* the first failure */
		{1, 2 * SEC},
		{2, 4 * SEC},
		{3, 8 * SEC},
		{7, 128 * SEC},
		{8, 256 * SEC},			/* the last doubling */
		{9, 256 * SEC},
		{30, 256 * SEC},
		{63, 256 * SEC},
		{64, 256 * SEC},
		{INT_MAX, 256 * SEC},
		{-1, 1 * SEC},			/* never today */
	};
	int64_t		longest = 0;

	for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++)
	{
		char		name[64];

		snprintf(name, sizeof(name), "token backoff after %d failures",
				 steps[k].failures);
		expect_i64(name, su_retry_token_backoff_usecs(steps[k].failures),
				   steps[k].usecs);
	}

	/* growth: never shorter than the wait before, never past 300 s */
	for (int f = 0; f <= 100; f++)
	{
		int64_t		w = su_retry_token_backoff_usecs(f);

		if (w < longest || w > 300 * SEC)
		{
			char		name[64];

			snprintf(name, sizeof(name), "token backoff after %d failures", f);
			pass_or_fail(0, name, "shorter than the one before, or past 300 s");
			return;
		}
		longest = w;
	}
	expect_i64("token backoff, longest over 0..100 failures", longest, 256 * SEC);
}

static void
test_classes(void)
{
	static const struct
	{
		int			errcode;
		SuErrClass	cls;
		const char *name;
	}			codes[] = {
		{0, SU_CLASS_OK, "ok"},
		{-1, SU_CLASS_RETRY, "retry"},
		{40001, SU_CLASS_REFRESH_TOKEN, "refresh_token"},
		{40014, SU_CLASS_REFRESH_TOKEN, "refresh_token"},
		{42001, SU_CLASS_REFRESH_TOKEN, "refresh_token"},
		{45011, SU_CLASS_QUOTA_MINUTE, "quota_minute"},
		{45009, SU_CLASS_QUOTA_DAY, "quota_day"},
		{48001, SU_CLASS_CONFIG, "config"},
		{61007, SU_CLASS_CONFIG, "config"},
		{40013, SU_CLASS_CONFIG, "config"},
		/* two configuration problems inside the 2684xxxxx range */
		{268485184, SU_CLASS_CONFIG, "config"},
		{268456389, SU_CLASS_CONFIG, "config"},
		{40003, SU_CLASS_DATA, "data"},
		{47001, SU_CLASS_DATA, "data"},
		{44002, SU_CLASS_DATA, "data"},
		{45002, SU_CLASS_DATA, "data"},
		/* the 2684xxxxx range: its bounds, named codes, and unnamed ones */
		{268435461, SU_CLASS_DATA, "data"},
		{268485191, SU_CLASS_DATA, "data"},
		{268485216, SU_CLASS_DATA, "data"},
		{268485226, SU_CLASS_DATA, "data"},
		{268459786, SU_CLASS_DATA, "data"},
		{268400000, SU_CLASS_DATA, "data"},
		{268499999, SU_CLASS_DATA, "data"},
		{268412345, SU_CLASS_DATA, "data"},
		{268399999, SU_CLASS_UNKNOWN, "unknown"},
		{268500000, SU_CLASS_UNKNOWN, "unknown"},
		/* unknown codes */
		{12345, SU_CLASS_UNKNOWN, "unknown"},
		{1, SU_CLASS_UNKNOWN, "unknown"},
		{-2, SU_CLASS_CONFIG, "config"},	/* SU_ERR_LOCAL_CONFIG */
		{-3, SU_CLASS_UNKNOWN, "unknown"},
		{45010, SU_CLASS_UNKNOWN, "unknown"},
		{INT_MAX, SU_CLASS_UNKNOWN, "unknown"},
		{INT_MIN, SU_CLASS_UNKNOWN, "unknown"},
	};

	for (size_t k = 0; k < sizeof(codes) / sizeof(codes[0]); k++)
	{
		char		name[64];
		SuErrClass	cls = su_retry_classify(codes[k].errcode);

		snprintf(name, sizeof(name), "classify %d", codes[k].errcode);
		expect_i64(name, (int64_t) cls, (int64_t) codes[k].cls);
		snprintf(name, sizeof(name), "class name of %d", codes[k].errcode);
		expect_str(name, su_retry_class_name(cls), codes[k].name);
	}
	expect_str("class name outside the enum",
			   su_retry_class_name((SuErrClass) 99), "unknown");

	/* a failure to get a token */
	expect_i64("token failure busy",
			   su_retry_token_failure_class(-1), SU_CLASS_RETRY);
	expect_i64("token failure invalid appid",
			   su_retry_token_failure_class(40013), SU_CLASS_CONFIG);
	expect_i64("token failure invalid credential",
			   su_retry_token_failure_class(40001), SU_CLASS_CONFIG);
	expect_i64("token failure daily quota",
			   su_retry_token_failure_class(45009), SU_CLASS_QUOTA_DAY);
	expect_i64("token failure minute quota",
			   su_retry_token_failure_class(45011), SU_CLASS_QUOTA_MINUTE);
	expect_i64("token failure IP not allowed",
			   su_retry_token_failure_class(40164), SU_CLASS_CONFIG);
	expect_i64("token failure invalid appsecret",
			   su_retry_token_failure_class(40125), SU_CLASS_CONFIG);
	expect_i64("token failure unknown code",
			   su_retry_token_failure_class(12345), SU_CLASS_CONFIG);
	expect_i64("token failure errcode 0",
			   su_retry_token_failure_class(0), SU_CLASS_CONFIG);
}

static void
test_constants(void)
{
	/* the values of today's code */
	expect_i64("SU_QUOTA_MINUTE_WAIT_USECS", SU_QUOTA_MINUTE_WAIT_USECS, 60 * SEC);
	expect_i64("SU_WAITING_RECHECK_S", SU_WAITING_RECHECK_S, 300);
	expect_i64("SU_DEFERRED_RECHECK_MS", SU_DEFERRED_RECHECK_MS, 1000);
	expect_i64("SU_TOKEN_MARGIN_USECS", SU_TOKEN_MARGIN_USECS, 300 * SEC);
	expect_i64("SU_FORCE_PER_DAY", SU_FORCE_PER_DAY, 20);
	expect_i64("SU_FORCE_GAP_USECS", SU_FORCE_GAP_USECS, 30 * SEC);
	expect_i64("SU_CLOCK_STEP_USECS", SU_CLOCK_STEP_USECS, 1 * SEC);
	expect_i64("SU_AUDIT_TRIM_BUDGET_MS", SU_AUDIT_TRIM_BUDGET_MS, 20);
	expect_i64("SU_RECORD_RETRY_MS", SU_RECORD_RETRY_MS, 20);
	expect_i64("SU_ERROR_PAUSE_MS", SU_ERROR_PAUSE_MS, 1000);
	expect_i64("SU_LOCKED_RETRY_MS", SU_LOCKED_RETRY_MS, 100);
	expect_i64("SU_NEXT_DUE_READ_MS", SU_NEXT_DUE_READ_MS, 250);
	expect_i64("SU_BEIJING_OFFSET_USECS", SU_BEIJING_OFFSET_USECS,
			   INT64_C(28800000000));
	expect_i64("SU_TOKEN_BACKOFF_USECS", SU_TOKEN_BACKOFF_USECS, 1 * SEC);
	expect_i64("SU_TOKEN_BACKOFF_SHIFT_MAX", SU_TOKEN_BACKOFF_SHIFT_MAX, 8);
	expect_i64("SU_TOKEN_BACKOFF_MAX_USECS", SU_TOKEN_BACKOFF_MAX_USECS, 300 * SEC);

	/* today's literals of worker.c and sync_call.c, named */
	expect_i64("SU_AUDIT_TRIM_IDLE_MS", SU_AUDIT_TRIM_IDLE_MS, 60000);
	expect_i64("SU_WAIT_MAX_MS", SU_WAIT_MAX_MS, 60000);
	expect_i64("SU_LOOK_ALL_MS", SU_LOOK_ALL_MS, 60000);
	expect_i64("SU_RATE_LIMITED_MS", SU_RATE_LIMITED_MS, 5);
	expect_i64("SU_LAUNCHER_RESTART_MS", SU_LAUNCHER_RESTART_MS, 1000);
	expect_i64("SU_LAUNCHER_START_RETRY_MS", SU_LAUNCHER_START_RETRY_MS, 5000);
	expect_i64("SU_LAUNCHER_SCAN_MS", SU_LAUNCHER_SCAN_MS, 5000);
	expect_i64("SU_LAUNCHER_RESCAN_MS", SU_LAUNCHER_RESCAN_MS, 1000);
	expect_i64("SU_LAUNCHER_MAX_LOOKS", SU_LAUNCHER_MAX_LOOKS, 2);
	expect_i64("SU_LAUNCHER_KEEP_OUT_MS", SU_LAUNCHER_KEEP_OUT_MS, 10000);
	expect_i64("SU_LAUNCHER_ATTACH_MS", SU_LAUNCHER_ATTACH_MS, 60000);
	expect_i64("SU_CREDENTIALS_RECHECK_MS", SU_CREDENTIALS_RECHECK_MS, 60000);
	expect_i64("SU_SLOT_WAIT_MS", SU_SLOT_WAIT_MS, 5000);
	expect_i64("SU_SLOT_RETRY_MS", SU_SLOT_RETRY_MS, 10);

	/* Beijing's day: days since 2000-01-01 there */
	expect_i64("beijing day at the epoch (08:00 there)", su_beijing_day(INT64_C(0)), 0);
	expect_i64("beijing day at 20:00 there on 2024-03-10",
			   su_beijing_day(T_NOON), 8835);
	expect_i64("beijing day a microsecond before midnight there",
			   su_beijing_day(T_BJ_LAST_US), 8835);
	expect_i64("beijing day at midnight there (16:00 UTC)",
			   su_beijing_day(T_BJ_MIDNIGHT_11), 8836);
	expect_i64("beijing day at midnight UTC",
			   su_beijing_day(T_UTC_MIDNIGHT_11), 8836);
	expect_i64("beijing day on 2025-01-01 there, 2024-12-31 in UTC",
			   su_beijing_day(T_YEAR_UTC_EVE), 9132);
}

/* every code of the token endpoint the docs name has a hint; others none */
static void
test_token_hints(void)
{
	static const int named[] = {-1, 40164, 40013, 40125, 40001, 42001, 45009, 48001};

	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++)
	{
		char		what[64];

		snprintf(what, sizeof(what), "token hint for %d", named[i]);
		expect_bool(what, su_retry_token_hint(named[i]) != NULL, true);
	}
	expect_bool("no token hint for 0", su_retry_token_hint(0) != NULL, false);
	expect_bool("no token hint for an unknown code",
				su_retry_token_hint(12345) != NULL, false);
	expect_bool("the IP hint names the allow-list",
				strstr(su_retry_token_hint(40164), "allow-list") != NULL, true);
	expect_bool("the secret hint names the secret file",
				strstr(su_retry_token_hint(40125), "secret_file") != NULL, true);
}

/* su_retry_trade_next: the state's name and *next */
static void
expect_trade_next(const char *what, int errcode, SuErrClass cls, int attempt,
				  int64_t now, int64_t since, double jitter,
				  const char *want_state, int64_t want_next)
{
	char		name[256];
	int64_t		next = -1;
	SuNextState state = su_retry_trade_next(&defaults, cls, errcode, attempt,
											now, since, jitter, &next);

	snprintf(name, sizeof(name), "%s: state", what);
	expect_str(name, su_retry_state_name(state), want_state);
	snprintf(name, sizeof(name), "%s: next", what);
	expect_i64(name, next, want_next);
}

/*
 * The order shipping management service: its codes, the wait for a payment
 * WeChat has not found yet (10060001), the receipt reminder's codes and the
 * get_order schedule.
 */
static void
test_trade(void)
{
	/* the upload's codes */
	expect_i64("trade: 0 ok", su_retry_trade_classify(0), SU_CLASS_OK);
	expect_i64("trade: 10060023 unchanged is accepted", su_retry_trade_classify(10060023), SU_CLASS_OK);
	expect_i64("trade: 10060001 retried", su_retry_trade_classify(10060001), SU_CLASS_RETRY);
	expect_i64("trade: 10060012 retried", su_retry_trade_classify(10060012), SU_CLASS_RETRY);
	expect_i64("trade: 10060019 retried", su_retry_trade_classify(10060019), SU_CLASS_RETRY);
	expect_i64("trade: 10060002 final", su_retry_trade_classify(10060002), SU_CLASS_DATA);
	expect_i64("trade: 10060003 final", su_retry_trade_classify(10060003), SU_CLASS_DATA);
	expect_i64("trade: 10060004 final", su_retry_trade_classify(10060004), SU_CLASS_DATA);
	expect_i64("trade: 48001 rejects, holds no appid", su_retry_trade_classify(48001), SU_CLASS_DATA);
	expect_i64("trade: -3 (an unknown delivery company, ours) rejects", su_retry_trade_classify(-3),
			   SU_CLASS_DATA);
	expect_bool("trade: 48001's class holds no appid",
				su_retry_holds_appid(su_retry_trade_classify(48001)), false);
	expect_i64("trade: -1 as elsewhere", su_retry_trade_classify(-1), SU_CLASS_RETRY);
	expect_i64("trade: 42001 as elsewhere", su_retry_trade_classify(42001), SU_CLASS_REFRESH_TOKEN);
	expect_i64("trade: 45009 as elsewhere", su_retry_trade_classify(45009), SU_CLASS_QUOTA_DAY);
	expect_i64("trade: 10060005 (a data code) as elsewhere: unknown", su_retry_trade_classify(10060005),
			   SU_CLASS_UNKNOWN);
	/* the general reading knows none of them */
	expect_i64("general: 10060023 is unknown", su_retry_classify(10060023), SU_CLASS_UNKNOWN);

	/* the receipt reminder */
	expect_i64("confirm: 10060030 done", su_retry_trade_confirm_classify(10060030), SU_CLASS_OK);
	expect_i64("confirm: 10060028 final", su_retry_trade_confirm_classify(10060028), SU_CLASS_DATA);
	expect_i64("confirm: 10060029 final", su_retry_trade_confirm_classify(10060029), SU_CLASS_DATA);
	expect_i64("confirm: 10060032 final", su_retry_trade_confirm_classify(10060032), SU_CLASS_DATA);
	expect_i64("confirm: 10060001 retried", su_retry_trade_confirm_classify(10060001), SU_CLASS_RETRY);

	expect_i64("confirm: a final refusal is not tried again",
			   su_retry_trade_confirm_next(&defaults, SU_CLASS_DATA, 1, T_NOON, 0.0), 0);
	expect_i64("confirm: -1 is, with backoff",
			   su_retry_trade_confirm_next(&defaults, SU_CLASS_RETRY, 1, T_NOON, 0.0),
			   T_NOON + 500 * MSEC);
	expect_i64("confirm: done", su_retry_trade_confirm_next(&defaults, SU_CLASS_OK, 1, T_NOON, 0.0), 0);

	/* 10060001: 5 s, 10 s, 20 s, 40 s, then 60 s apart (jitter x0.5 .. x1) */
	expect_trade_next("payment: first, no jitter", 10060001, SU_CLASS_RETRY, 1,
					  T_NOON, 0, 0.0, "waiting_for_payment", T_NOON + 2500 * MSEC);
	expect_trade_next("payment: first, most jitter", 10060001, SU_CLASS_RETRY, 1,
					  T_NOON, 0, JMAX, "waiting_for_payment", T_NOON + 5 * SEC - 1);
	expect_trade_next("payment: third", 10060001, SU_CLASS_RETRY, 3,
					  T_NOON, T_NOON - 20 * SEC, 0.0, "waiting_for_payment", T_NOON + 10 * SEC);
	expect_trade_next("payment: fifth, capped at 60 s", 10060001, SU_CLASS_RETRY, 5,
					  T_NOON, T_NOON - 100 * SEC, 0.0, "waiting_for_payment", T_NOON + 30 * SEC);
	expect_trade_next("payment: the 50th, still capped", 10060001, SU_CLASS_RETRY, 50,
					  T_NOON, T_NOON - 100 * SEC, 0.0, "waiting_for_payment", T_NOON + 30 * SEC);
	/* the wait ends payment_wait (600 s) after the first 10060001 */
	expect_trade_next("payment: one last look when the wait ends", 10060001, SU_CLASS_RETRY, 9,
					  T_NOON, T_NOON - 590 * SEC, 0.0, "waiting_for_payment", T_NOON + 10 * SEC);
	expect_trade_next("payment: the wait is over", 10060001, SU_CLASS_RETRY, 10,
					  T_NOON, T_NOON - 600 * SEC, 0.0, "rejected", 0);
	expect_trade_next("payment: attempts do not end the wait", 10060001, SU_CLASS_RETRY, 99,
					  T_NOON, T_NOON - 60 * SEC, 0.0, "waiting_for_payment", T_NOON + 30 * SEC);
	expect_trade_next("payment: a wait start in the future is now", 10060001, SU_CLASS_RETRY, 1,
					  T_NOON, T_NOON + 3600 * SEC, 0.0, "waiting_for_payment", T_NOON + 2500 * MSEC);
	/* any other answer as su_retry_next() */
	expect_trade_next("trade: accepted", 0, SU_CLASS_OK, 1, T_NOON, T_NOON - SEC, 0.0,
					  "uploaded", 0);
	expect_trade_next("trade: -1 backs off as elsewhere", -1, SU_CLASS_RETRY, 1, T_NOON, 0, 0.0,
					  "retrying", T_NOON + 500 * MSEC);
	expect_trade_next("trade: 10060003 rejected", 10060003, SU_CLASS_DATA, 1, T_NOON, 0, 0.0,
					  "rejected", 0);

	/* get_order: after an answer, reconcile_interval (6 h) later */
	expect_i64("check: after an answer", su_retry_trade_check_next(&defaults, SU_CLASS_OK, 1, T_NOON, 0.0),
			   T_NOON + INT64_C(21600) * SEC);
	expect_i64("check: a failure sooner, with backoff",
			   su_retry_trade_check_next(&defaults, SU_CLASS_RETRY, 1, T_NOON, 0.0),
			   T_NOON + 500 * MSEC);
	expect_i64("check: attempts used up, the next interval",
			   su_retry_trade_check_next(&defaults, SU_CLASS_RETRY, 10, T_NOON, 0.0),
			   T_NOON + INT64_C(21600) * SEC);
}

void
run_retry_tests(void)
{
	test_trade();
	test_state_names();
	test_backoff();
	test_next();
	test_verify_next();
	test_holds();
	test_token_backoff();
	test_classes();
	test_token_hints();
	test_constants();
}
