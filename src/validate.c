/*-------------------------------------------------------------------------
 *
 * validate.c
 *		Every rule of uploadShoppingInfo (docs/upload-api.md), checked before an upload.
 *
 * Each violation is reported as WeChat's errcode, the JSON path of the
 * offending value and a plain English message that starts with that path.
 * The payload is walked in a fixed order (the spec's), independent of the
 * order of keys in the JSON text, and the walk goes on after a violation so
 * that one call reports all of them.  At most one violation is reported per
 * value, plus the comparisons between values (repeats, link mismatches).
 *
 * Pure: no I/O, no globals, no PostgreSQL headers; only libc and json-c.
 * Messages live in local buffers.
 *
 * The checks the other calls of the product share (su_v_*: reporting, paths,
 * strings, objects, arrays, enums, order_key, payer, upload_time) are
 * defined here and declared in validate_internal.h.
 *
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "errcodes.h"
#include "validate.h"
#include "validate_internal.h"

/* link types, after aliases are resolved */
#define LINK_URL			1
#define LINK_MINI_PROGRAM	2

/* limits of the spec (ITEM_ID_MAX, OPENID_MAX: validate_internal.h) */
#define KEY_ID_MAX			32	/* transaction_id, mchid: bytes */
#define OUT_TRADE_NO_MIN	6	/* characters */
#define OUT_TRADE_NO_MAX	32
#define ORDER_NO_MAX		64	/* bytes */
#define NAME_MAX			256 /* characters */
#define DESCRIPTION_MAX		512 /* characters */
#define URL_MAX				1024	/* bytes */
#define APPID_MAX			32	/* bytes */
#define LINK_PATH_MAX		512 /* bytes */
#define ITEM_LIST_MAX		50
#define IMAGE_URL_MAX		3

#define WHEN_TYPE_1			" when order_number_type is 1"
#define WHEN_TYPE_2			" when order_number_type is 2"
#define WHEN_URL			" when type is URL"
#define WHEN_MINI_PROGRAM	" when type is MINI_PROGRAM"

/* between two list entries: should the walk end here? */
bool
su_v_stopping(Ctx *c)
{
	if (!c->stopped && c->stop != NULL && c->stop(c->stop_arg))
		c->stopped = true;
	return c->stopped;
}

/* An order link, as its item links are compared with it */
typedef struct LinkInfo
{
	char		path[PATH_LEN];
	int			type;			/* LINK_URL, LINK_MINI_PROGRAM; 0: unknown */
	StrVal		appid;			/* s is NULL unless valid */
} LinkInfo;

static const EnumDef order_number_type_enum = {
	1, 2, {{"MERCHANT_TRADE_NUMBER", 1}, {"WXPAY_TRADE_NUMBER", 2}, {NULL, 0}},
	WX_ERR_ORDER_KEY_MISSING, WX_ERR_ORDER_KEY_MISSING,
	"1, 2, \"MERCHANT_TRADE_NUMBER\" or \"WXPAY_TRADE_NUMBER\""
};

static const EnumDef link_type_enum = {
	1, 2, {{"URL", LINK_URL}, {"MINI_PROGRAM", LINK_MINI_PROGRAM}, {NULL, 0}},
	WX_ERR_LINK_TYPE, WX_ERR_LINK_TYPE,
	"\"URL\", \"MINI_PROGRAM\", 1 or 2"
};

static const EnumDef logistics_type_enum = {
	1, 4, {{"LOCATION_BASED_LOGISTICS", 2}, {NULL, 0}},
	WX_ERR_LOGISTICS_TYPE, WX_ERR_LOGISTICS_TYPE,
	"1, 2, 3, 4 or \"LOCATION_BASED_LOGISTICS\""
};


/* ---- reporting, paths, values ---- */

/* One violation; the message is "<field> <fmt...>" */
void
su_v_report(Ctx *c, int errcode, const char *field, const char *fmt,...)
{
	char		rest[MSG_LEN];
	char		msg[MSG_LEN + PATH_LEN];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(rest, sizeof(rest), fmt, ap);
	va_end(ap);
	snprintf(msg, sizeof(msg), "%s %s", field[0] ? field : "the payload", rest);
	c->count++;
	if (c->cb)
		c->cb(c->arg, errcode, field, msg);
}

/* dst = a followed by b, cut to PATH_LEN; dst may be a, not b */
static void
path_append(char *dst, const char *a, const char *b)
{
	size_t		la = strlen(a);
	size_t		lb = strlen(b);

	if (la > PATH_LEN - 1)
		la = PATH_LEN - 1;
	if (lb > PATH_LEN - 1 - la)
		lb = PATH_LEN - 1 - la;
	if (dst != a)
		memmove(dst, a, la);
	memcpy(dst + la, b, lb);
	dst[la + lb] = '\0';
}

/* dst = parent.key */
void
su_v_path_key(char *dst, const char *parent, const char *key)
{
	path_append(dst, parent, ".");
	path_append(dst, dst, key);
}

/* dst = parent[i] */
void
su_v_path_index(char *dst, const char *parent, size_t i)
{
	char		index[32];

	snprintf(index, sizeof(index), "[%zu]", i);
	path_append(dst, parent, index);
}

/* A member of an object; NULL when missing or JSON null */
struct json_object *
su_v_member(struct json_object *obj, const char *key)
{
	struct json_object *v = NULL;

	if (!json_object_object_get_ex(obj, key, &v))
		return NULL;
	return v;
}

const char *
su_json_type_phrase(struct json_object *v)
{
	switch (json_object_get_type(v))
	{
		case json_type_null:
			return "null";
		case json_type_boolean:
			return "a boolean";
		case json_type_double:
			return "a floating-point number";
		case json_type_int:
			return "an integer";
		case json_type_object:
			return "an object";
		case json_type_array:
			return "an array";
		case json_type_string:
			return "a string";
	}
	return "an unknown type";
}

/* Short printable ASCII, safe to quote in a message */
static bool
quotable(const char *s, size_t len)
{
	size_t		i;

	if (len > 32)
		return false;
	for (i = 0; i < len; i++)
		if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
			return false;
	return true;
}

/* A value for "got ...": integers and short strings as such, else a type */
const char *
su_v_describe_value(struct json_object *v, char *buf, size_t size)
{
	if (json_object_is_type(v, json_type_int))
	{
		int64_t		n = json_object_get_int64(v);

		if (n == INT64_MAX || n == INT64_MIN)	/* json-c saturates */
			return "an integer out of range";
		snprintf(buf, size, "%lld", (long long) n);
		return buf;
	}
	if (json_object_is_type(v, json_type_string) &&
		quotable(json_object_get_string(v),
				 (size_t) json_object_get_string_len(v)))
	{
		snprintf(buf, size, "\"%s\"", json_object_get_string(v));
		return buf;
	}
	return su_json_type_phrase(v);
}

/* Unicode code points of UTF-8 text: bytes that are not 10xxxxxx */
static size_t
count_chars(const char *s, size_t len)
{
	size_t		n = 0;
	size_t		i;

	for (i = 0; i < len; i++)
		if (((unsigned char) s[i] & 0xC0) != 0x80)
			n++;
	return n;
}

static bool
same_bytes(const StrVal *a, const StrVal *b)
{
	return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
}

/* v, a json-c string, holds exactly the bytes of w */
static bool
json_string_is_bytes(struct json_object *v, const StrVal *w)
{
	StrVal		a;

	a.s = json_object_get_string(v);
	a.len = (size_t) json_object_get_string_len(v);
	return same_bytes(&a, w);
}

static bool
json_string_is(struct json_object *v, const char *name)
{
	StrVal		w;

	w.s = name;
	w.len = strlen(name);
	return json_string_is_bytes(v, &w);
}


/* ---- generic checks ---- */

/*
 * "masked phone, last 4 digits in clear": the last four characters that are
 * digits or the mask '*' are all digits.  Separators ('-', spaces, '+')
 * are skipped: WeChat's examples include 0**2-******23-10.  Both shipping
 * services' contacts follow it.
 */
bool
su_v_contact_ok(const StrVal *v)
{
	int			clear = 0;

	for (size_t i = v->len; i > 0 && clear < 4; i--)
	{
		char		ch = v->s[i - 1];

		if (ch == '*')
			return false;
		if (ch >= '0' && ch <= '9')
			clear++;
	}
	return clear == 4;
}

/* v must be a string obeying rule; v may be NULL (reported as null) */
StrState
su_v_check_string_value(Ctx *c, struct json_object *v, const char *path,
				   const StrRule *rule, StrVal *out)
{
	size_t		n;

	out->s = NULL;
	out->len = 0;
	if (!json_object_is_type(v, json_type_string))
	{
		su_v_report(c, su_v_param(c), path, "must be a string, got %s",
			   su_json_type_phrase(v));
		return STR_BAD;
	}
	out->s = json_object_get_string(v);
	out->len = (size_t) json_object_get_string_len(v);
	if (out->len == 0)
	{
		if (rule->required)
			su_v_report(c, rule->required, path, "must not be empty%s", rule->when);
		return STR_EMPTY;
	}
	n = rule->unit == CHARS ? count_chars(out->s, out->len) : out->len;
	if (n > rule->max)
	{
		su_v_report(c, rule->too_long ? rule->too_long : su_v_param(c), path,
					"is %zu %s long; at most %zu allowed",
			   n, rule->unit == CHARS ? "characters" : "bytes", rule->max);
		return STR_BAD;
	}
	return STR_OK;
}

/* parent.key (at path) must be a string obeying rule */
StrState
su_v_check_string(Ctx *c, struct json_object *parent, const char *key,
			 const char *path, const StrRule *rule, StrVal *out)
{
	struct json_object *v = su_v_member(parent, key);

	if (v == NULL)
	{
		out->s = NULL;
		out->len = 0;
		if (rule->required)
			su_v_report(c, rule->required, path, "is required%s", rule->when);
		return STR_ABSENT;
	}
	return su_v_check_string_value(c, v, path, rule, out);
}

bool
su_v_is_object(Ctx *c, struct json_object *v, const char *path)
{
	if (v != NULL && json_object_is_type(v, json_type_object))
		return true;
	su_v_report(c, su_v_param(c), path, "must be an object, got %s", su_json_type_phrase(v));
	return false;
}

/* v must be an object; missing is reported as errcode missing */
struct json_object *
su_v_check_object(Ctx *c, struct json_object *v, const char *path, int missing)
{
	if (v == NULL)
	{
		su_v_report(c, missing, path, "is required");
		return NULL;
	}
	return su_v_is_object(c, v, path) ? v : NULL;
}

/*
 * parent.key must be a non-empty array of at most max entries.  Returns it
 * unless missing, empty or not an array: too many entries are reported but
 * the entries are still worth checking.
 */
struct json_object *
su_v_check_array(Ctx *c, struct json_object *parent, const char *key,
			const char *path, int missing, size_t max)
{
	struct json_object *v = su_v_member(parent, key);
	size_t		n;

	if (v == NULL)
	{
		su_v_report(c, missing, path, "is required");
		return NULL;
	}
	if (!json_object_is_type(v, json_type_array))
	{
		su_v_report(c, su_v_param(c), path, "must be an array, got %s",
			   su_json_type_phrase(v));
		return NULL;
	}
	n = json_object_array_length(v);
	if (n == 0)
	{
		su_v_report(c, missing, path, "must not be empty");
		return NULL;
	}
	if (max > 0 && n > max)
		su_v_report(c, su_v_param(c), path, "has %zu entries; at most %zu allowed",
			   n, max);
	return v;
}

/* parent.key must be an integer of at least 1: unit_price, quantity */
static void
check_count(Ctx *c, struct json_object *parent, const char *key,
			const char *path, int missing)
{
	struct json_object *v = su_v_member(parent, key);
	char		got[64];
	int64_t		n;

	if (v == NULL)
		su_v_report(c, missing, path, "is required");
	else if (!json_object_is_type(v, json_type_int))
		su_v_report(c, WX_ERR_PARAM, path, "must be an integer, got %s",
			   su_json_type_phrase(v));
	else if ((n = json_object_get_int64(v)) == 0)
		su_v_report(c, missing, path, "must be at least 1, got 0");
	else if (n < 0)
		su_v_report(c, WX_ERR_PARAM, path, "must be at least 1, got %s",
			   su_v_describe_value(v, got, sizeof(got)));
}

/*
 * An enum read with its aliases.  Returns its value; 0 when missing (reported
 * if required) or invalid (reported).
 */
int
su_v_check_enum(Ctx *c, struct json_object *v, const char *path,
		   const EnumDef *def, bool required)
{
	const EnumAlias *a;
	char		got[64];
	int			errcode = def->errcode;

	if (v == NULL)
	{
		if (required)
			su_v_report(c, def->errcode, path, "is required");
		return 0;
	}
	if (json_object_is_type(v, json_type_int))
	{
		int64_t		n = json_object_get_int64(v);

		if (n >= def->lo && n <= def->hi)
			return (int) n;
	}
	else if (json_object_is_type(v, json_type_string))
	{
		for (a = def->aliases; a->name != NULL; a++)
			if (json_string_is(v, a->name))
				return a->value;
	}
	else
		errcode = def->wrong_type;
	su_v_report(c, errcode, path, "must be %s, got %s", def->expected,
		   su_v_describe_value(v, got, sizeof(got)));
	return 0;
}


/* ---- formats ---- */

/* \s of the URL pattern: ASCII whitespace */
static bool
is_space(unsigned char ch)
{
	return ch == ' ' || (ch >= '\t' && ch <= '\r');
}

/* [^\s/?#\[\]@] */
static bool
is_userinfo_char(unsigned char ch)
{
	return !is_space(ch) && memchr("/?#[]@", ch, 6) == NULL;
}

/* [^\s/?#@:] */
static bool
is_host_char(unsigned char ch)
{
	return !is_space(ch) && memchr("/?#@:", ch, 5) == NULL;
}

/*
 * ([^\s/?#@:]+)(:\d{2,5})?([^\[\]]*)$ from position p.  The host group may
 * hold brackets, the tail may not; the tail can absorb anything else,
 * including a port.  So taking the longest host is always best, and the
 * port group never decides: a host of at least one character, then no
 * bracket to the end.
 */
static bool
url_host_tail_ok(const char *s, size_t len, size_t p)
{
	size_t		i = p;

	while (i < len && is_host_char((unsigned char) s[i]))
		i++;
	if (i == p)
		return false;
	for (; i < len; i++)
		if (s[i] == '[' || s[i] == ']')
			return false;
	return true;
}

/*
 * ^https?://([^\s/?#\[\]@]+@)?([^\s/?#@:]+)(:\d{2,5})?([^\[\]]*)$
 * The regex matches if either choice for the optional userinfo does.  The
 * userinfo cannot hold '@', so when present it runs up to the first '@'.
 */
static bool
url_matches(const char *s, size_t len)
{
	size_t		p;
	size_t		i;

	if (len >= 7 && memcmp(s, "http://", 7) == 0)
		p = 7;
	else if (len >= 8 && memcmp(s, "https://", 8) == 0)
		p = 8;
	else
		return false;
	if (url_host_tail_ok(s, len, p))
		return true;
	for (i = p; i < len && is_userinfo_char((unsigned char) s[i]); i++)
		;
	return i > p && i < len && s[i] == '@' && url_host_tail_ok(s, len, i + 1);
}

static void
check_url(Ctx *c, const char *path, const StrVal *v)
{
	if (!url_matches(v->s, v->len))
		su_v_report(c, WX_ERR_PARAM, path,
			   "does not match the URL pattern (http or https, a host, "
			   "an optional port, no square brackets after the host)");
}

/* A cursor over a string being parsed */
typedef struct Cursor
{
	const char *s;
	size_t		len;
	size_t		pos;
} Cursor;

/* exactly n digits */
static bool
take_number(Cursor *cur, int n, int *out)
{
	int			v = 0;

	if (cur->len - cur->pos < (size_t) n)
		return false;
	for (; n > 0; n--, cur->pos++)
	{
		char		ch = cur->s[cur->pos];

		if (ch < '0' || ch > '9')
			return false;
		v = v * 10 + (ch - '0');
	}
	*out = v;
	return true;
}

/* one character of set */
static bool
take_char(Cursor *cur, const char *set)
{
	if (cur->pos < cur->len &&
		memchr(set, cur->s[cur->pos], strlen(set)) != NULL)
	{
		cur->pos++;
		return true;
	}
	return false;
}

static bool
take_fraction(Cursor *cur)
{
	size_t		start;

	if (!take_char(cur, "."))
		return true;
	start = cur->pos;
	while (cur->pos < cur->len &&
		   cur->s[cur->pos] >= '0' && cur->s[cur->pos] <= '9')
		cur->pos++;
	return cur->pos > start;
}

static int
days_in_month(int year, int month)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool		leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);

	return month == 2 && leap ? 29 : days[month - 1];
}

/* YYYY-MM-DD[Tt]HH:MM:SS(.digits)?([Zz]|[+-]HH:MM) */
static bool
rfc3339_ok(const char *s, size_t len)
{
	Cursor		cur = {s, len, 0};
	int			y = 0,
				mo = 0,
				d = 0,
				h = 0,
				mi = 0,
				sec = 0,
				oh = 0,
				om = 0;

	if (!(take_number(&cur, 4, &y) && take_char(&cur, "-") &&
		  take_number(&cur, 2, &mo) && take_char(&cur, "-") &&
		  take_number(&cur, 2, &d) && take_char(&cur, "Tt") &&
		  take_number(&cur, 2, &h) && take_char(&cur, ":") &&
		  take_number(&cur, 2, &mi) && take_char(&cur, ":") &&
		  take_number(&cur, 2, &sec) && take_fraction(&cur)))
		return false;
	if (!take_char(&cur, "Zz") &&
		!(take_char(&cur, "+-") && take_number(&cur, 2, &oh) &&
		  take_char(&cur, ":") && take_number(&cur, 2, &om)))
		return false;
	return cur.pos == len &&
		mo >= 1 && mo <= 12 && d >= 1 && d <= days_in_month(y, mo) &&
		h <= 23 && mi <= 59 && sec <= 60 && oh <= 23 && om <= 59;
}

/* 0-9 A-Z a-z _ - * | */
static bool
out_trade_no_chars_ok(const StrVal *v)
{
	size_t		i;

	for (i = 0; i < v->len; i++)
	{
		char		ch = v->s[i];

		if (!((ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') ||
			  (ch >= 'a' && ch <= 'z') || memchr("_-*|", ch, 4) != NULL))
			return false;
	}
	return true;
}


/* ---- the payload, in the spec's order ---- */

static void
check_out_trade_no(Ctx *c, struct json_object *key, int type)
{
	const char *path = "order_key.out_trade_no";
	StrRule		rule = {type == 1 ? WX_ERR_OUT_TRADE_NO_MISSING : 0, WHEN_TYPE_1,
	OUT_TRADE_NO_MAX, CHARS, 0};
	StrVal		v;
	size_t		n;

	if (su_v_check_string(c, key, "out_trade_no", path, &rule, &v) != STR_OK)
		return;
	n = count_chars(v.s, v.len);
	if (n < OUT_TRADE_NO_MIN)
		su_v_report(c, su_v_param(c), path, "is %zu character%s long; at least %d required",
			   n, n == 1 ? "" : "s", OUT_TRADE_NO_MIN);
	else if (!out_trade_no_chars_ok(&v))
		su_v_report(c, su_v_param(c), path,
			   "may contain only 0-9, A-Z, a-z, _, -, * and |");
}

void
su_v_check_order_key(Ctx *c, struct json_object *payload)
{
	struct json_object *key;
	int			type;
	StrVal		v;

	key = su_v_check_object(c, su_v_member(payload, "order_key"), "order_key",
					   WX_ERR_ORDER_KEY_MISSING);
	if (key == NULL)
		return;
	type = su_v_check_enum(c, su_v_member(key, "order_number_type"),
					  "order_key.order_number_type", &order_number_type_enum,
					  true);
	su_v_check_string(c, key, "transaction_id", "order_key.transaction_id",
				 &(StrRule) {type == 2 ? WX_ERR_TRANSACTION_ID_MISSING : 0,
				 WHEN_TYPE_2, KEY_ID_MAX, BYTES, 0}, &v);
	su_v_check_string(c, key, "mchid", "order_key.mchid",
				 &(StrRule) {type == 1 ? WX_ERR_MCHID_MISSING : 0,
				 WHEN_TYPE_1, KEY_ID_MAX, BYTES, 0}, &v);
	check_out_trade_no(c, key, type);
}

static const char *
link_type_name(int type)
{
	return type == LINK_URL ? "URL" : "MINI_PROGRAM";
}

/* A valid appid of a MINI_PROGRAM link: the merchant's, the order link's */
static void
check_link_appid(Ctx *c, const char *path, const StrVal *appid,
				 const LinkInfo *order)
{
	StrVal		merchant;

	if (c->appid != NULL)
	{
		merchant.s = c->appid;
		merchant.len = strlen(c->appid);
		if (!same_bytes(appid, &merchant))
			su_v_report(c, WX_ERR_LINK_APPID_NOT_MERCHANT, path,
				   "must be the merchant's own Mini Program appid "
				   "(the app that calls the API)");
	}
	if (order != NULL && order->type == LINK_MINI_PROGRAM &&
		order->appid.s != NULL && !same_bytes(appid, &order->appid))
		su_v_report(c, WX_ERR_LINK_APPID_MISMATCH, path,
			   "differs from %s.appid; they must be equal", order->path);
}

/* The members of a link object at out->path; out->type already set */
static void
check_link_members(Ctx *c, struct json_object *link, const LinkInfo *order,
				   LinkInfo *out)
{
	bool		url = out->type == LINK_URL;
	bool		mp = out->type == LINK_MINI_PROGRAM;
	char		path[PATH_LEN];
	StrVal		v;

	su_v_path_key(path, out->path, "url");
	if (su_v_check_string(c, link, "url", path,
					 &(StrRule) {url ? WX_ERR_LINK_URL_MISSING : 0, WHEN_URL,
					 URL_MAX, BYTES, 0}, &v) == STR_OK)
		check_url(c, path, &v);

	su_v_path_key(path, out->path, "appid");
	if (su_v_check_string(c, link, "appid", path,
					 &(StrRule) {mp ? WX_ERR_LINK_APPID_MISSING : 0,
					 WHEN_MINI_PROGRAM, APPID_MAX, BYTES, 0}, &v) == STR_OK && mp)
	{
		check_link_appid(c, path, &v, order);
		out->appid = v;
	}

	su_v_path_key(path, out->path, "path");
	su_v_check_string(c, link, "path", path,
				 &(StrRule) {mp ? WX_ERR_LINK_PATH_MISSING : 0,
				 WHEN_MINI_PROGRAM, LINK_PATH_MAX, BYTES, 0}, &v);
}

/*
 * parent.key is a link object; missing is its errcode when missing.  order is
 * the order's link for an item link, NULL for the order link itself.  out
 * receives what an item link is compared with.
 */
static void
check_link(Ctx *c, struct json_object *parent, const char *key,
		   const char *parent_path, int missing, const LinkInfo *order,
		   LinkInfo *out)
{
	struct json_object *link;
	char		path[PATH_LEN];

	su_v_path_key(out->path, parent_path, key);
	out->type = 0;
	out->appid.s = NULL;
	out->appid.len = 0;
	link = su_v_check_object(c, su_v_member(parent, key), out->path, missing);
	if (link == NULL)
		return;

	su_v_path_key(path, out->path, "type");
	out->type = su_v_check_enum(c, su_v_member(link, "type"), path, &link_type_enum,
						   true);
	if (out->type != 0 && order != NULL && order->type != 0 &&
		out->type != order->type)
		su_v_report(c, WX_ERR_LINK_TYPE_MISMATCH, path,
			   "is %s but %s.type is %s; they must be equal",
			   link_type_name(out->type), order->path,
			   link_type_name(order->type));
	check_link_members(c, link, order, out);
}

/* a string key of a list entry, for finding repeats */
typedef struct KeyRef
{
	const char *s;
	size_t		len;
	size_t		idx;
} KeyRef;

static int
keyref_cmp(const void *a, const void *b)
{
	const KeyRef *x = a;
	const KeyRef *y = b;
	size_t		n = x->len < y->len ? x->len : y->len;
	int			r = memcmp(x->s, y->s, n);

	if (r != 0)
		return r;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->idx < y->idx ? -1 : (x->idx > y->idx ? 1 : 0);
}

/*
 * For the first n entries of list: first[i] is the smallest index whose
 * string key equals entry i's, i itself when none does.  Sorting makes it
 * n log n whatever the list's length.  NULL if out of memory (then repeats
 * go unreported); free() it.
 */
static size_t *
find_repeats(struct json_object *list, size_t n, const char *key)
{
	KeyRef	   *refs = malloc(sizeof(KeyRef) * (n ? n : 1));
	size_t	   *first = malloc(sizeof(size_t) * (n ? n : 1));
	size_t		m = 0;

	if (refs == NULL || first == NULL)
	{
		free(refs);
		free(first);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
	{
		struct json_object *w = su_v_member(json_object_array_get_idx(list, i), key);

		first[i] = i;
		if (json_object_is_type(w, json_type_string))
		{
			refs[m].s = json_object_get_string(w);
			refs[m].len = (size_t) json_object_get_string_len(w);
			refs[m].idx = i;
			m++;
		}
	}
	qsort(refs, m, sizeof(KeyRef), keyref_cmp);
	for (size_t k = 1; k < m; k++)
		if (refs[k].len == refs[k - 1].len &&
			memcmp(refs[k].s, refs[k - 1].s, refs[k].len) == 0)
			first[refs[k].idx] = first[refs[k - 1].idx];
	free(refs);
	return first;
}

/* entry i's valid key repeats an earlier entry's: reported at entry i */
static void
report_repeat(Ctx *c, const size_t *first, size_t i, const char *key,
			  const char *list_path, int errcode)
{
	char		prefix[PATH_LEN];
	char		path[PATH_LEN];

	if (first == NULL || first[i] == i)
		return;
	su_v_path_index(prefix, list_path, i);
	su_v_path_key(path, prefix, key);
	su_v_report(c, errcode, path, "repeats %s[%zu].%s", list_path, first[i], key);
}

static void
check_images(Ctx *c, struct json_object *item, const char *item_path)
{
	struct json_object *urls;
	char		path[PATH_LEN];
	char		sub[PATH_LEN];
	size_t		k;
	StrVal		v;

	su_v_path_key(path, item_path, "image_url");
	urls = su_v_check_array(c, item, "image_url", path, WX_ERR_IMAGE_URL_MISSING,
					   IMAGE_URL_MAX);
	if (urls == NULL)
		return;
	/* past the limit, reported: the rest is not walked */
	for (k = 0; k < json_object_array_length(urls) && k < IMAGE_URL_MAX; k++)
	{
		su_v_path_index(sub, path, k);
		if (su_v_check_string_value(c, json_object_array_get_idx(urls, k), sub,
							   &(StrRule) {WX_ERR_PARAM, "", URL_MAX, BYTES, 0},
							   &v) == STR_OK)
			check_url(c, sub, &v);
	}
}

/* items[j], whose order link is order */
static void
check_item(Ctx *c, struct json_object *items, size_t j,
		   const char *items_path, const LinkInfo *order, const size_t *first)
{
	struct json_object *item = json_object_array_get_idx(items, j);
	char		path[PATH_LEN];
	char		sub[PATH_LEN];
	LinkInfo	link;
	StrVal		v;

	su_v_path_index(path, items_path, j);
	if (!su_v_is_object(c, item, path))
		return;

	su_v_path_key(sub, path, "merchant_item_id");
	if (su_v_check_string(c, item, "merchant_item_id", sub,
					 &(StrRule) {WX_ERR_PARAM, "", ITEM_ID_MAX, BYTES, 0},
					 &v) == STR_OK)
		report_repeat(c, first, j, "merchant_item_id", items_path,
					  WX_ERR_ITEM_ID_REPEATED);

	su_v_path_key(sub, path, "name");
	su_v_check_string(c, item, "name", sub,
				 &(StrRule) {WX_ERR_ITEM_NAME_MISSING, "", NAME_MAX, CHARS, 0},
				 &v);

	su_v_path_key(sub, path, "description");
	if (su_v_check_string(c, item, "description", sub,
					 &(StrRule) {0, "", DESCRIPTION_MAX, CHARS, 0},
					 &v) == STR_EMPTY)
		su_v_report(c, WX_ERR_PARAM, sub, "must not be empty");

	su_v_path_key(sub, path, "unit_price");
	check_count(c, item, "unit_price", sub, WX_ERR_UNIT_PRICE_MISSING);
	su_v_path_key(sub, path, "quantity");
	check_count(c, item, "quantity", sub, WX_ERR_QUANTITY_MISSING);
	check_images(c, item, path);
	check_link(c, item, "item_detail_jump_link", path,
			   WX_ERR_ITEM_LINK_MISSING, order, &link);
}

/* orders[i] */
static void
check_order(Ctx *c, struct json_object *orders, size_t i, const size_t *first)
{
	struct json_object *order = json_object_array_get_idx(orders, i);
	struct json_object *items;
	char		path[PATH_LEN];
	char		sub[PATH_LEN];
	LinkInfo	link;
	StrVal		v;
	size_t		j;
	size_t		n;
	size_t	   *item_first;

	su_v_path_index(path, "order_list", i);
	if (!su_v_is_object(c, order, path))
		return;

	su_v_path_key(sub, path, "merchant_order_no");
	if (su_v_check_string(c, order, "merchant_order_no", sub,
					 &(StrRule) {WX_ERR_MERCHANT_ORDER_NO_MISSING, "",
					 ORDER_NO_MAX, BYTES, 0}, &v) == STR_OK)
		report_repeat(c, first, i, "merchant_order_no", "order_list",
					  WX_ERR_ORDER_NO_REPEATED);

	check_link(c, order, "order_detail_jump_link", path, WX_ERR_PARAM, NULL,
			   &link);

	su_v_path_key(sub, path, "item_list");
	items = su_v_check_array(c, order, "item_list", sub, WX_ERR_ITEM_LIST_EMPTY,
						ITEM_LIST_MAX);
	if (items == NULL)
		return;
	/* past the limit, reported: the rest is not walked */
	n = json_object_array_length(items);
	if (n > ITEM_LIST_MAX)
		n = ITEM_LIST_MAX;
	item_first = find_repeats(items, n, "merchant_item_id");
	for (j = 0; j < n && !su_v_stopping(c); j++)
		check_item(c, items, j, sub, &link, item_first);
	free(item_first);
}

static void
check_order_list(Ctx *c, struct json_object *payload)
{
	struct json_object *orders;
	size_t		i;
	size_t		n;
	size_t	   *first;

	orders = su_v_check_array(c, payload, "order_list", "order_list",
						 WX_ERR_ORDER_LIST_EMPTY, 0);
	if (orders == NULL)
		return;
	n = json_object_array_length(orders);
	first = find_repeats(orders, n, "merchant_order_no");
	for (i = 0; i < n && !su_v_stopping(c); i++)
		check_order(c, orders, i, first);
	free(first);
}

void
su_v_check_payer(Ctx *c, struct json_object *payload)
{
	struct json_object *payer;
	StrVal		v;

	payer = su_v_check_object(c, su_v_member(payload, "payer"), "payer",
						 WX_ERR_PAYER_OPENID_MISSING);
	if (payer == NULL)
		return;
	su_v_check_string(c, payer, "openid", "payer.openid",
				 &(StrRule) {WX_ERR_PAYER_OPENID_MISSING, "", OPENID_MAX,
				 BYTES, 0}, &v);
}

void
su_v_check_upload_time(Ctx *c, struct json_object *payload)
{
	StrVal		v;

	if (su_v_check_string(c, payload, "upload_time", "upload_time",
					 &(StrRule) {WX_ERR_UPLOAD_TIME_MISSING, "", SIZE_MAX,
					 BYTES, 0}, &v) == STR_OK &&
		!rfc3339_ok(v.s, v.len))
		su_v_report(c, WX_ERR_UPLOAD_TIME_FORMAT, "upload_time",
			   "is not an RFC 3339 date-time such as "
			   "2022-05-20T13:29:35.120+08:00");
}

int
su_validate_payload(struct json_object *payload, const char *appid,
					su_violation_cb cb, void *arg)
{
	return su_validate_payload_ex(payload, appid, cb, arg, NULL, NULL);
}

int
su_validate_payload_ex(struct json_object *payload, const char *appid,
					   su_violation_cb cb, void *arg,
					   su_stop_cb stop, void *stop_arg)
{
	Ctx			c = {appid, cb, arg, 0, stop, stop_arg, false, 0};

	if (!json_object_is_type(payload, json_type_object))
	{
		su_v_report(&c, WX_ERR_PARAM, "", "must be a JSON object, got %s",
			   su_json_type_phrase(payload));
		return c.count;
	}
	su_v_check_order_key(&c, payload);
	check_order_list(&c, payload);
	if (c.stopped)
		return c.count;			/* the walk ends where it was stopped */
	su_v_check_payer(&c, payload);
	su_v_check_enum(&c, su_v_member(payload, "logistics_type"), "logistics_type",
			   &logistics_type_enum, false);
	su_v_check_upload_time(&c, payload);
	return c.count;
}
