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

/* upload_shopping_info(): one order, now, in this backend. */
extern void su_upload_sync(int64 order_id, SuUpload *u);

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

/* verify_shopping_info(): one verify, now, in this backend. */
extern void su_verify_sync(int64 order_id, SuUpload *u);

/* upload_shipping_info(): one order's shipping information, now. */
extern void su_shipping_sync(int64 order_id, SuUpload *u);

#endif							/* SU_UPLOAD_H */
