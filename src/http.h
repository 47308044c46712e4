/*-------------------------------------------------------------------------
 *
 * http.h
 *		HTTP(S) POSTs with libcurl: one at a time or many in flight.
 *
 * A client is a libcurl multi handle with its connection cache (keep-alive)
 * and lives as long as the process.  Requests are added to it and moved on
 * by su_http_drive(), which never blocks; between calls the caller waits
 * until su_http_socket() is readable or su_http_timeout() has passed (with
 * its latch, in PostgreSQL).  Nothing here knows about PostgreSQL.
 *
 * libcurl allocates with malloc: connections outlive memory contexts.  The
 * response body is malloc'd too (a write callback must not ereport), and is
 * released by su_http_release().
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_HTTP_H
#define SU_HTTP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct SuHttpClient SuHttpClient;

typedef struct SuHttpRequest
{
	/* set by the caller; must stay valid until the request is done */
	const char *url;
	const char *body;
	size_t		body_len;
	long		connect_timeout_ms;
	long		timeout_ms;
	const char *ca_file;		/* NULL or "": the system's CA bundle */
	bool		allow_http;		/* false: https:// only */
	const char *proxy;			/* NULL or "": none, whatever the environment says */
	void	   *user;			/* the caller's */

	/* results, valid once done */
	bool		done;
	long		http_status;	/* 0 when no answer came */
	int			curl_code;		/* CURLcode; 0 when the transfer worked */
	char		error[320];		/* what failed, for people; "" if nothing */
	char	   *response;		/* malloc'd, NUL-terminated; NULL if none */
	size_t		response_len;
	double		duration_ms;

	/* private */
	void	   *easy;
	size_t		response_cap;
	struct SuHttpRequest *next_done;
	SuHttpClient *client;		/* while started */
	bool		connecting;		/* started, its connection not ready yet */
	int			sends;			/* times libcurl was about to send it */
} SuHttpRequest;

/* The process's client, created on first use (NULL if libcurl fails). */
extern SuHttpClient *su_http_client(void);

/* Starts a request; false (with error set and done) if it could not start. */
extern bool su_http_start(SuHttpClient *client, SuHttpRequest *req);

/*
 * Moves the transfers on as far as they go without waiting.  Finished
 * requests are queued for su_http_next_done().
 */
extern void su_http_drive(SuHttpClient *client);

/* A descriptor that is readable when su_http_drive() has work to do. */
extern int	su_http_socket(SuHttpClient *client);

/* Milliseconds until su_http_drive() must run anyway; -1: no deadline. */
extern long su_http_timeout(SuHttpClient *client);

/* Requests started and not yet finished. */
extern int	su_http_running(SuHttpClient *client);

/*
 * Started transfers whose connection is not ready yet (connecting, a TLS
 * handshake): they move only when their sockets are watched.  With a
 * libcurl older than 7.80, every unfinished transfer counts.
 */
extern int	su_http_connecting(SuHttpClient *client);

/* The next finished request, or NULL. */
extern SuHttpRequest *su_http_next_done(SuHttpClient *client);

/*
 * Are finished requests waiting for su_http_next_done()?  A request waited
 * for with su_http_perform() moves the client's other transfers on too: an
 * answer it finished waits there, in no socket.
 */
extern bool su_http_has_done(SuHttpClient *client);

/* Abandons a running request (its connection is closed). */
extern void su_http_cancel(SuHttpClient *client, SuHttpRequest *req);

/* Takes a finished request off the finished list (su_http_next_done). */
extern void su_http_forget(SuHttpClient *client, SuHttpRequest *req);

/* URL-encodes s into a malloc'd string (free() it), or NULL. */
extern char *su_http_escape(const char *s);

/* Frees a finished or cancelled request's response and handle. */
extern void su_http_release(SuHttpRequest *req);

/* The settings' part of a request: timeouts, CA, https only, proxy. */
extern void su_http_settings(SuHttpRequest *req);

/*
 * The CA bundle (or folder) libcurl verifies servers with when
 * shopping_upload.ca_file is not set; NULL when it does not say.
 */
extern const char *su_http_default_ca(void);

/*
 * Did a finished request fail because of this server's own configuration
 * (plain http refused, a CA file that cannot be used), not the network's?
 */
extern bool su_http_local_problem(const SuHttpRequest *req);

/* host[:port] of a URL, written into buf (for messages: never the query) */
extern void su_http_host(const char *url, char *buf, size_t len);

#endif							/* SU_HTTP_H */
