/*-------------------------------------------------------------------------
 *
 * text_clean.c
 *		Text from the network, made valid in the database encoding and cut
 *		to a size that is kept.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"

#include "text_clean.h"

char *
su_clean_text(const char *s)
{
	int			enc = GetDatabaseEncoding();
	size_t		len = strlen(s);
	StringInfoData buf;
	const char *p = s;
	const char *end = s + len;

	/* nearly always valid as it is */
	if (pg_verify_mbstr(enc, s, (int) Min(len, (size_t) INT_MAX), true))
		return pstrdup(s);
	initStringInfo(&buf);
	while (p < end)
	{
		int			l = pg_encoding_verifymbchar(enc, p, (int) Min(end - p, INT_MAX));

		if (l > 0)
		{
			appendBinaryStringInfo(&buf, p, l);
			p += l;
		}
		else
		{
			/* a byte that is no character: shown as \xNN */
			appendStringInfo(&buf, "\\x%02X", (unsigned char) *p);
			p++;
		}
	}
	return buf.data;
}

char *
su_clean_text_capped(const char *s)
{
	size_t		len = strlen(s);
	char	   *clean;
	int			keep;

	if (len <= SU_MAX_ANSWER_TEXT)
		return su_clean_text(s);
	/* cleaned from a prefix only: \xNN may make it up to four times longer */
	clean = su_clean_text(pnstrdup(s, SU_MAX_ANSWER_TEXT));
	keep = pg_mbcliplen(clean, (int) strlen(clean), SU_MAX_ANSWER_TEXT - 64);
	clean[keep] = '\0';
	return psprintf("%s... [cut: %zu bytes in all]", clean, len);
}
