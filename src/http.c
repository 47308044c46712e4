/*-------------------------------------------------------------------------
 *
 * http.c
 *		HTTP(S) POSTs with libcurl's multi interface.
 *
 * One multi handle per process keeps connections alive between requests.
 * TLS always verifies the peer and the host name.  libcurl is driven by its
 * socket interface: the sockets it wants watched are registered in one epoll
 * descriptor, which a caller waits on together with its latch (one wait
 * event), so that nothing polls.  No PostgreSQL here.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "http.h"
#include "settings.h"

#define SU_HTTP_MAX_RESPONSE (4 * 1024 * 1024)
#define SU_HTTP_SPARE 64		/* easy handles kept for reuse */
#define lengthof_events(a) ((int) (sizeof(a) / sizeof((a)[0])))

struct SuHttpClient
{
	CURLM	   *multi;
	struct curl_slist *headers;
	int			epfd;			/* the sockets libcurl wants watched */
	int64_t		deadline_ms;	/* libcurl's timer (monotonic ms), -1: none */
	int			running;		/* started, not yet finished */
	int			connecting;		/* of those, not connected yet */
	SuHttpRequest *done_head;
	SuHttpRequest *done_tail;
	CURL	   *spare[SU_HTTP_SPARE];	/* finished handles, reset, for reuse */
	int			n_spare;
};

static SuHttpClient *the_client = NULL;

static int64_t
monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* libcurl: watch socket s for what (CURL_POLL_*), or stop watching it */
static int
socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	SuHttpClient *c = userp;
	struct epoll_event ev;

	(void) easy;
	if (what == CURL_POLL_REMOVE)
	{
		(void) epoll_ctl(c->epfd, EPOLL_CTL_DEL, s, NULL);
		curl_multi_assign(c->multi, s, NULL);
		return 0;
	}
	memset(&ev, 0, sizeof(ev));
	ev.data.fd = s;
	ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0) |
		((what & CURL_POLL_OUT) ? EPOLLOUT : 0);

	/*
	 * socketp is non-NULL once the socket is in the epoll set (libcurl
	 * keeps it per socket): one epoll_ctl per change in the usual case.
	 * Whatever the kernel says, the answer to libcurl is 0: -1 would stop
	 * the multi handle for good.  A socket that could not be watched still
	 * ends, by libcurl's timer (the request's timeout).
	 */
	if (socketp != NULL)
	{
		if (epoll_ctl(c->epfd, EPOLL_CTL_MOD, s, &ev) == 0 || errno != ENOENT)
			return 0;
	}
	if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, s, &ev) != 0 && errno == EEXIST)
		(void) epoll_ctl(c->epfd, EPOLL_CTL_MOD, s, &ev);
	curl_multi_assign(c->multi, s, c);
	return 0;
}

/* libcurl: call back in timeout_ms (-1: no timer) */
static int
timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	SuHttpClient *c = userp;

	(void) multi;
	c->deadline_ms = timeout_ms < 0 ? -1 : monotonic_ms() + timeout_ms;
	return 0;
}

SuHttpClient *
su_http_client(void)
{
	SuHttpClient *c;

	if (the_client != NULL)
		return the_client;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return NULL;
	c = calloc(1, sizeof(SuHttpClient));
	if (c == NULL)
		return NULL;
	c->multi = curl_multi_init();
	c->epfd = epoll_create1(EPOLL_CLOEXEC);
	c->deadline_ms = -1;
	c->headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (c->headers)
		c->headers = curl_slist_append(c->headers, "Expect:");	/* no 100-continue */
	if (c->multi == NULL || c->headers == NULL || c->epfd < 0)
	{
		if (c->multi)
			curl_multi_cleanup(c->multi);
		if (c->epfd >= 0)
			close(c->epfd);
		curl_slist_free_all(c->headers);
		free(c);
		return NULL;
	}
	curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, 256L);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
	the_client = c;
	return c;
}

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	SuHttpRequest *req = arg;
	size_t		n = size * nmemb;

	if (req->response_len + n + 1 > req->response_cap)
	{
		size_t		cap = req->response_cap ? req->response_cap * 2 : 1024;
		char	   *p;

		while (cap < req->response_len + n + 1)
			cap *= 2;
		if (cap > SU_HTTP_MAX_RESPONSE)
			return 0;			/* too large: curl fails with WRITE_ERROR */
		p = realloc(req->response, cap);
		if (p == NULL)
			return 0;
		req->response = p;
		req->response_cap = cap;
	}
	memcpy(req->response + req->response_len, data, n);
	req->response_len += n;
	req->response[req->response_len] = '\0';
	return n;
}

void
su_http_host(const char *url, char *buf, size_t len)
{
	CURLU	   *u = curl_url();
	char	   *host = NULL;
	char	   *port = NULL;

	snprintf(buf, len, "(unknown host)");
	if (u == NULL)
		return;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
	{
		if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK)
			snprintf(buf, len, "%s:%s", host, port);
		else
			snprintf(buf, len, "%s", host);
	}
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
}

static void
fail(SuHttpRequest *req, int code, const char *fmt, const char *arg)
{
	req->curl_code = code;
	snprintf(req->error, sizeof(req->error), fmt, arg);
	req->done = true;
}

/* a transfer's connection is ready, or the transfer ended */
static void
connected(SuHttpRequest *req)
{
	if (req->connecting && req->client)
		req->client->connecting--;
	req->connecting = false;
}

#if LIBCURL_VERSION_NUM >= 0x075000
/*
 * libcurl: the connection is established (or reused); the request goes next.
 * libcurl sends a request again by itself, on a new connection, when a
 * reused one closed before any answer: WeChat may have had the first, and
 * the second would leave no audit row of its own.  It is refused: the
 * transfer ends as a transport failure, which the queue retries (one
 * request, one audit row).
 */
static int
prereq_cb(void *data, char *conn_primary_ip, char *conn_local_ip,
		  int conn_primary_port, int conn_local_port)
{
	SuHttpRequest *req = (SuHttpRequest *) data;

	(void) conn_primary_ip;
	(void) conn_local_ip;
	(void) conn_primary_port;
	(void) conn_local_port;
	connected(req);
	if (++req->sends > 1)
		return CURL_PREREQFUNC_ABORT;
	return CURL_PREREQFUNC_OK;
}
#endif

int
su_http_connecting(SuHttpClient *client)
{
	return client->connecting;
}

bool
su_http_start(SuHttpClient *client, SuHttpRequest *req)
{
	CURL	   *e;

	req->done = false;
	req->http_status = 0;
	req->curl_code = 0;
	req->error[0] = '\0';
	req->response = NULL;
	req->response_len = req->response_cap = 0;
	req->duration_ms = 0;
	req->next_done = NULL;
	req->sends = 0;

	if (client != NULL && client->n_spare > 0)
		e = client->spare[--client->n_spare];
	else if (client == NULL || (e = curl_easy_init()) == NULL)
	{
		fail(req, CURLE_FAILED_INIT, "%s", "could not initialize libcurl");
		return false;
	}
	req->easy = e;
	curl_easy_setopt(e, CURLOPT_URL, req->url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, req->allow_http ? "http,https" : "https");
	/* "" disables a proxy even where http_proxy/https_proxy are set */
	curl_easy_setopt(e, CURLOPT_PROXY, req->proxy ? req->proxy : "");
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->body_len);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, client->headers);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "shopping_upload/1.0");
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, req);
	curl_easy_setopt(e, CURLOPT_PRIVATE, req);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, req->connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req->timeout_ms);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	if (req->ca_file && req->ca_file[0])
		curl_easy_setopt(e, CURLOPT_CAINFO, req->ca_file);
#if LIBCURL_VERSION_NUM >= 0x075000
	curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, prereq_cb);
	curl_easy_setopt(e, CURLOPT_PREREQDATA, req);
#endif

	if (curl_multi_add_handle(client->multi, e) != CURLM_OK)
	{
		curl_easy_cleanup(e);
		req->easy = NULL;
		fail(req, CURLE_FAILED_INIT, "%s", "could not start the request");
		return false;
	}
	client->running++;
	req->client = client;
	req->connecting = true;
	client->connecting++;
	return true;
}

/* a sentence about a failed transfer; never the URL (it holds the token) */
static void
describe(SuHttpRequest *req, CURLcode rc, const char *detail, bool connected)
{
	char		host[256];
	long		limit;

	su_http_host(req->url, host, sizeof(host));
	switch (rc)
	{
		case CURLE_OPERATION_TIMEDOUT:
			limit = req->timeout_ms;
			if (!connected && req->connect_timeout_ms > 0 &&
				(limit <= 0 || req->connect_timeout_ms < limit))
				limit = req->connect_timeout_ms;
			snprintf(req->error, sizeof(req->error),
					 connected ? "timed out after %ld ms waiting for %s to answer"
					 : "timed out after %ld ms while connecting to %s",
					 limit, host);
			break;
		case CURLE_COULDNT_CONNECT:
			snprintf(req->error, sizeof(req->error),
					 "could not connect to %s: %s", host, detail);
			break;
		case CURLE_UNSUPPORTED_PROTOCOL:
			snprintf(req->error, sizeof(req->error),
					 "refused to send to %s over plain http: the API is reached over https only, "
					 "unless a superuser sets shopping_upload.allow_insecure_http", host);
			break;
		case CURLE_COULDNT_RESOLVE_HOST:
			snprintf(req->error, sizeof(req->error),
					 "could not resolve the host of %s", host);
			break;
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_PEER_FAILED_VERIFICATION:
		case CURLE_SSL_CACERT_BADFILE:
		case CURLE_SSL_CERTPROBLEM:
			snprintf(req->error, sizeof(req->error),
					 "TLS failure with %s: %s", host, detail);
			break;
		case CURLE_GOT_NOTHING:
		case CURLE_RECV_ERROR:
		case CURLE_SEND_ERROR:
		case CURLE_PARTIAL_FILE:
			snprintf(req->error, sizeof(req->error),
					 "the connection to %s was closed before a complete answer (%s)",
					 host, detail);
			break;
		default:
			snprintf(req->error, sizeof(req->error),
					 "request to %s failed: %s", host, detail);
			break;
	}
}

static void
finish(SuHttpClient *client, CURL *e, CURLcode rc)
{
	SuHttpRequest *req = NULL;
	curl_off_t	total_us = 0;
	curl_off_t	connect_us = 0;
	char		detail[CURL_ERROR_SIZE];

	curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **) &req);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &req->http_status);
	curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &total_us);
	curl_easy_getinfo(e, CURLINFO_CONNECT_TIME_T, &connect_us);
	req->duration_ms = total_us / 1000.0;
	req->curl_code = rc;
	if (rc != CURLE_OK && req->sends > 1)
	{
		char		host[256];

		su_http_host(req->url, host, sizeof(host));
		snprintf(req->error, sizeof(req->error),
				 "the connection to %s closed before an answer; the request may have arrived, "
				 "and is not sent again on a new connection (each request has its audit row)",
				 host);
	}
	else if (rc != CURLE_OK)
	{
		snprintf(detail, sizeof(detail), "%s", curl_easy_strerror(rc));
		describe(req, rc, detail, connect_us > 0);
	}
	curl_multi_remove_handle(client->multi, e);
	/* kept for the next request: its options are set again there */
	if (client->n_spare < SU_HTTP_SPARE)
	{
		curl_easy_reset(e);
		client->spare[client->n_spare++] = e;
	}
	else
		curl_easy_cleanup(e);
	req->easy = NULL;
	req->done = true;
	client->running--;
	connected(req);
	req->client = NULL;

	if (client->done_tail)
		client->done_tail->next_done = req;
	else
		client->done_head = req;
	client->done_tail = req;
}

void
su_http_drive(SuHttpClient *client)
{
	struct epoll_event ev[64];
	int			n;
	int			still;
	CURLMsg    *msg;
	int			left;

	do
	{
		n = epoll_wait(client->epfd, ev, lengthof_events(ev), 0);
		for (int i = 0; i < n; i++)
		{
			int			flags = 0;

			if (ev[i].events & EPOLLIN)
				flags |= CURL_CSELECT_IN;
			if (ev[i].events & EPOLLOUT)
				flags |= CURL_CSELECT_OUT;
			if (ev[i].events & (EPOLLERR | EPOLLHUP))
				flags |= CURL_CSELECT_ERR;
			curl_multi_socket_action(client->multi, ev[i].data.fd, flags, &still);
		}
	} while (n == lengthof_events(ev));
	if (client->deadline_ms >= 0 && monotonic_ms() >= client->deadline_ms)
	{
		client->deadline_ms = -1;
		curl_multi_socket_action(client->multi, CURL_SOCKET_TIMEOUT, 0, &still);
	}
	while ((msg = curl_multi_info_read(client->multi, &left)) != NULL)
		if (msg->msg == CURLMSG_DONE)
			finish(client, msg->easy_handle, msg->data.result);
}

int
su_http_socket(SuHttpClient *client)
{
	return client->epfd;
}

long
su_http_timeout(SuHttpClient *client)
{
	int64_t		left;

	if (client->deadline_ms < 0)
		return -1;
	left = client->deadline_ms - monotonic_ms();
	return left < 0 ? 0 : (long) left;
}

int
su_http_running(SuHttpClient *client)
{
	return client->running;
}

SuHttpRequest *
su_http_next_done(SuHttpClient *client)
{
	SuHttpRequest *req = client->done_head;

	if (req)
	{
		client->done_head = req->next_done;
		if (client->done_head == NULL)
			client->done_tail = NULL;
		req->next_done = NULL;
	}
	return req;
}

bool
su_http_has_done(SuHttpClient *client)
{
	return client->done_head != NULL;
}

void
su_http_forget(SuHttpClient *client, SuHttpRequest *req)
{
	SuHttpRequest *prev = NULL;

	for (SuHttpRequest *r = client->done_head; r; prev = r, r = r->next_done)
		if (r == req)
		{
			if (prev)
				prev->next_done = r->next_done;
			else
				client->done_head = r->next_done;
			if (client->done_tail == r)
				client->done_tail = prev;
			r->next_done = NULL;
			break;
		}
}

void
su_http_cancel(SuHttpClient *client, SuHttpRequest *req)
{
	if (req->easy)
	{
		curl_multi_remove_handle(client->multi, req->easy);
		curl_easy_cleanup(req->easy);
		req->easy = NULL;
		client->running--;
		connected(req);
		req->client = NULL;
	}
	su_http_forget(client, req);
	su_http_release(req);
}

char *
su_http_escape(const char *s)
{
	char	   *e = curl_easy_escape(NULL, s, 0);
	char	   *copy;

	if (e == NULL)
		return NULL;
	copy = strdup(e);
	curl_free(e);
	return copy;
}

void
su_http_release(SuHttpRequest *req)
{
	free(req->response);
	req->response = NULL;
	req->response_len = req->response_cap = 0;
}

void
su_http_settings(SuHttpRequest *req)
{
	req->connect_timeout_ms = su_connect_timeout_ms;
	req->timeout_ms = su_timeout_ms;
	req->ca_file = su_ca_file;
	req->allow_http = su_allow_insecure_http;
	req->proxy = su_proxy;
}

const char *
su_http_default_ca(void)
{
	curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);

#if LIBCURL_VERSION_NUM >= 0x074600	/* 7.70: cainfo and capath */
	if (info->cainfo != NULL && info->cainfo[0] != '\0')
		return info->cainfo;
	if (info->capath != NULL && info->capath[0] != '\0')
		return info->capath;
#else
	(void) info;
#endif
	return NULL;
}

bool
su_http_local_problem(const SuHttpRequest *req)
{
	switch (req->curl_code)
	{
		case CURLE_UNSUPPORTED_PROTOCOL:	/* plain http, not allowed */
		case CURLE_SSL_CACERT_BADFILE:	/* ca_file, or the system store */
			return true;
		default:
			return false;
	}
}
