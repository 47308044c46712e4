/*-------------------------------------------------------------------------
 *
 * text_clean.h
 *		Text from the network, cleaned for the database.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_TEXT_CLEAN_H
#define SU_TEXT_CLEAN_H

/*
 * Text from the network, palloc'd and valid in the database encoding: a
 * byte that is no character becomes \xNN (so that pg_dump/pg_restore and
 * readers in any client_encoding get what was stored).
 */
extern char *su_clean_text(const char *s);

/*
 * The most of a text from the network that is kept (an errmsg, a transport
 * error, a verify_result): past it, the text is cut at a character and a
 * marker says how long it was.
 */
#define SU_MAX_ANSWER_TEXT 1024

/* su_clean_text(), cut to at most SU_MAX_ANSWER_TEXT bytes and a marker */
extern char *su_clean_text_capped(const char *s);

#endif							/* SU_TEXT_CLEAN_H */
