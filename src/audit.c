/*-------------------------------------------------------------------------
 *
 * audit.c
 *		shopping_upload.audit: one row per attempt, written in batches, and
 *		deleted once older than shopping_upload.audit_retention.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <json-c/json.h>

#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "utils/timestamp.h"

#include "audit.h"
#include "json_util.h"
#include "kinds.h"
#include "common.h"
#include "settings.h"
#include "spi_util.h"

/* utils/builtins.h cannot be included next to json-c (see json_util.h) */
extern Datum jsonb_in(PG_FUNCTION_ARGS);

#define AUDIT_COLS 17

void
su_audit_digest(SuUpload *u)
{
	pg_cryptohash_ctx *ctx;

	if (u->body_hashed || !u->sent || u->body == NULL)
		return;
	StaticAssertStmt(sizeof(u->body_sha256) == PG_SHA256_DIGEST_LENGTH,
					 "SuUpload.body_sha256 holds a SHA-256 digest");
	ctx = pg_cryptohash_create(PG_SHA256);
	if (pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) u->body, u->body_len) < 0 ||
		pg_cryptohash_final(ctx, u->body_sha256, PG_SHA256_DIGEST_LENGTH) < 0)
		elog(ERROR, "could not compute the SHA-256 digest of a request: %s",
			 pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);
	u->body_hashed = true;
}

/* the SHA-256 digest of the body sent, as a bytea; NULL if none was sent */
static bytea *
body_digest(SuUpload *u)
{
	bytea	   *d;

	su_audit_digest(u);
	if (!u->body_hashed)
		return NULL;
	d = palloc(VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	SET_VARSIZE(d, VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	memcpy(VARDATA(d), u->body_sha256, PG_SHA256_DIGEST_LENGTH);
	return d;
}

/*
 * Does the row keep the body?  shopping_upload.audit_request: "failed"
 * keeps it for the attempts that were not accepted (refused here, a
 * transport error, an errcode), "all" for every one, "none" for none.  The
 * digest is kept whatever the setting.
 */
static bool
keeps_request(const SuUpload *u)
{
	switch ((SuAuditRequest) su_audit_request)
	{
		case SU_AUDIT_REQUEST_ALL:
			return true;
		case SU_AUDIT_REQUEST_NONE:
			return false;
		case SU_AUDIT_REQUEST_FAILED:
			break;
	}
	return !(u->sent && u->errcode == WX_ERR_OK && u->transport_error == NULL);
}

void
su_audit_insert(SuUpload **us, int n)
{
	static SPIPlanPtr plan = NULL;
	static const Oid elemtypes[AUDIT_COLS] = {INT8OID, INT4OID, TEXTOID, TEXTOID,
	TEXTOID, JSONBOID, BOOLOID, INT4OID, INT4OID, TEXTOID, TEXTOID, FLOAT8OID,
	TEXTOID, TEXTOID, INT8OID, TIMESTAMPTZOID, BYTEAOID};
	Oid			types[AUDIT_COLS] = {INT8ARRAYOID, INT4ARRAYOID, TEXTARRAYOID,
		TEXTARRAYOID, TEXTARRAYOID, JSONBARRAYOID, BOOLARRAYOID, INT4ARRAYOID,
	INT4ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, FLOAT8ARRAYOID, TEXTARRAYOID,
	TEXTARRAYOID, INT8ARRAYOID, TIMESTAMPTZARRAYOID, BYTEAARRAYOID};
	Datum	   *v[AUDIT_COLS];
	bool	   *nul[AUDIT_COLS];
	Datum		args[AUDIT_COLS];
	bool		isnull;

	/* the columns of the statement's RETURNING */
	enum
	{
		Anum_audit_insert_audit_id = 1
	};

	if (n == 0)
		return;
	su_kept_plan(&plan,
				 "INSERT INTO " SU_SCHEMA ".audit (order_id, attempt, via, appid,"
				 " upload_time, request, sent, http_status, errcode, errmsg,"
				 " transport_error, duration_ms, kind, verify_result, version,"
				 " queued_at, request_sha256)"
				 " SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
				 " pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5),"
				 " pg_catalog.unnest($6), pg_catalog.unnest($7), pg_catalog.unnest($8),"
				 " pg_catalog.unnest($9), pg_catalog.unnest($10), pg_catalog.unnest($11),"
				 " pg_catalog.unnest($12), pg_catalog.unnest($13), pg_catalog.unnest($14),"
				 " pg_catalog.unnest($15), pg_catalog.unnest($16), pg_catalog.unnest($17))"
				 " RETURNING audit_id",
				 AUDIT_COLS, types, 0);
	for (int c = 0; c < AUDIT_COLS; c++)
	{
		v[c] = palloc(sizeof(Datum) * n);
		nul[c] = palloc0(sizeof(bool) * n);
	}
	for (int i = 0; i < n; i++)
	{
		SuUpload   *u = us[i];
		bytea	   *digest = body_digest(u);

#define TEXT_OR_NULL(c, s) \
	do { if (s) v[c][i] = su_text_datum(s); else nul[c][i] = true; } while (0)
		v[0][i] = Int64GetDatum(u->order_id);
		v[1][i] = Int32GetDatum(u->attempt);
		v[2][i] = su_text_datum(u->by_hand ? "sql" : "worker");
		TEXT_OR_NULL(3, u->appid);
		TEXT_OR_NULL(4, u->upload_time);
		if (!keeps_request(u))
			nul[5][i] = true;
		else if (u->payload)
			v[5][i] = su_json_to_jsonb(u->payload);
		else if (u->body)
			v[5][i] = DirectFunctionCall1(jsonb_in, CStringGetDatum(u->body));
		else
			nul[5][i] = true;
		v[6][i] = BoolGetDatum(u->sent);
		v[7][i] = Int32GetDatum((int32) u->http_status);
		nul[7][i] = !u->sent || u->http_status == 0;
		v[8][i] = Int32GetDatum(u->errcode);
		TEXT_OR_NULL(9, u->errmsg);
		TEXT_OR_NULL(10, u->transport_error);
		v[11][i] = Float8GetDatum(u->duration_ms);
		nul[11][i] = !u->sent;
		v[12][i] = su_text_datum(su_kind(u->kind)->name);
		TEXT_OR_NULL(13, u->verify_result);
		v[14][i] = Int64GetDatum(u->version);
		nul[14][i] = u->version == 0;
		v[15][i] = TimestampTzGetDatum(u->queued_at);
		nul[15][i] = u->queued_at == 0;
		v[16][i] = PointerGetDatum(digest);
		nul[16][i] = digest == NULL;
#undef TEXT_OR_NULL
	}
	for (int c = 0; c < AUDIT_COLS; c++)
		args[c] = su_array(v[c], nul[c], n, elemtypes[c]);

	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_INSERT_RETURNING ||
		SPI_processed != (uint64) n)
		elog(ERROR, "could not write %d audit rows", n);
	/* INSERT ... SELECT returns its rows in the order they were inserted */
	for (int i = 0; i < n; i++)
		us[i]->audit_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
													  SPI_tuptable->tupdesc,
													  Anum_audit_insert_audit_id,
													  &isnull));
}

static SPIPlanPtr trim_plan = NULL;

int64
su_audit_trim(int batch, int budget_ms, bool *caught_up)
{
	Oid			types[2] = {FLOAT8OID, INT4OID};
	Datum		args[2] = {Float8GetDatum((double) su_audit_retention_s), Int32GetDatum(batch)};
	TimestampTz start = GetCurrentTimestamp();
	int64		total = 0;

	*caught_up = true;
	if (su_audit_retention_s <= 0)
		return 0;
	su_kept_plan(&trim_plan,
				 "DELETE FROM " SU_SCHEMA ".audit WHERE audit_id OPERATOR(pg_catalog.=) ANY"
				 " (SELECT audit_id FROM " SU_SCHEMA ".audit"
				 "  WHERE created_at OPERATOR(pg_catalog.<) (pg_catalog.now()"
				 "  OPERATOR(pg_catalog.-) pg_catalog.make_interval(secs => $1))"
				 "  ORDER BY created_at LIMIT $2)",
				 2, types, 0);
	for (;;)
	{
		if (SPI_execute_plan(trim_plan, args, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not delete old audit rows");
		total += SPI_processed;
		if (SPI_processed < (uint64) batch)
			break;
		if (TimestampDifferenceExceeds(start, GetCurrentTimestamp(), budget_ms))
		{
			*caught_up = false;
			break;
		}
	}
	return total;
}
