/*-------------------------------------------------------------------------
 *
 * trade_app.h
 *		The order shipping management service's calls about an appid
 *		(trade_app.c): one request each, waited for; SPI connected.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_TRADE_APP_H
#define SU_TRADE_APP_H

struct json_object;

/* the paths of the service's calls begin so */
#define SU_TRADE_PATH_PREFIX "/wxa/sec/order/"

/*
 * POSTs body to path for appid (NULL: the configured one) with its token;
 * WeChat's answer (errcode 0), tracked; anything else is an error.
 */
extern struct json_object *su_trade_app_call(const char *appid, const char *path,
											 struct json_object *body);

/* is_trade_managed for appid, kept in trade_apps.managed */
extern bool su_trade_app_managed(const char *appid);

/* get_delivery_list, replacing delivery_companies; how many */
extern int	su_trade_app_delivery_companies(const char *appid);

/*
 * The worker's daily look: is_trade_managed for every appid it serves that
 * is not pinned, and (delivery) get_delivery_list; a failure is logged.
 */
extern void su_trade_apps_refresh(bool delivery);

#endif							/* SU_TRADE_APP_H */
