/*-------------------------------------------------------------------------
 *
 * shopping_upload.h
 *		Settings and shared state of shopping_upload.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHOPPING_UPLOAD_H
#define SHOPPING_UPLOAD_H

#define SU_SCHEMA "shopping_upload"

/* settings (src/shopping_upload.c) */
extern char *su_appid;
extern char *su_secret;
extern char *su_api_base_url;
extern char *su_ca_file;
extern bool su_auto_upload;
extern int	su_connect_timeout_ms;
extern int	su_timeout_ms;
extern int	su_max_attempts;
extern int	su_retry_base_ms;
extern int	su_retry_max_ms;
extern int	su_config_retry_s;

/* api_base_url without a trailing slash */
extern const char *su_api_base(void);

extern void _PG_init(void);

#endif							/* SHOPPING_UPLOAD_H */
