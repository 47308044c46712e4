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

typedef struct SuUpload
{
	/* what is sent */
	int64		order_id;
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

#endif							/* SU_UPLOAD_H */
