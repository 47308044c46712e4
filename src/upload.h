/*-------------------------------------------------------------------------
 *
 * upload.h
 *		One attempt of any kind, shared by the calls by hand (call.c) and
 *		the worker: build and validate its body, set its request up, read
 *		the answer.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_UPLOAD_H
#define SU_UPLOAD_H

#include "types.h"

/*
 * Builds and validates the payloads of n orders (us[i]->order_id) at once,
 * us[i]'s in cxts[i] (NULL: the current context); SPI connected.  ok[i] is
 * false, with errcode/errmsg/field set and nothing to send, when the order
 * breaks a rule, or with gone set when it does not exist (any more).
 */
extern void su_upload_prepare(int n, SuUpload **us, const TimestampTz *upload_times,
							  MemoryContext *cxts, bool *ok);

/*
 * The verify bodies of n orders: the key and payer of their accepted upload,
 * as su_upload_prepare() for uploads (upload_times unused).
 */
extern void su_verify_prepare(int n, SuUpload **us, const TimestampTz *upload_times,
							  MemoryContext *cxts, bool *ok);

/*
 * The shipping bodies of n orders, validated against every rule and the
 * order's items, as su_upload_prepare().
 */
extern void su_shipping_prepare(int n, SuUpload **us,
								const TimestampTz *upload_times,
								MemoryContext *cxts, bool *ok);

/*
 * The order shipping management service's bodies of n payments, as
 * su_upload_prepare(); one that is not to be sent is deferred (its
 * next_state needs_reship, or uploaded when WeChat has it unchanged), or
 * refused here with 10060003 once the re-ship was used.
 */
extern void su_trade_prepare(int n, SuUpload **us, const TimestampTz *upload_times,
							 MemoryContext *cxts, bool *ok);

/*
 * The bodies of get_order (the answer's order kept in result) and of
 * notify_confirm_receive (received_time: a call's given_at, else
 * shippings.received_at; refused here unless express delivery).
 */
extern void su_trade_check_prepare(int n, SuUpload **us, const TimestampTz *upload_times,
								   MemoryContext *cxts, bool *ok);
extern void su_trade_confirm_prepare(int n, SuUpload **us, const TimestampTz *upload_times,
									 MemoryContext *cxts, bool *ok);

/*
 * Sets the request up for a token, to path (the kind's, under
 * api_base_url); u->req is then ready to be started.
 */
extern void su_upload_request(SuUpload *u, const char *path, const char *token);

/*
 * Reads the finished request into errcode/errmsg/cls (WeChat's errcode as
 * classify, the kind's, reads it); releases its body.
 */
extern void su_upload_conclude(SuUpload *u, SuErrClass (*classify) (int errcode));

/* Records a failure to get a token as the attempt's outcome. */
extern void su_upload_token_failed(SuUpload *u, int errcode, const char *errmsg);

#endif							/* SU_UPLOAD_H */
