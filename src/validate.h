/*-------------------------------------------------------------------------
 *
 * validate.h
 *		Checks an uploadShoppingInfo payload against every rule of
 *		docs/upload-api.md, naming WeChat's errcode for each
 *		violation.
 *
 * Pure: no I/O, no globals, no PostgreSQL headers; only libc and json-c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_VALIDATE_H
#define SU_VALIDATE_H

#include <stdbool.h>

#include <json-c/json.h>

/*
 * Called once per violation.  field is the JSON path of the offending value
 * ("order_list[0].item_list[1].name"; "" for the payload itself), errmsg a
 * plain English sentence.  Both live in the validator's local buffers: copy
 * them if they must outlive the call.
 */
typedef void (*su_violation_cb) (void *arg, int errcode, const char *field,
								 const char *errmsg);

/*
 * Checks payload against every rule of the spec; calls cb once per violation,
 * in document order; returns the number of violations.  appid may be NULL
 * (then the 268486029 check is skipped).  cb may be NULL to only count.
 */
extern int	su_validate_payload(struct json_object *payload, const char *appid,
								su_violation_cb cb, void *arg);

/*
 * The same, asking stop(stop_arg) between list entries: when it answers
 * true the walk ends there (what was found is reported).  The work is
 * bounded whatever the payload: lists are walked up to their API limit,
 * repeats are found by sorting.
 */
typedef bool (*su_stop_cb) (void *arg);
extern int	su_validate_payload_ex(struct json_object *payload, const char *appid,
								   su_violation_cb cb, void *arg,
								   su_stop_cb stop, void *stop_arg);

/* "a string", "an integer", "null", ...: a JSON value's type, for messages */
extern const char *su_json_type_phrase(struct json_object *v);

#endif							/* SU_VALIDATE_H */
