/*-------------------------------------------------------------------------
 *
 * errcodes.h
 *		WeChat's errcodes for uploadShoppingInfo and what a client does
 *		about each of them.
 *
 * Plain C: includable without postgres.h.  The classes follow the table
 * "What a client must do" (section 5) of docs/upload-api.md; what each class
 * leads to is retry.c's decision.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_ERRCODES_H
#define SU_ERRCODES_H

/* general */
#define WX_ERR_OK							0
#define WX_ERR_SYSTEM_BUSY					(-1)
#define WX_ERR_PARAM						268435461	/* parameter error */

/* access token */
#define WX_ERR_INVALID_CREDENTIAL			40001	/* at stable_token: a wrong secret */
#define WX_ERR_INVALID_ACCESS_TOKEN			40014
#define WX_ERR_ACCESS_TOKEN_EXPIRED			42001

/* WeChat's "appsecret missing": no way to get a token for an appid */
#define WX_ERR_NO_SECRET					41004

/* the token endpoint's own refusals (stable_token) */
#define WX_ERR_INVALID_APPSECRET			40125	/* the secret is not the appid's */
#define WX_ERR_IP_NOT_ALLOWED				40164	/* the caller's IP is not on the allow-list */

/* quotas */
#define WX_ERR_QUOTA_DAY					45009
#define WX_ERR_QUOTA_MINUTE					45011

/* permission, wrong app: configuration problems */
#define WX_ERR_API_UNAUTHORIZED				48001
#define WX_ERR_COMPONENT_UNAUTHORIZED		61007
#define WX_ERR_NO_SHOPPING_PERMISSION		268485184
#define WX_ERR_APPID_NOT_MINI_PROGRAM		268456389
#define WX_ERR_INVALID_APPID				40013

/* request data, outside the 2684xxxxx range */
#define WX_ERR_INVALID_OPENID				40003
#define WX_ERR_DATA_FORMAT					47001
#define WX_ERR_EMPTY_POST_DATA				44002
#define WX_ERR_POST_DATA_TOO_LONG			45002

/* the payload's rules (validate.c) */
#define WX_ERR_ORDER_LIST_EMPTY				268485191
#define WX_ERR_PAYER_OPENID_MISSING			268485192
#define WX_ERR_LOGISTICS_TYPE				268485193
#define WX_ERR_ORDER_KEY_MISSING			268485194	/* also bad order_number_type */
#define WX_ERR_TRANSACTION_ID_MISSING		268485195
#define WX_ERR_MCHID_MISSING				268485196
#define WX_ERR_OUT_TRADE_NO_MISSING			268485197
#define WX_ERR_MERCHANT_ORDER_NO_MISSING	268485201
#define WX_ERR_LINK_TYPE					268485202
#define WX_ERR_LINK_APPID_MISSING			268485204
#define WX_ERR_LINK_PATH_MISSING			268485205
#define WX_ERR_LINK_URL_MISSING				268485206
#define WX_ERR_ITEM_NAME_MISSING			268485207
#define WX_ERR_UNIT_PRICE_MISSING			268485208
#define WX_ERR_QUANTITY_MISSING				268485209
#define WX_ERR_IMAGE_URL_MISSING			268485210
#define WX_ERR_ITEM_LIST_EMPTY				268485211
#define WX_ERR_UPLOAD_TIME_MISSING			268485214
#define WX_ERR_UPLOAD_TIME_FORMAT			268485216
#define WX_ERR_ITEM_LINK_MISSING			268485272
#define WX_ERR_LINK_APPID_NOT_MERCHANT		268486029
#define WX_ERR_LINK_TYPE_MISMATCH			268459788
#define WX_ERR_LINK_APPID_MISMATCH			268459789
#define WX_ERR_ITEM_ID_REPEATED				268486047
#define WX_ERR_ORDER_NO_REPEATED			268459786

/* the shipping information's rules (validate_shipping.c) */
#define WX_ERR_TRACKING_NO_MISSING			268485226
#define WX_ERR_UNIFIED_NEEDS_ONE_SHIPMENT	268485228

/*
 * The order shipping management service (/wxa/sec/order, validate_trade.c;
 * docs/order-shipping.md).  A malformed value there is 47001
 * (WX_ERR_DATA_FORMAT) where no errcode of its own is given.
 */
#define WX_ERR_DELIVERY_MODE				268485224
#define WX_ERR_EXPRESS_COMPANY_MISSING		268485227
#define WX_ERR_TRADE_PAYMENT_NOT_FOUND		10060001
#define WX_ERR_TRADE_ALL_SHIPPED			10060002
#define WX_ERR_TRADE_RESHIP_USED			10060003
#define WX_ERR_TRADE_NOT_SHIPPABLE			10060004
#define WX_ERR_TRADE_LOGISTICS_TYPE			10060005
#define WX_ERR_TRADE_SPLIT_NOT_EXPRESS		10060006
#define WX_ERR_TRADE_ALL_DELIVERED_MISSING	10060007
#define WX_ERR_TRADE_ITEM_DESC_MISSING		10060008
#define WX_ERR_TRADE_ITEM_DESC_TOO_LONG		10060009
#define WX_ERR_TRADE_SYSTEM_ERROR			10060012
#define WX_ERR_TRADE_PARAMETER				10060014
#define WX_ERR_TRADE_SYSTEM_ERROR_2			10060019
#define WX_ERR_TRADE_UNCHANGED				10060023
#define WX_ERR_TRADE_NOT_SHIPPED			10060028
#define WX_ERR_TRADE_RECEIVED_TIME			10060029
#define WX_ERR_TRADE_CONFIRM_DONE			10060030
#define WX_ERR_TRADE_CONFIRM_NOT_EXPRESS	10060032
#define WX_ERR_TRADE_SHIPPING_LIST_TOO_LONG	10060024
#define WX_ERR_TRADE_EXPRESS_COMPANY_TOO_LONG	10060025
#define WX_ERR_TRADE_TRACKING_NO_TOO_LONG	10060026

/*
 * Not WeChat's: a request that this server's own configuration stops (plain
 * http refused, a CA file that cannot be used).  Recorded so, and held as a
 * configuration problem, never retried to death as a transport failure.
 */
#define SU_ERR_LOCAL_CONFIG					(-2)
/*
 * shopping_upload's own, not WeChat's: an express_company that is not a
 * delivery_id of delivery_companies (WeChat's list, once it is filled)
 */
#define SU_ERR_UNKNOWN_DELIVERY_ID			(-3)

/* the 2684xxxxx range: the order's data, unless listed otherwise */
#define WX_ERR_DATA_RANGE_FIRST				268400000
#define WX_ERR_DATA_RANGE_LAST				268499999

typedef enum SuErrClass
{
	SU_CLASS_OK,				/* accepted */
	SU_CLASS_RETRY,				/* retry with backoff and jitter */
	SU_CLASS_REFRESH_TOKEN,		/* fetch a fresh token, retry once */
	SU_CLASS_QUOTA_MINUTE,		/* wait at least 60 s, retry */
	SU_CLASS_QUOTA_DAY,			/* hold until the next day (UTC+8) */
	SU_CLASS_CONFIG,			/* stop, alert: configuration problem */
	SU_CLASS_DATA,				/* order rejected until it changes */
	SU_CLASS_UNKNOWN			/* treat as permanent, keep errmsg */
} SuErrClass;

#endif							/* SU_ERRCODES_H */
