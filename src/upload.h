/*-------------------------------------------------------------------------
 *
 * upload.h
 *		One upload attempt, end to end, shared by upload_shopping_info()
 *		and the background worker: build, validate, POST, classify, audit.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_UPLOAD_H
#define SU_UPLOAD_H

#include "datatype/timestamp.h"

#include "errcodes.h"
#include "http.h"

/*
 * What an attempt is: the order's upload (uploadShoppingInfo), a verify of
 * an accepted upload, or the order's shipping information.  Each has its
 * path, its audit.kind and its state (order_state, its verify columns,
 * shipping_state).
 */
typedef enum SuKind
{
	SU_KIND_ORDER = 0,
	SU_KIND_VERIFY,
	SU_KIND_SHIPPING
} SuKind;

#define SU_KINDS 3

/* audit.kind: "order", "verify", "shipping" */
extern const char *su_kind_name(SuKind kind);

/*
 * Locks the tables a kind's body is read from (ACCESS SHARE, as its reads
 * would), in one order for every caller.  With wait, waits for each;
 * without, false (the table's name in *blocker) as soon as one is locked,
 * or wanted, in a stronger mode.
 */
extern bool su_lock_kind_tables(SuKind kind, bool wait, const char **blocker);

typedef struct SuUpload
{
	/* what is sent */
	int64		order_id;
	SuKind		kind;
	int64		version;		/* of the order, as built */
	int			attempt;
	const char *via;			/* "sql" or "worker" */
	char	   *appid;			/* merchant appid; NULL if none is known */
	char	   *upload_time;	/* as sent */
	char	   *body;			/* the payload's wire form */
	struct json_object *payload;	/* the same, as built (tracked) */
	char	   *key_body;		/* an upload's order_key and payer, as sent
								 * (JSON text): kept with the version it
								 * uploads, for its verify */
	size_t		body_len;
	bool		sent;			/* false: refused before any request */
	bool		gone;			/* the order no longer exists */
	bool		deferred;		/* shipping: its order's current version is not
								 * accepted (in this snapshot): not sent, no
								 * attempt, looked at again shortly */
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
} SuUpload;

/*
 * Builds and validates the payloads of n orders (us[i]->order_id) at once,
 * us[i]'s in cxts[i] (NULL: the current context); SPI connected.  ok[i] is
 * false, with errcode/errmsg/field set and nothing to send, when the order
 * breaks a rule, or with gone set when it does not exist (any more).
 */
extern void su_upload_prepare(int n, SuUpload **us, const TimestampTz *upload_times,
							  MemoryContext *cxts, bool *ok);

/* Sets the request up for a token; u->req is then ready to be started. */
extern void su_upload_request(SuUpload *u, const char *token);

/* Reads the finished request into errcode/errmsg/cls; releases its body. */
extern void su_upload_conclude(SuUpload *u);

/* Records a failure to get a token as the attempt's outcome. */
extern void su_upload_token_failed(SuUpload *u, int errcode, const char *errmsg);


/*
 * The verify bodies of n orders (us[i]->order_id, kind SU_KIND_VERIFY): the
 * order's key and payer, as su_upload_prepare() for uploads (followup.c).
 */
extern void su_verify_prepare(int n, SuUpload **us, MemoryContext *cxts,
							  bool *ok);

/*
 * The shipping bodies of n orders (kind SU_KIND_SHIPPING), validated
 * against every rule and the order's items, as su_upload_prepare().
 */
extern void su_shipping_prepare(int n, SuUpload **us,
								const TimestampTz *upload_times,
								MemoryContext *cxts, bool *ok);

/*
 * A call by hand (upload_shopping_info(), verify_shopping_info(),
 * upload_shipping_info()), in three steps; u and creds are allocated in the
 * current memory context, which must outlive the transactions.
 *
 * su_call_prepare(), in a transaction (SPI connected): locks the body tables
 * as a claim reads them, starts the attempt (an order's or its shipping
 * information's state becomes "uploading", leased, so that the worker leaves
 * it alone), builds and validates the body, loads the credentials.  False
 * when it was refused before sending: audited and recorded already.  Raises
 * the errors of the call (no such order, in flight, not uploaded yet).
 *
 * su_call_send(), with no transaction open: a token and the request, round
 * 0, then 1 when WeChat rejected the token.  True when this attempt is the
 * call's outcome; false when it is to be audited alone and sent again.
 *
 * su_call_record(), in a transaction (SPI connected): the attempt's audit
 * row; with final, the state it leads to (waiting for the state row).  A
 * caller may record the state in a transaction of its own instead, with
 * su_call_record_state(), so that the audit row never waits for it.
 */
struct SuCredentials;
extern bool su_call_prepare(SuKind kind, int64 order_id, SuUpload *u,
							struct SuCredentials *creds);
extern bool su_call_send(SuUpload *u, const struct SuCredentials *creds,
						 int round);
extern void su_call_record(SuUpload *u, bool final);

/* su_call_record()'s second half: the state alone (in a transaction). */
extern void su_call_record_state(SuUpload *u);

#endif							/* SU_UPLOAD_H */
