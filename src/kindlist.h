/*-------------------------------------------------------------------------
 *
 * kindlist.h
 *		The kinds of WeChat call, one row each, in the order a claim takes
 *		them (see kinds.c, which makes the table of them, and types.h, which
 *		makes the SuKind enum).
 *
 * A new kind of call is a row here, plus its claim, begin, prepare and
 * record functions (its builder, validator and SQL), and its value in the
 * audit.kind CHECK of the SQL scripts.
 *
 * SU_KIND(symbol, name, function, path, due, tables,
 *		   claim, begin, prepare, record, classify)
 *	symbol		its SuKind
 *	name		audit.kind, and the name in log lines and claim_waits()
 *	function	the SQL function that makes the call by hand
 *	path		the API's path under api_base_url
 *	due			the queue's due column of its rows (SuDue, types.h)
 *	tables		the tables its bodies are read from, in the order they are
 *				locked (an array of kinds.c)
 *	claim		claims due rows (SuClaimFn)
 *	begin		starts a call by hand: leases or locks the row (SuBeginFn)
 *	prepare		builds and validates the bodies of claimed rows (SuPrepareFn)
 *	record		records the answers in the rows' states (SuRecordFn)
 *	classify	what WeChat's errcode means for it (retry.c)
 *
 * No include guard: included once per expansion of SU_KIND.
 *
 *-------------------------------------------------------------------------
 */

/* uploadShoppingInfo: the order's shopping details */
SU_KIND(SU_KIND_ORDER, "order", "upload_shopping_info",
		"/user-order/orders", SU_DUE_ORDER, order_tables,
		su_queue_claim, su_queue_begin, su_upload_prepare, su_queue_record,
		su_retry_classify)

/* the shipping information of an order whose upload was accepted */
SU_KIND(SU_KIND_SHIPPING, "shipping", "upload_shipping_info",
		"/user-order/orders/shippings", SU_DUE_SHIPPING, shipping_tables,
		su_shipping_claim, su_shipping_begin, su_shipping_prepare,
		su_shipping_record, su_retry_classify)

/* verify: did WeChat link the accepted upload to the payment? */
SU_KIND(SU_KIND_VERIFY, "verify", "verify_shopping_info",
		"/user-order/shoppinginfo/verify", SU_DUE_VERIFY, verify_tables,
		su_verify_claim, su_verify_begin, su_verify_prepare, su_verify_record,
		su_retry_classify)

/*
 * the order shipping management service: the shipping information of a
 * payment whose appid is in it (trade_apps), sent once WeChat finds the
 * payment, whatever became of the order's own upload
 */
SU_KIND(SU_KIND_TRADE_SHIPPING, "trade_shipping", "upload_trade_shipping",
		"/wxa/sec/order/upload_shipping_info", SU_DUE_TRADE, trade_tables,
		su_trade_claim, su_trade_begin, su_trade_prepare, su_trade_record,
		su_retry_trade_classify)

/* get_order: WeChat's view of the payment, after its shipping was accepted */
SU_KIND(SU_KIND_TRADE_ORDER, "trade_order", "get_trade_order",
		"/wxa/sec/order/get_order", SU_DUE_TRADE_CHECK, trade_check_tables,
		su_trade_check_claim, su_trade_check_begin, su_trade_check_prepare,
		su_trade_check_record, su_retry_trade_classify)

/* notify_confirm_receive: the buyer reminded to confirm receipt, once */
SU_KIND(SU_KIND_TRADE_CONFIRM, "trade_confirm", "notify_confirm_receive",
		"/wxa/sec/order/notify_confirm_receive", SU_DUE_TRADE_CONFIRM,
		trade_confirm_tables, su_trade_confirm_claim, su_trade_confirm_begin,
		su_trade_confirm_prepare, su_trade_confirm_record,
		su_retry_trade_confirm_classify)
