/*-------------------------------------------------------------------------
 *
 * unit.h
 *		What the unit tests of the validators and of the retry policy share
 *		(test_validate.c defines it): expected and collected violations,
 *		patches of a JSON document, the counts of passed and failed cases.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_UNIT_H
#define SU_UNIT_H

#include <json-c/json.h>

#define MAX_GOT		64
#define PARAM	WX_ERR_PARAM
#define NONE	{{0}}			/* Case.expect: no violation */

typedef struct Expect
{
	int			errcode;		/* 0 ends the list */
	const char *field;
	const char *msg;			/* NULL: not compared */
} Expect;

/*
 * Sets (json != NULL) or deletes the value at path: "a.b[1].c".  A value
 * is JSON text or a generated string "~PREFIX|COUNT|UNIT": PREFIX followed
 * by COUNT copies of UNIT.
 */
typedef struct Patch
{
	const char *path;			/* NULL ends the list */
	const char *json;			/* NULL: delete */
} Patch;

typedef struct Got
{
	int			n;
	int			errcode[MAX_GOT];
	char		field[MAX_GOT][256];
	char		msg[MAX_GOT][1024];
} Got;

extern int	passed;
extern int	failed;

/* a su_violation_cb that appends to a Got */
extern void collect(void *arg, int errcode, const char *field,
					const char *errmsg);
/* 1 if applied, 0 (and a message) for a bad patch */
extern int	apply_patch(struct json_object *root, const Patch *p);
extern void print_got(const Got *got);
/* what was reported equals expect (and the count returned): counted */
extern void compare_got(const char *suite, const char *name, int ret,
						const Got *got, const Expect *expect);

/* test_validate_shipping.c */
extern void run_shipping_tests(void);

/* test_validate_trade.c */
extern void run_trade_tests(void);

/* test_retry.c */
extern void run_retry_tests(void);

#endif							/* SU_UNIT_H */
