/*-------------------------------------------------------------------------
 *
 * types.h
 *		The types that many rooms share: the kinds of call, an attempt
 *		(SuUpload) and a claimed row (SuClaim).  Light: PostgreSQL's
 *		timestamp type, WeChat's errcodes and the HTTP request's plain
 *		struct, nothing more (no libcurl, no SPI, no shared memory).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_TYPES_H
#define SU_TYPES_H

#include "datatype/timestamp.h"

#include "errcodes.h"
#include "http.h"

/* The kinds of call, one per row of kindlist.h, in claim order. */
typedef enum SuKind
{
#define SU_KIND(symbol, ...) symbol,
#include "kindlist.h"
#undef SU_KIND
} SuKind;

/* how many kinds there are: one per row of kindlist.h */
enum
{
	SU_KINDS = 0
#define SU_KIND(symbol, ...) + 1
#include "kindlist.h"
#undef SU_KIND
};

/*
 * The queue's due columns: each kind of call's rows are due by one of them
 * (kindlist.h says which), and so are the wake-ups of the worker.
 */
typedef enum SuDue
{
	SU_DUE_ORDER,				/* order_state.next_attempt_at */
	SU_DUE_SHIPPING,			/* shipping_state.next_attempt_at */
	SU_DUE_VERIFY,				/* order_state.verify_due_at */
	SU_DUE_TRADE,				/* trade_state.next_attempt_at */
	SU_DUE_TRADE_CHECK,			/* trade_state.check_due_at */
	SU_DUE_TRADE_CONFIRM,		/* trade_state.confirm_due_at */
	SU_DUES
} SuDue;

/*
 * One attempt of any kind: what is sent, and what came of it.  Shared by
 * the worker and the calls by hand.
 */
typedef struct SuUpload
{
	/* what is sent */
	int64		order_id;
	SuKind		kind;
	int64		version;		/* of the order, as built */
	int			attempt;
	bool		by_hand;		/* a call by hand (audit.via "sql"), not the
								 * worker's (audit.via "worker") */
	char	   *appid;			/* merchant appid; NULL if none is known */
	char	   *upload_time;	/* as sent */
	char	   *body;			/* the payload's wire form */
	struct json_object *payload;	/* the same, as built (tracked) */
	char	   *key_body;		/* an upload's order_key and payer, as sent
								 * (JSON text): kept with the version it
								 * uploads, for its verify */
	size_t		body_len;
	TimestampTz queued_at;		/* when the version sent was queued, for the
								 * audit (0: unknown, or not a new version) */
	uint8		body_sha256[32];	/* the body's SHA-256, once body_hashed */
	bool		body_hashed;
	bool		sent;			/* false: refused before any request */
	bool		gone;			/* the order no longer exists */
	bool		deferred;		/* its row waits for another (shipping: its
								 * order's current version is not accepted
								 * in this snapshot): not sent, no attempt,
								 * looked at again shortly */
	bool		keep_result;	/* the answer's verify_result is kept */
	bool		was_accepted;	/* a call by hand: WeChat had this version
								 * before the call began */
	int			lease_attempt;	/* a call by hand: the attempts count of its
								 * lease (u->attempt grows with a retry) */
	char	   *token;			/* the access token used; never logged */
	SuHttpRequest req;

	/* what came of it */
	int			errcode;
	char	   *errmsg;
	char	   *field;			/* JSON path, for validation failures */
	long		http_status;	/* 0: no answer */
	char	   *transport_error;	/* NULL unless the transport failed */
	double		duration_ms;
	SuErrClass	cls;
	int64		audit_id;
	char	   *verify_result;	/* a verify's answer, verbatim; NULL if none */
	/* the order shipping management service's (trade_shipping) */
	bool		reship;			/* the body is the payment's one re-ship */
	bool		completes;		/* accepted, it completes the shipping */
	TimestampTz payment_wait_since; /* 10060001 first answered (0: none) */
	TimestampTz given_at;		/* a call by hand's received_at (0: none) */
	const char *result_member;	/* the answer's member kept in result */
	char	   *result;			/* ... as JSON text (NULL: none) */
	const char *next_state;		/* the state its record leads to (a static
								 * string; NULL: not recorded, or a verify) */
} SuUpload;

/* A claimed row, as the worker gets it. */
/*
 * A worker's share of the orders: those whose order_id hashes to part,
 * modulo n (n 1: every order).  See registry.c.
 */
typedef struct SuPartition
{
	int			n;
	int			part;
} SuPartition;

typedef struct SuClaim
{
	int64		order_id;
	int64		version;
	int			attempt;
	TimestampTz upload_time;
	TimestampTz queued_at;		/* when its version was queued (0: unknown) */
} SuClaim;

/* *t lowered to candidate (0: none yet) */
static inline void
su_earlier(TimestampTz *t, TimestampTz candidate)
{
	if (*t == 0 || candidate < *t)
		*t = candidate;
}

#endif							/* SU_TYPES_H */
