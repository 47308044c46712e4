/*-------------------------------------------------------------------------
 *
 * fuzz_validate.c
 *		libFuzzer harness of validate.c: the input bytes are JSON text.
 *
 * Each input is parsed with json-c three ways, and the ways must agree:
 *	- as su_json_parse() does it in the extension (the terminating NUL
 *	  included, bytes after the value refused), with an explicit depth of 64;
 *	- the same with the default tokener (depth 32): the same outcome and
 *	  value, unless it stops for depth;
 *	- incrementally, with json_tokener_parse_ex() over two chunks split at a
 *	  point chosen from the input's bytes: the same value, and the same
 *	  outcome for an object or an array (see is_scalar() for the rest).
 * An accepted value (NULL for "null" included) is then validated with appid
 * NULL and with a fixed appid.  The callback checks its arguments (field and
 * errmsg non-NULL, NUL-terminated, a path of ASCII names and indices, a
 * printable ASCII message that starts with the path, a data-class errcode)
 * and hashes them: the two runs must report the same violations but the
 * merchant-appid ones (268486029), which only the second may report; the
 * return value must be the number of calls, also with no callback; the
 * validator must not change the payload.  Finally the value is serialized
 * with json_object_to_json_string_ext() (flags chosen from the input),
 * parsed again, serialized again to the same text, and validated again to
 * the same violations.
 *
 * Everything is freed: LeakSanitizer must stay quiet.
 *
 * Build (test/fuzz/run.sh does this in a temporary directory):
 *	clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *		-Isrc $(pkg-config --cflags json-c) test/fuzz/fuzz_validate.c \
 *		src/validate.c $(pkg-config --libs json-c) -o fuzz_validate
 *
 * With -DFUZZ_HAVE_VALIDATE_EX (run.sh adds it when src/validate.h declares
 * su_validate_payload_ex) the walk is also stopped early, after a number of
 * stop() calls chosen from the input: what it reports must be a subsequence
 * of the full report (with -DFUZZ_STOP_IS_PREFIX: a prefix, as validate.h
 * words it, "the walk ends there").
 *
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "errcodes.h"
#include "retry.h"
#include "validate.h"
#include "validate_shipping.h"
#include "validate_trade.h"

#define FUZZ_DEPTH		64		/* explicit depth of the first tokener */
#define FUZZ_APPID		"wxmerchantapp" /* the merchant of sql/validate.sql */
#define FIELD_LIMIT		4096	/* longer than any sane path */
#define MSG_LEN_LIMIT	8192	/* longer than any sane message */

/* What one validation reported, as seen by the callback */
typedef struct Report
{
	int			calls;			/* callback calls */
	int			merchant;		/* of which 268486029 */
	uint64_t	hash;			/* of every call but the 268486029 ones */
	uint64_t	hash_all;		/* of every call, in order */
	uint64_t   *each;			/* the hash of each call, or NULL */
	int			each_cap;
} Report;

static void
fail(const char *fmt,...)
{
	va_list		ap;

	fputs("fuzz_validate: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

/* FNV-1a, 64 bits */
static uint64_t
fnv(uint64_t h, const void *p, size_t len)
{
	const unsigned char *s = p;
	size_t		i;

	for (i = 0; i < len; i++)
	{
		h ^= s[i];
		h *= UINT64_C(1099511628211);
	}
	return h;
}

#define FNV_INIT	UINT64_C(14695981039346656037)

/* a path: "" or name(.name|[digits])* with names of [a-z_] */
static bool
path_ok(const char *f, size_t len)
{
	size_t		i = 0;

	if (len == 0)
		return true;
	for (;;)
	{
		size_t		start = i;

		while (i < len && ((f[i] >= 'a' && f[i] <= 'z') || f[i] == '_'))
			i++;
		if (i == start)
			return false;
		while (i < len && f[i] == '[')
		{
			start = ++i;
			while (i < len && f[i] >= '0' && f[i] <= '9')
				i++;
			if (i == start || i >= len || f[i] != ']')
				return false;
			i++;
		}
		if (i == len)
			return true;
		if (f[i] != '.')
			return false;
		i++;
	}
}

static void
on_violation(void *arg, int errcode, const char *field, const char *errmsg)
{
	Report	   *r = arg;
	size_t		flen;
	size_t		mlen;
	size_t		i;

	if (r == NULL)
		fail("callback: arg is NULL");
	if (errcode == 0)
		fail("callback: errcode 0");
	if (su_retry_classify(errcode) != SU_CLASS_DATA)
		fail("callback: errcode %d is not of the data class", errcode);
	if (field == NULL || errmsg == NULL)
		fail("callback: errcode %d with field %s, errmsg %s", errcode,
			 field ? "set" : "NULL", errmsg ? "set" : "NULL");
	/* NUL-terminated within bounds (ASan watches the reads) */
	flen = strnlen(field, FIELD_LIMIT);
	mlen = strnlen(errmsg, MSG_LEN_LIMIT);
	if (flen == FIELD_LIMIT || mlen == MSG_LEN_LIMIT)
		fail("callback: field or errmsg not NUL-terminated within %d bytes",
			 FIELD_LIMIT);
	if (!path_ok(field, flen))
		fail("callback: errcode %d: field \"%s\" is not a JSON path",
			 errcode, field);
	for (i = 0; i < mlen; i++)
		if ((unsigned char) errmsg[i] < 0x20 || (unsigned char) errmsg[i] > 0x7e)
			fail("callback: errcode %d at %s: errmsg byte %zu is 0x%02x, "
				 "not printable ASCII", errcode, field, i,
				 (unsigned char) errmsg[i]);
	/* "<field> ...", or "the payload ..." for the payload itself */
	if (flen == 0 ? strncmp(errmsg, "the payload ", 12) != 0
		: (mlen <= flen || memcmp(errmsg, field, flen) != 0 ||
		   errmsg[flen] != ' '))
		fail("callback: errmsg \"%s\" does not start with field \"%s\"",
			 errmsg, field);

	r->calls++;
	r->hash_all = fnv(r->hash_all, &errcode, sizeof(errcode));
	r->hash_all = fnv(r->hash_all, field, flen + 1);
	r->hash_all = fnv(r->hash_all, errmsg, mlen + 1);
	if (r->each != NULL && r->calls <= r->each_cap)
	{
		uint64_t	h = fnv(FNV_INIT, &errcode, sizeof(errcode));

		h = fnv(h, field, flen + 1);
		r->each[r->calls - 1] = fnv(h, errmsg, mlen + 1);
	}
	if (errcode == WX_ERR_LINK_APPID_NOT_MERCHANT)
		r->merchant++;
	else
	{
		r->hash = fnv(r->hash, &errcode, sizeof(errcode));
		r->hash = fnv(r->hash, field, flen + 1);
		r->hash = fnv(r->hash, errmsg, mlen + 1);
	}
}

static void
report_init(Report *r)
{
	memset(r, 0, sizeof(*r));
	r->hash = FNV_INIT;
	r->hash_all = FNV_INIT;
}

/* a copy of obj's text, to see that validation leaves it alone */
static char *
text_of(struct json_object *obj)
{
	const char *s = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN);
	char	   *copy;

	if (s == NULL)
		fail("json_object_to_json_string_ext returned NULL");
	copy = strdup(s);
	if (copy == NULL)
		abort();
	return copy;
}

#ifdef FUZZ_HAVE_VALIDATE_EX
typedef struct Stopper
{
	int			asked;
	int			after;			/* answers false this many times, then true */
} Stopper;

static bool
stop_after(void *arg)
{
	Stopper    *s = arg;

	return ++s->asked > s->after;
}
#endif

/*
 * Validates obj (NULL: JSON null) with appid NULL into *plain and with
 * FUZZ_APPID into *merchant, checking what must hold between the two.
 */
static void
validate(struct json_object *obj, uint32_t seed, Report *plain, Report *merchant)
{
	char	   *before = text_of(obj);
	char	   *after;
	int			n;

	report_init(plain);
	n = su_validate_payload(obj, NULL, on_violation, plain);
	if (n != plain->calls)
		fail("appid NULL: returned %d, callback called %d times", n, plain->calls);
	if (plain->merchant != 0)
		fail("appid NULL: %d violations 268486029 (merchant appid)",
			 plain->merchant);
	if (su_validate_payload(obj, NULL, NULL, NULL) != n)
		fail("appid NULL: no callback, another count");

	report_init(merchant);
	n = su_validate_payload(obj, FUZZ_APPID, on_violation, merchant);
	if (n != merchant->calls)
		fail("appid " FUZZ_APPID ": returned %d, callback called %d times",
			 n, merchant->calls);
	if (merchant->calls - merchant->merchant != plain->calls ||
		merchant->hash != plain->hash)
		fail("appid " FUZZ_APPID ": %d violations (%d of 268486029), appid "
			 "NULL: %d; the others must be the same", merchant->calls,
			 merchant->merchant, plain->calls);
	if (su_validate_payload(obj, FUZZ_APPID, NULL, NULL) != n)
		fail("appid " FUZZ_APPID ": no callback, another count");

#ifdef FUZZ_HAVE_VALIDATE_EX
	{
		int			cap = merchant->calls;
		uint64_t   *all = calloc((size_t) cap + 1, sizeof(uint64_t));
		uint64_t   *part = calloc((size_t) cap + 1, sizeof(uint64_t));
		Stopper		st = {0, (int) (seed % 8)};
		Report		r;
		int			k;
		int			m;

		if (all == NULL || part == NULL)
			abort();
		report_init(&r);
		r.each = all;
		r.each_cap = cap;
		n = su_validate_payload_ex(obj, FUZZ_APPID, on_violation, &r, NULL, NULL);
		if (n != merchant->calls || r.hash_all != merchant->hash_all)
			fail("su_validate_payload_ex without stop reports differently");
		report_init(&r);
		r.each = part;
		r.each_cap = cap;
		n = su_validate_payload_ex(obj, FUZZ_APPID, on_violation, &r,
								   stop_after, &st);
		if (n != r.calls || n > cap)
			fail("stopped after %d stop() calls: %d violations (returned %d), "
				 "the full walk %d", st.after, r.calls, n, cap);
#ifdef FUZZ_STOP_IS_PREFIX
		for (k = 0; k < n; k++)
			if (part[k] != all[k])
				fail("stopped after %d stop() calls: violation %d of %d is not "
					 "violation %d of the full walk (%d)", st.after, k + 1, n,
					 k + 1, cap);
#endif
		/* in the full report's order, none made up */
		for (k = 0, m = 0; k < n; k++, m++)
		{
			while (m < cap && all[m] != part[k])
				m++;
			if (m == cap)
				fail("stopped after %d stop() calls: violation %d of %d is "
					 "not in the full walk's report, or out of order",
					 st.after, k + 1, n);
		}
		free(all);
		free(part);
	}
#else
	(void) seed;
#endif

	after = text_of(obj);
	if (strcmp(before, after) != 0)
		fail("validation changed the payload");
	free(before);
	free(after);
}

/* What a parse found */
typedef struct Parse
{
	enum json_tokener_error err;
	bool		value;			/* a value was parsed: err is success */
	bool		accepted;		/* ... and nothing follows it */
	bool		in_first;		/* split: the first chunk held the value */
	struct json_object *obj;	/* the value (NULL for JSON null, or none) */
} Parse;

static void
parse_end(struct json_tokener *tok, struct json_object *obj, size_t end,
		  size_t size, Parse *p)
{
	p->err = json_tokener_get_error(tok);
	p->in_first = false;
	p->value = p->err == json_tokener_success;
	p->accepted = p->value && end >= size;
	if (!p->value)
	{
		json_object_put(obj);
		obj = NULL;
	}
	p->obj = obj;
}

/*
 * Parses buf[0, size) (buf[size] is NUL) as su_json_parse() does: the NUL
 * included so that a bare number ends, bytes after the value refused.
 */
static void
parse_whole(struct json_tokener *tok, const char *buf, size_t size, Parse *p)
{
	struct json_object *obj = json_tokener_parse_ex(tok, buf, (int) size + 1);

	parse_end(tok, obj, json_tokener_get_parse_end(tok), size, p);
}

/* The same in two chunks: [0, split) then [split, size] */
static void
parse_split(struct json_tokener *tok, const char *buf, size_t size,
			size_t split, Parse *p)
{
	struct json_object *obj;
	size_t		end;
	bool		second;

	obj = json_tokener_parse_ex(tok, buf, (int) split);
	end = json_tokener_get_parse_end(tok);
	second = obj == NULL && json_tokener_get_error(tok) == json_tokener_continue;
	if (second)
	{
		obj = json_tokener_parse_ex(tok, buf + split, (int) (size - split) + 1);
		end = split + json_tokener_get_parse_end(tok);
	}
	parse_end(tok, obj, end, size, p);
	p->in_first = p->value && !second;
}

/*
 * Where the two ways may disagree on the outcome.  After the value, json-c
 * reads on to the end of the chunk: whitespace and comments are skipped, a
 * bad comment is an error that loses the value ("{}/").  So when the value
 * ended in the first chunk, the rest was never looked at, and only the
 * values are compared.  And after a bare number, a sign or an exponent mark
 * that cannot continue it counts as consumed when it starts the second
 * chunk ("244-" cut before the '-'), as left over when whole; whitespace
 * after a bare literal is consumed up to the end of the chunk ("\nNaN\t\n"
 * cut after the tab).  So for a value that is neither an object nor an
 * array, too, only the values are compared.
 */
static bool
is_scalar(const Parse *p)
{
	return p->value && !json_object_is_type(p->obj, json_type_object) &&
		!json_object_is_type(p->obj, json_type_array);
}

/* a and b (either may be NULL) have the same text */
static void
same_value(struct json_object *a, struct json_object *b, const char *what)
{
	char	   *ta = text_of(a);
	char	   *tb = text_of(b);

	if (strcmp(ta, tb) != 0)
		fail("%s: different values", what);
	free(ta);
	free(tb);
}

static const int flag_sets[] = {
	JSON_C_TO_STRING_PLAIN,
	JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,	/* su_json_text */
	JSON_C_TO_STRING_SPACED,
	JSON_C_TO_STRING_PRETTY,
	JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_PRETTY_TAB,
	JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOZERO,
};

/* How a value parsed again compares with the value serialized */
typedef enum Shape
{
	SAME,
	DOUBLE_TO_INT,				/* and nothing else differs */
	DIFFERENT
} Shape;

static Shape
worse(Shape a, Shape b)
{
	return a > b ? a : b;
}

/*
 * json-c reads "9E", "9e+" and "9E-" as the double 9 and keeps "9" as its
 * text, which reads back as the integer 9; "92233720368547758089E" is a
 * double whose text reads back as the integer 18446744073709551615 (json-c
 * saturates integers).  That is the one change a round trip may make: a
 * double becomes an integer.
 */
static Shape
compare(struct json_object *a, struct json_object *b)
{
	enum json_type ta = json_object_get_type(a);
	enum json_type tb = json_object_get_type(b);
	Shape		r = SAME;
	size_t		i;

	if (ta != tb)
		return ta == json_type_double && tb == json_type_int ?
			DOUBLE_TO_INT : DIFFERENT;
	switch (ta)
	{
		case json_type_null:
			return SAME;
		case json_type_boolean:
			return json_object_get_boolean(a) == json_object_get_boolean(b) ?
				SAME : DIFFERENT;
		case json_type_int:
			return json_object_get_int64(a) == json_object_get_int64(b) &&
				json_object_get_uint64(a) == json_object_get_uint64(b) ?
				SAME : DIFFERENT;
		case json_type_double:
			{
				double		x = json_object_get_double(a);
				double		y = json_object_get_double(b);

				return x == y || (x != x && y != y) ? SAME : DIFFERENT;
			}
		case json_type_string:
			return json_object_get_string_len(a) == json_object_get_string_len(b) &&
				memcmp(json_object_get_string(a), json_object_get_string(b),
					   (size_t) json_object_get_string_len(a)) == 0 ?
				SAME : DIFFERENT;
		case json_type_array:
			if (json_object_array_length(a) != json_object_array_length(b))
				return DIFFERENT;
			for (i = 0; i < json_object_array_length(a) && r != DIFFERENT; i++)
				r = worse(r, compare(json_object_array_get_idx(a, i),
									 json_object_array_get_idx(b, i)));
			return r;
		case json_type_object:
			if (json_object_object_length(a) != json_object_object_length(b))
				return DIFFERENT;
			{
				json_object_object_foreach(a, key, va)
				{
					struct json_object *vb;

					if (!json_object_object_get_ex(b, key, &vb))
						return DIFFERENT;
					r = worse(r, compare(va, vb));
					if (r == DIFFERENT)
						return r;
				}
			}
			return r;
	}
	return DIFFERENT;
}

/*
 * serialize, parse again: the same value (see compare()), serialized again to
 * the same text, validated to the same report
 */
static void
round_trip(struct json_object *obj, uint32_t seed, const Report *plain,
		   const Report *merchant)
{
	int			flags = flag_sets[seed % (sizeof(flag_sets) / sizeof(flag_sets[0]))];
	struct json_tokener *tok = json_tokener_new_ex(FUZZ_DEPTH);
	struct json_object *again;
	Parse		back;
	Shape		shape;
	const char *s;
	char	   *text;
	Report		p2;
	Report		m2;

	if (tok == NULL)
		abort();
	s = json_object_to_json_string_ext(obj, flags);
	if (s == NULL)
		fail("round trip: json_object_to_json_string_ext returned NULL");
	text = strdup(s);
	if (text == NULL)
		abort();
	parse_whole(tok, text, strlen(text), &back);
	if (!back.accepted)
		fail("round trip: flags %d: the serialized text does not parse (%s): %s",
			 flags, json_tokener_error_desc(back.err), text);
	again = back.obj;
	shape = compare(obj, again);
	if (shape == DIFFERENT)
		fail("round trip: flags %d: the value read back differs: %s", flags, text);
	s = json_object_to_json_string_ext(again, flags);
	if (s == NULL || (shape == SAME && strcmp(s, text) != 0))
		fail("round trip: flags %d: serialized again differently:\n%s\n%s",
			 flags, text, s ? s : "(NULL)");
	validate(again, seed >> 8, &p2, &m2);
	if (shape == SAME &&
		(p2.hash_all != plain->hash_all || m2.hash_all != merchant->hash_all))
		fail("round trip: the parsed-again value validates differently "
			 "(%d/%d violations, before %d/%d)", p2.calls, m2.calls,
			 plain->calls, merchant->calls);
	json_object_put(again);
	json_tokener_free(tok);
	free(text);
}

/* a su_violation_cb that counts, and wants a path and a message */
static void
count_violation(void *arg, int errcode, const char *field, const char *errmsg)
{
	(void) errcode;
	if (field == NULL || errmsg == NULL || errmsg[0] == '\0')
		fail("a shipping violation without a path or a message");
	(*(int *) arg)++;
}

/*
 * The same body as both shipping services' bodies: each validator walks
 * anything, and calls back once per violation it counts.
 */
static void
shipping_bodies(struct json_object *obj)
{
	static const char *const ids[] = {"sku-1", "SF", "YTO"};
	int			seen = 0;
	int			n;

	n = su_validate_shipping(obj, ids, 3, count_violation, &seen, NULL, NULL);
	if (n != seen)
		fail("validate_shipping returned %d, called back %d times", n, seen);
	seen = 0;
	n = su_validate_trade_shipping(obj, ids, 3, count_violation, &seen, NULL, NULL);
	if (n != seen)
		fail("validate_trade_shipping returned %d, called back %d times", n, seen);
	seen = 0;
	n = su_validate_trade_shipping(obj, NULL, 0, count_violation, &seen, NULL, NULL);
	if (n != seen)
		fail("validate_trade_shipping returned %d, called back %d times", n, seen);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_tokener *tok;
	Parse		whole;
	Parse		other;
	uint32_t	seed;
	size_t		split;
	char	   *buf;
	Report		plain;
	Report		merchant;

	if (size >= (size_t) INT32_MAX - 1)
		return 0;
	seed = (uint32_t) fnv(FNV_INIT, data, size);
	buf = malloc(size + 1);
	if (buf == NULL)
		abort();
	if (size > 0)
		memcpy(buf, data, size);
	buf[size] = '\0';

	/* 1. the explicit depth */
	tok = json_tokener_new_ex(FUZZ_DEPTH);
	if (tok == NULL)
		abort();
	parse_whole(tok, buf, size, &whole);

	/* 2. incremental, on the same tokener after a reset */
	json_tokener_reset(tok);
	split = size == 0 ? 0 : (size_t) (seed % (uint32_t) (size + 1));
	parse_split(tok, buf, size, split, &other);
	if (whole.value && other.value)
		same_value(whole.obj, other.obj, "split parse");
	if (!other.in_first && !is_scalar(&whole) && !is_scalar(&other) &&
		(whole.value != other.value || whole.accepted != other.accepted))
		fail("split at %zu: %s (%s), whole: %s (%s)", split,
			 json_tokener_error_desc(other.err),
			 other.accepted ? "accepted" : "refused",
			 json_tokener_error_desc(whole.err),
			 whole.accepted ? "accepted" : "refused");
	json_object_put(other.obj);
	json_tokener_free(tok);

	/* 3. the default tokener, as in the extension */
	tok = json_tokener_new();
	if (tok == NULL)
		abort();
	parse_whole(tok, buf, size, &other);
	/* past depth 32 the default tokener stops; before, they walk alike */
	if (other.err != json_tokener_error_depth)
	{
		if (other.err != whole.err || other.accepted != whole.accepted)
			fail("the default tokener: %s%s, depth %d: %s%s",
				 json_tokener_error_desc(other.err),
				 other.accepted ? "" : " (refused)", FUZZ_DEPTH,
				 json_tokener_error_desc(whole.err),
				 whole.accepted ? "" : " (refused)");
		if (other.value)
			same_value(whole.obj, other.obj, "default tokener");
	}
	json_object_put(other.obj);
	json_tokener_free(tok);

	if (whole.accepted)
	{
		validate(whole.obj, seed, &plain, &merchant);
		round_trip(whole.obj, seed, &plain, &merchant);
		shipping_bodies(whole.obj);
	}
	json_object_put(whole.obj);
	free(buf);
	return 0;
}
