/*-------------------------------------------------------------------------
 *
 * http_sync.c
 *		One request, waited for in a backend (upload_shopping_info(), token
 *		fetches): the client's sockets and the latch in one wait.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"

#include "http_sync.h"

volatile bool *su_http_stop = NULL;

void
su_http_perform(SuHttpRequest *req)
{
	SuHttpClient *client = su_http_client();
	bool		latch_was_set = false;

	if (!su_http_start(client, req))
		return;
	PG_TRY();
	{
		su_http_drive(client);
		while (!req->done)
		{
			long		timeout = su_http_timeout(client);
			int			rc;

			/* libcurl always keeps a timer while a transfer runs */
			if (timeout < 0 || timeout > 1000)
				timeout = 1000;
			rc = WaitLatchOrSocket(MyLatch,
								   WL_LATCH_SET | WL_SOCKET_READABLE |
								   WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								   su_http_socket(client), timeout,
								   PG_WAIT_EXTENSION);
			if (rc & WL_LATCH_SET)
			{
				ResetLatch(MyLatch);
				latch_was_set = true;
			}
			CHECK_FOR_INTERRUPTS();
			if (su_http_stop != NULL && *su_http_stop)
			{
				su_http_cancel(client, req);
				req->curl_code = 42;	/* CURLE_ABORTED_BY_CALLBACK */
				snprintf(req->error, sizeof(req->error), "%s",
						 "the caller was cancelled before an answer came; "
						 "the request may have arrived");
				req->done = true;
				break;
			}
			su_http_drive(client);
		}
	}
	PG_CATCH();
	{
		su_http_cancel(client, req);
		PG_RE_THROW();
	}
	PG_END_TRY();
	su_http_forget(client, req);
	if (latch_was_set)
		SetLatch(MyLatch);		/* the caller's wakeup, kept */
}
