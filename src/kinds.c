/*-------------------------------------------------------------------------
 *
 * kinds.c
 *		The table of the kinds of call, made from kindlist.h, in the style
 *		of PostgreSQL's rmgrlist.h.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "storage/lmgr.h"
#include "utils/lsyscache.h"

#include "common.h"
#include "kinds.h"
#include "queue.h"
#include "retry.h"
#include "upload.h"

/* the tables each kind's bodies are read from, in the order they are locked */
static const char *const order_tables[] = {"orders", "sub_orders", "items"};
static const char *const shipping_tables[] = {"orders", "items", "shippings",
"shipments", "shipment_items"};
static const char *const verify_tables[] = {"orders"};
static const char *const trade_tables[] = {"orders", "items", "shippings",
"shipments", "shipment_items"};
static const char *const trade_check_tables[] = {"orders"};
static const char *const trade_confirm_tables[] = {"orders", "shippings"};

const SuKindInfo su_kinds[SU_KINDS] = {
#define SU_KIND(symbol, name_, function_, path_, due_, tables_, \
				claim_, begin_, prepare_, record_, classify_) \
	[symbol] = {.name = name_, .function = function_, .path = path_, \
				.due = due_, .tables = tables_, .n_tables = lengthof(tables_), \
				.claim = claim_, .begin = begin_, .prepare = prepare_, \
				.record = record_, .classify = classify_},
#include "kindlist.h"
#undef SU_KIND
};

/* one row per kind, and one kind per due column */
StaticAssertDecl(lengthof(su_kinds) == SU_KINDS, "one row of su_kinds per kind");
StaticAssertDecl((int) SU_DUES == (int) SU_KINDS, "one due column per kind");

SuKind
su_kind_by_name(const char *name)
{
	for (int kind = 0; kind < SU_KINDS; kind++)
		if (strcmp(su_kinds[kind].name, name) == 0)
			return (SuKind) kind;
	ereport(ERROR,
			(errcode(ERRCODE_INTERNAL_ERROR),
			 errmsg("shopping_upload knows no kind of call \"%s\"", name),
			 errhint("The library was replaced while sessions that use it ran: reconnect.")));
	pg_unreachable();
}

bool
su_lock_kind_tables(SuKind kind, bool wait, const char **blocker)
{
	const SuKindInfo *k = su_kind(kind);
	Oid			nsp = get_namespace_oid(SU_SCHEMA, true);

	if (!OidIsValid(nsp))
		return true;			/* the statements will say what is wrong */
	for (int i = 0; i < k->n_tables; i++)
	{
		Oid			rel = get_relname_relid(k->tables[i], nsp);

		if (!OidIsValid(rel))
			continue;
		if (wait)
			LockRelationOid(rel, AccessShareLock);
		else if (!ConditionalLockRelationOid(rel, AccessShareLock))
		{
			*blocker = k->tables[i];
			return false;
		}
	}
	return true;
}
