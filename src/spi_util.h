/*-------------------------------------------------------------------------
 *
 * spi_util.h
 *		Kept SPI plans and SQL arrays.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_SPI_UTIL_H
#define SU_SPI_UTIL_H

/*
 * A statement prepared once per process and kept (SPI connected): *cache is
 * filled on first use.  cursor_options as for SPI_prepare_cursor.
 */
struct _SPI_plan;
extern struct _SPI_plan *su_kept_plan(struct _SPI_plan **cache, const char *sql,
									  int nargs, Oid *argtypes, int cursor_options);

/* A one-dimensional array of n Datums of elemtype; nulls may be NULL. */
extern Datum su_array(Datum *values, bool *nulls, int n, Oid elemtype);

#endif							/* SU_SPI_UTIL_H */
