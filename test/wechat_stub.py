#!/usr/bin/env python3
"""Stand-in for the WeChat API, for the shopping_upload tests.

Imitates the two calls the extension makes (see the spec, uploadShoppingInfo.md):

    POST /cgi-bin/stable_token             access tokens ("stable token" semantics)
    POST /user-order/orders?access_token=T  uploadShoppingInfo

plus a control API under /__stub/ so that tests written in any language (Perl
TAP, shell) can inject faults and inspect what the client sent.  Python 3
standard library only.

Command line
============

    python3 test/wechat_stub.py [--host 127.0.0.1] [--port 0] [--port-file FILE]
                                [--tls-cert CRT --tls-key KEY]
                                [--accounts appid:secret,appid2:secret2]
                                [--token-ttl 7200] [--log FILE] [--seed N]
                                [--verbose]

* Listens on 127.0.0.1 only (any other --host is refused).  --port 0 (the
  default) picks a free port.  Once the socket is listening, the port number
  is written to --port-file (atomically: temp file + rename; a test waits for
  the file to appear) and "listening on http://127.0.0.1:PORT" (https with
  TLS) is printed on stdout.  The port file is removed on a clean exit.
* --tls-cert/--tls-key: serve HTTPS with that certificate (test/make_test_ca.sh
  makes one for localhost/127.0.0.1).
* --accounts: the appid:secret pairs that stable_token accepts (default
  "wxtestappid:testsecret").  --token-ttl: token lifetime in seconds.
* --log FILE: also append every recorded request to FILE, one JSON object a
  line, flushed at once.
* --seed N: seed the random generator that drives "fraction" faults (for
  reproducible runs).  --verbose: log each request and each connection error
  to stderr (quiet by default).
* SIGTERM / SIGINT: stop serving and exit with status 0.

HTTP/1.1 with keep-alive; every answer carries Content-Length.  Request bodies
may use Content-Length or chunked transfer coding; "Expect: 100-continue" is
honoured.

The imitated API
================

POST /cgi-bin/stable_token  body {"grant_type":"client_credential",
                                  "appid":..., "secret":..., "force_refresh":bool}
    body not a JSON object        -> {"errcode":47001,"errmsg":"data format error rid: R"}
    grant_type not client_credential
                                  -> {"errcode":40002,"errmsg":"invalid grant_type rid: R"}
    unknown appid or wrong secret -> {"errcode":40125,"errmsg":"invalid appsecret rid: R"}
    otherwise                     -> {"access_token":"<token>","expires_in":SECONDS}
    While the appid's current token is valid and force_refresh is not true,
    the SAME token is returned with its remaining lifetime (rounded up).
    force_refresh:true, or an expired/invalidated token, issues a new token;
    the previous token of that appid stops working at once.  Tokens are
    128+ characters of [A-Za-z0-9_-] (URL-safe, no escaping needed).

POST /user-order/orders?access_token=T
    T not a currently valid token of some appid
        -> {"errcode":40001,"errmsg":"invalid credential, access_token is invalid
            or not latest rid: R"}
    body not a JSON object (or not UTF-8)
        -> {"errcode":47001,"errmsg":"data format error rid: R"}
    otherwise -> {"errcode":0,"errmsg":"ok"}
    The payload itself is not validated: the extension's validator owns that.

Any other method or path -> HTTP 404 with {"error":"not found","method":M,"path":P}
(a JSON object without errcode).

Every non-zero errcode's errmsg ends with " rid: R", R being WeChat-like random
hex in three dash-separated groups, e.g. "rid: 6478a1b2-1c2d3e4f-5a6b7c8d".
API answers are HTTP 200 with Content-Type application/json unless a fault
says otherwise.

Recording
=========

Every request to a non-control path (stable_token, uploads, rejected ones,
404s) is recorded before it is answered, so a test that has its answer (or
saw the connection drop) always finds the record.  A record:

    {"seq": 1,                       # 1, 2, ... in arrival order; restarts at reset
     "time": 1716190175.123,         # unix time of arrival
     "method": "POST",
     "path": "/user-order/orders",   # without the query
     "target": "/user-order/orders?access_token=...",   # as sent
     "query": {"access_token": "..."},  # a repeated key gives a list of strings
     "headers": {"content-type": "application/json", ...},  # names lowercased;
                                                            # repeats joined by ", "
     "body": "{...}",                # raw body as text (UTF-8, invalid bytes
                                     # replaced by U+FFFD)
     "fault": "errcode:45011",       # the fault kind applied, or null
     "errcode": 45011,               # errcode answered, null if none
     "answer": {"status": 200, "json": {...}}      # JSON answers
            or {"status": 500, "text": "<html>..."}  # other answers (a body
                                                     # that is not UTF-8, from
                                                     # "badutf8", with invalid
                                                     # bytes as U+FFFD)
            or null                                  # fault "drop"
    }

Control API (JSON in, JSON out; never recorded)
===============================================

GET  /__stub/requests[?path=P][&since=SEQ]
        The records, in seq order; only those for path P / with seq > SEQ.
GET  /__stub/stats
        {"requests": N,                         # records since the last reset
         "by_path": {"/user-order/orders": N, ...},
         "by_errcode": {"0": N, "40001": N, ...},   # errcodes answered
         "by_status": {"200": N, "500": N, "drop": N},
         "faults_applied": {"errcode:-1": N, ...},
         "tokens_issued": N,                    # new tokens handed out
         "force_refresh": N,                    # accepted stable_token calls
                                                # with force_refresh:true
         "faults_pending": N}
POST /__stub/reset          body optional: {"tokens": true}
        Clears records, pending faults and all counters (seq restarts at 1).
        Tokens survive unless "tokens" is true.  -> {"ok": true}
POST /__stub/fault          body {"kind": K, "count": N, "fraction": F,
                                  "path": P, "delay_ms": MS}
        Queues a fault for requests to path P (default "/user-order/orders";
        "/cgi-bin/stable_token" or any other path; "*" = every non-control
        path).  Kinds K:
          "errcode:-1"   answer {"errcode":-1,"errmsg":"system error rid: R"}
          "errcode:NNN"  any integer, answered with a plausible errmsg + rid
                         (40001, 40014, 42001 also invalidate the request's
                         access_token, so the client's next stable_token call
                         without force_refresh gets a NEW token)
          "http500"      HTTP 500 with an HTML body
          "http502"      HTTP 502 with an HTML body
          "notjson"      HTTP 200, Content-Type text/html, body "<html>oops</html>"
          "delay"        sleep delay_ms (default 1000), then answer normally
          "drop"         close the connection without any response
          "badutf8"      HTTP 200, application/json, a body that is not UTF-8:
                         the raw bytes {"errcode":-1,"errmsg":"bad \xff\xfe bytes"}
          "badutf8:NNN"  errcode NNN with an errmsg holding the raw byte 0xff:
                         {"errcode":NNN,"errmsg":"<plausible errmsg> \xff rid: R"}
                         (40001, 40014, 42001 invalidate the token as above)
          "long_token"   (meant for /cgi-bin/stable_token) HTTP 200
          "long_token:N" {"access_token":"<N characters>","expires_in":7200}:
                         N (default 2000, 1..1000000) URL-safe characters, a
                         token that is never valid
          "expires_in:J" (meant for /cgi-bin/stable_token) answers the request
                         as usual, but a token's expires_in is the JSON text J
                         written as given: "expires_in:\"7200\"" (a string),
                         "expires_in:-5", "expires_in:1e30".  J must be JSON.
                         The token is issued and valid as usual; a refused
                         request gets its usual errcode answer (on another
                         path: a token "stub_not_a_token", never valid)
          "no_token"     (meant for /cgi-bin/stable_token) {"errcode":0} and
                         nothing else: no access_token
          "expire_tokens"  not queued: invalidates every token at once
                           -> {"ok": true, "expired": N}
        count: the fault applies to the next N matching requests (default 1;
        0 = every matching request until cleared).  fraction (0..1): instead
        of a count, applies to that random fraction of matching requests,
        until cleared.  delay_ms is honoured by every kind (the stub sleeps
        that long before answering / dropping), which allows e.g. a slow 500.
        Faults queue in order: for each request the queue is walked from the
        oldest entry; the first fault whose path matches and that fires
        (count faults always fire, fraction faults fire with probability F)
        is applied, and its count is used up.
        -> {"ok": true, "fault": {"id":..,"kind":..,"path":..,"count":..,
                                   "fraction":..,"delay_ms":..,"applied":0}}
        Invalid input -> HTTP 400 {"error": "..."}.
GET  /__stub/faults         the pending faults (same shape as above)
POST /__stub/faults/clear   drops every pending fault -> {"ok": true, "cleared": N}
GET  /__stub/tokens         {"APPID": {"access_token": T, "expires_in": S}, ...}
                            the currently valid token of each appid

Unknown /__stub/ paths answer 404 {"error": ...}.

Shell example:
    port=$(cat "$dir/stub.port")
    curl -s -d '{"kind":"errcode:45011","count":2}' \\
         http://127.0.0.1:$port/__stub/fault
"""

import argparse
import http.server
import json
import math
import os
import random
import secrets
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse

UPLOAD_PATH = "/user-order/orders"
TOKEN_PATH = "/cgi-bin/stable_token"
CONTROL_PREFIX = "/__stub/"

MAX_BODY = 16 * 1024 * 1024     # larger bodies are refused with HTTP 413
CONNECTION_TIMEOUT = 300        # seconds a keep-alive connection may idle
HANDSHAKE_TIMEOUT = 10          # seconds for a TLS handshake

# errmsg for errcodes the stub may answer (the rid is appended).
ERRMSGS = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40013: "invalid appid",
    40014: "invalid access_token",
    40125: "invalid appsecret",
    41002: "appid missing",
    42001: "access_token expired",
    44002: "empty post data",
    45002: "content size out of limit",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit  mustslower  retry next minute",
    47001: "data format error",
    48001: "api unauthorized",
    61007: "api is unauthorized to component",
    268435461: "param error",
}
# Errcodes that, answered by a fault, also invalidate the request's token.
TOKEN_KILLING_ERRCODES = {40001, 40014, 42001}

SIMPLE_FAULTS = {"http500", "http502", "notjson", "delay", "drop",
                 "badutf8", "long_token", "no_token"}
DEFAULT_DELAY_MS = 1000
DEFAULT_LONG_TOKEN = 2000
MAX_LONG_TOKEN = 1000000
# the raw answer of fault "badutf8": not UTF-8
BADUTF8_BODY = b'{"errcode":-1,"errmsg":"bad \xff\xfe bytes"}'

HTML_500 = ("<html><head><title>500 Internal Server Error</title></head>"
            "<body><h1>500 Internal Server Error</h1></body></html>")
HTML_502 = ("<html><head><title>502 Bad Gateway</title></head>"
            "<body><h1>502 Bad Gateway</h1></body></html>")


def new_rid():
    """A WeChat-like request id: three groups of 8 hex digits."""
    return "-".join(secrets.token_hex(4) for _ in range(3))


def wechat_error(errcode, message=None):
    """The JSON object WeChat answers for a non-zero errcode."""
    text = message or ERRMSGS.get(errcode, "stub error %d" % errcode)
    return {"errcode": errcode, "errmsg": "%s rid: %s" % (text, new_rid())}


class Answer:
    """What the stub answers to one API request (drop = no answer at all)."""

    def __init__(self, status=200, json_obj=None, text=None,
                 ctype="text/html; charset=utf-8", drop=False, raw=None,
                 errcode=None):
        self.status = status
        self.json = json_obj
        self.text = text
        self.ctype = ctype
        self.drop = drop
        self.raw = raw              # bytes sent as they are (application/json)
        self._errcode = errcode     # for a raw body: the errcode it carries
        if raw is not None:
            try:
                self.json = json.loads(raw.decode("utf-8"))
            except ValueError:      # not UTF-8, or not JSON: recorded as text
                self.text = raw.decode("utf-8", errors="replace")

    @property
    def errcode(self):
        if self._errcode is not None:
            return self._errcode
        if isinstance(self.json, dict) and isinstance(self.json.get("errcode"), int) \
                and not isinstance(self.json.get("errcode"), bool):
            return self.json["errcode"]
        return None

    def for_record(self):
        if self.drop:
            return None
        if self.json is not None:
            return {"status": self.status, "json": self.json}
        return {"status": self.status, "text": self.text}

    def encode(self):
        """(content type, body bytes)."""
        if self.raw is not None:
            return "application/json; charset=utf-8", self.raw
        if self.json is not None:
            return ("application/json; charset=utf-8",
                    json.dumps(self.json, ensure_ascii=False).encode("utf-8"))
        return self.ctype, (self.text or "").encode("utf-8")


class ControlError(Exception):
    """Bad input to a control endpoint: answered with HTTP 400."""


class StubState:
    """Accounts, tokens, faults, records and counters; shared by all threads."""

    def __init__(self, accounts, token_ttl, log_file=None, seed=None):
        self.lock = threading.Lock()
        self.accounts = dict(accounts)
        self.token_ttl = token_ttl
        self.log_file = log_file
        self.rng = random.Random(seed)
        self.tokens = {}        # token -> (appid, monotonic expiry)
        self.current = {}       # appid -> its current token
        self.fault_ids = 0
        self._clear_locked()

    def _clear_locked(self):
        self.generation = getattr(self, "generation", 0) + 1
        self.seq = 0
        self.records = []
        self.faults = []
        self.by_path = {}
        self.by_errcode = {}
        self.by_status = {}
        self.faults_applied = {}
        self.tokens_issued = 0
        self.force_refresh = 0

    # ---- tokens (callers hold the lock) ---------------------------------

    def _token_remaining(self, token):
        """Seconds of life left for token, or None if it is not valid."""
        entry = self.tokens.get(token)
        if entry is None:
            return None
        remaining = entry[1] - time.monotonic()
        if remaining <= 0:
            self._invalidate(token)
            return None
        return remaining

    def _invalidate(self, token):
        entry = self.tokens.pop(token, None)
        if entry is not None and self.current.get(entry[0]) == token:
            del self.current[entry[0]]

    def _issue(self, appid):
        old = self.current.get(appid)
        if old is not None:
            self._invalidate(old)
        token = "stub_" + secrets.token_urlsafe(96)
        self.tokens[token] = (appid, time.monotonic() + self.token_ttl)
        self.current[appid] = token
        self.tokens_issued += 1
        return token

    def token_valid(self, token):
        with self.lock:
            return token is not None and self._token_remaining(token) is not None

    def invalidate_token(self, token):
        with self.lock:
            self._invalidate(token)

    def expire_all_tokens(self):
        with self.lock:
            n = len(self.tokens)
            self.tokens.clear()
            self.current.clear()
            return n

    def stable_token(self, appid, force_refresh):
        """(token, expires_in) for a caller already authenticated."""
        with self.lock:
            if force_refresh:
                self.force_refresh += 1
            token = self.current.get(appid)
            remaining = None if token is None else self._token_remaining(token)
            if force_refresh or remaining is None:
                token = self._issue(appid)
                remaining = self.token_ttl
            return token, max(1, math.ceil(remaining))

    def current_tokens(self):
        with self.lock:
            out = {}
            for appid, token in list(self.current.items()):
                remaining = self._token_remaining(token)
                if remaining is not None:
                    out[appid] = {"access_token": token,
                                  "expires_in": max(1, math.ceil(remaining))}
            return out

    # ---- faults ------------------------------------------------------------

    def add_fault(self, spec):
        """Validate a fault spec (a dict); queue it, or apply expire_tokens."""
        if not isinstance(spec, dict):
            raise ControlError("fault must be a JSON object")
        unknown = set(spec) - {"kind", "count", "fraction", "path", "delay_ms"}
        if unknown:
            raise ControlError("unknown fault fields: %s" % ", ".join(sorted(unknown)))
        kind = spec.get("kind")
        if not isinstance(kind, str):
            raise ControlError("fault needs a string 'kind'")
        if kind == "expire_tokens":
            return {"ok": True, "expired": self.expire_all_tokens()}
        if kind.startswith("errcode:"):
            try:
                code = int(kind[len("errcode:"):], 10)
            except ValueError:
                raise ControlError("errcode fault needs an integer: %r" % kind)
            kind = "errcode:%d" % code
        elif kind.startswith("badutf8:"):
            try:
                code = int(kind[len("badutf8:"):], 10)
            except ValueError:
                raise ControlError("badutf8 fault needs an integer: %r" % kind)
            kind = "badutf8:%d" % code
        elif kind.startswith("long_token:"):
            try:
                n = int(kind[len("long_token:"):], 10)
            except ValueError:
                raise ControlError("long_token fault needs an integer: %r" % kind)
            if not 1 <= n <= MAX_LONG_TOKEN:
                raise ControlError("long_token length must be 1..%d" % MAX_LONG_TOKEN)
            kind = "long_token:%d" % n
        elif kind.startswith("expires_in:"):
            try:
                json.loads(kind[len("expires_in:"):])
            except ValueError:
                raise ControlError("expires_in fault needs JSON text: %r" % kind)
        elif kind not in SIMPLE_FAULTS:
            raise ControlError("unknown fault kind %r" % kind)

        count = spec.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ControlError("'count' must be an integer >= 0")
        fraction = spec.get("fraction")
        if fraction is not None:
            if (isinstance(fraction, bool) or not isinstance(fraction, (int, float))
                    or not 0 <= fraction <= 1):
                raise ControlError("'fraction' must be a number in 0..1")
            fraction = float(fraction)
        path = spec.get("path", UPLOAD_PATH)
        if not isinstance(path, str) or not (path == "*" or path.startswith("/")):
            raise ControlError("'path' must be \"*\" or start with /")
        if path.startswith(CONTROL_PREFIX):
            raise ControlError("control paths cannot be faulted")
        default_delay = DEFAULT_DELAY_MS if kind == "delay" else 0
        delay_ms = spec.get("delay_ms", default_delay)
        if (isinstance(delay_ms, bool) or not isinstance(delay_ms, (int, float))
                or delay_ms < 0):
            raise ControlError("'delay_ms' must be a number >= 0")

        with self.lock:
            self.fault_ids += 1
            fault = {"id": self.fault_ids, "kind": kind, "path": path,
                     "count": count, "fraction": fraction,
                     "delay_ms": delay_ms, "applied": 0}
            self.faults.append(fault)
            return {"ok": True, "fault": dict(fault)}

    def take_fault(self, path):
        """The fault to apply to a request for path, or None (uses it up)."""
        with self.lock:
            for fault in self.faults:
                if fault["path"] not in ("*", path):
                    continue
                if fault["fraction"] is not None:
                    if self.rng.random() >= fault["fraction"]:
                        continue
                elif fault["count"] > 0:
                    fault["count"] -= 1
                    if fault["count"] == 0:
                        self.faults.remove(fault)
                fault["applied"] += 1
                return dict(fault)
            return None

    def list_faults(self):
        with self.lock:
            return [dict(f) for f in self.faults]

    def clear_faults(self):
        with self.lock:
            n = len(self.faults)
            self.faults = []
            return n

    # ---- records and counters -------------------------------------------

    def begin_request(self):
        """(seq, generation) for an arriving request."""
        with self.lock:
            self.seq += 1
            return self.seq, self.generation

    def record(self, rec, generation):
        line = json.dumps(rec, ensure_ascii=False)
        with self.lock:
            if generation == self.generation:   # not from before a reset
                self.records.append(rec)
                self._count(self.by_path, rec["path"])
                if rec["errcode"] is not None:
                    self._count(self.by_errcode, str(rec["errcode"]))
                answer = rec["answer"]
                self._count(self.by_status,
                            "drop" if answer is None else str(answer["status"]))
                if rec["fault"] is not None:
                    self._count(self.faults_applied, rec["fault"])
            if self.log_file is not None:
                try:
                    self.log_file.write(line + "\n")
                    self.log_file.flush()
                except OSError:
                    pass

    @staticmethod
    def _count(table, key):
        table[key] = table.get(key, 0) + 1

    def list_records(self, path=None, since=0):
        with self.lock:
            recs = [r for r in self.records
                    if (path is None or r["path"] == path) and r["seq"] > since]
        return sorted(recs, key=lambda r: r["seq"])

    def stats(self):
        with self.lock:
            return {"requests": len(self.records),
                    "by_path": dict(self.by_path),
                    "by_errcode": dict(self.by_errcode),
                    "by_status": dict(self.by_status),
                    "faults_applied": dict(self.faults_applied),
                    "tokens_issued": self.tokens_issued,
                    "force_refresh": self.force_refresh,
                    "faults_pending": len(self.faults)}

    def reset(self, tokens=False):
        with self.lock:
            self._clear_locked()
            if tokens:
                self.tokens.clear()
                self.current.clear()


class BadRequest(Exception):
    """A request that cannot be read: answered with (status, message), then close."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class Handler(http.server.BaseHTTPRequestHandler):
    """One connection; requests on it are served in turn (keep-alive)."""

    protocol_version = "HTTP/1.1"
    timeout = CONNECTION_TIMEOUT

    def version_string(self):
        return "wechat-stub/1.0"

    # ---- plumbing --------------------------------------------------------------

    def log_message(self, format, *args):
        if self.server.verbose:
            sys.stderr.write("wechat_stub: %s - %s\n"
                             % (self.address_string(), format % args))

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError, ssl.SSLError, OSError) as exc:
            # The client went away mid-request: nothing to answer.
            self.close_connection = True
            self.log_message("connection error: %r", exc)

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionResetError("EOF in chunked body")
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise BadRequest(400, "bad chunk size")
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass                     # skip trailers
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    raise BadRequest(413, "body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()            # CRLF after the chunk
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            length = int(length)
        except ValueError:
            raise BadRequest(400, "bad Content-Length")
        if length < 0:
            raise BadRequest(400, "bad Content-Length")
        if length > MAX_BODY:
            raise BadRequest(413, "body too large")
        body = self.rfile.read(length)
        if len(body) < length:
            raise ConnectionResetError("EOF in body")
        return body

    def _send(self, status, ctype, body):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _send_json(self, status, obj):
        self._send(status, "application/json; charset=utf-8",
                   json.dumps(obj, ensure_ascii=False).encode("utf-8"))

    def _drop(self):
        """Close the connection without answering."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ---- dispatch ----------------------------------------------------------

    def _handle(self):
        state = self.server.state
        arrival = time.time()
        try:
            body = self._read_body()
        except BadRequest as exc:
            self.close_connection = True
            self._send_json(exc.status, {"error": str(exc)})
            return
        target = urllib.parse.urlsplit(self.path)
        path = target.path
        if path.startswith(CONTROL_PREFIX):
            self._control(path, target.query, body)
            return

        seq, generation = state.begin_request()
        fault = state.take_fault(path)
        if fault is not None and fault["delay_ms"]:
            time.sleep(fault["delay_ms"] / 1000.0)
        query = self._query(target.query)
        answer = self._api_answer(path, query, body, fault)
        headers = {}
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = value if name not in headers else headers[name] + ", " + value
        state.record({"seq": seq, "time": arrival, "method": self.command,
                      "path": path, "target": self.path, "query": query,
                      "headers": headers,
                      "body": body.decode("utf-8", errors="replace"),
                      "fault": fault["kind"] if fault else None,
                      "errcode": answer.errcode, "answer": answer.for_record()},
                     generation)
        if answer.drop:
            self._drop()
            return
        ctype, data = answer.encode()
        self._send(answer.status, ctype, data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    @staticmethod
    def _query(query_string):
        out = {}
        for key, values in urllib.parse.parse_qs(query_string,
                                                 keep_blank_values=True).items():
            out[key] = values[0] if len(values) == 1 else values
        return out

    # ---- the imitated API ----------------------------------------------------

    def _api_answer(self, path, query, body, fault):
        """The Answer for an API request, faults applied."""
        state = self.server.state
        token = query.get("access_token")
        if isinstance(token, list):
            token = token[0]
        if fault is not None:
            kind = fault["kind"]
            if kind.startswith("errcode:"):
                code = int(kind[len("errcode:"):])
                if code in TOKEN_KILLING_ERRCODES and token is not None:
                    state.invalidate_token(token)
                return Answer(json_obj=wechat_error(code))
            if kind == "http500":
                return Answer(500, text=HTML_500)
            if kind == "http502":
                return Answer(502, text=HTML_502)
            if kind == "notjson":
                return Answer(200, text="<html>oops</html>")
            if kind == "drop":
                return Answer(drop=True)
            if kind == "badutf8":
                return Answer(raw=BADUTF8_BODY, errcode=-1)
            if kind.startswith("badutf8:"):
                code = int(kind[len("badutf8:"):])
                if code in TOKEN_KILLING_ERRCODES and token is not None:
                    state.invalidate_token(token)
                msg = ERRMSGS.get(code, "stub error %d" % code)
                raw = (json.dumps({"errcode": code})[:-1]
                       + ',"errmsg":"%s ' % msg.replace('"', "'")).encode("utf-8") \
                    + b"\xff" + (' rid: %s"}' % new_rid()).encode("utf-8")
                return Answer(raw=raw, errcode=code)
            if kind == "long_token" or kind.startswith("long_token:"):
                n = int(kind.partition(":")[2] or DEFAULT_LONG_TOKEN)
                tok = (secrets.token_urlsafe(n) * 2)[:n]
                return Answer(json_obj={"access_token": tok, "expires_in": 7200})
            if kind == "no_token":
                return Answer(raw=b'{"errcode":0}')
            if kind.startswith("expires_in:"):
                answer = (self._stable_token(body)
                          if self.command == "POST" and path == TOKEN_PATH
                          else {"access_token": "stub_not_a_token"})
                if "access_token" not in answer:
                    return Answer(json_obj=answer)
                raw = ('{"access_token":%s,"expires_in":%s}'
                       % (json.dumps(answer["access_token"]),
                          kind[len("expires_in:"):])).encode("utf-8")
                return Answer(raw=raw)
            # "delay": already slept; answer normally.

        if self.command == "POST" and path == TOKEN_PATH:
            return Answer(json_obj=self._stable_token(body))
        if self.command == "POST" and path == UPLOAD_PATH:
            if not state.token_valid(token):
                return Answer(json_obj=wechat_error(40001))
            if not isinstance(self._json_body(body), dict):
                return Answer(json_obj=wechat_error(47001))
            return Answer(json_obj={"errcode": 0, "errmsg": "ok"})
        return Answer(404, json_obj={"error": "not found", "method": self.command,
                                     "path": path})

    @staticmethod
    def _json_body(body):
        """The decoded JSON body, or None if it is not JSON in UTF-8."""
        try:
            return json.loads(body.decode("utf-8"))
        except ValueError:          # UnicodeDecodeError and JSONDecodeError
            return None

    def _stable_token(self, body):
        state = self.server.state
        data = self._json_body(body)
        if not isinstance(data, dict):
            return wechat_error(47001)
        if data.get("grant_type") != "client_credential":
            return wechat_error(40002)
        appid, secret = data.get("appid"), data.get("secret")
        if (not isinstance(appid, str) or not isinstance(secret, str)
                or state.accounts.get(appid) != secret):
            return wechat_error(40125)
        token, expires_in = state.stable_token(appid, data.get("force_refresh") is True)
        return {"access_token": token, "expires_in": expires_in}

    # ---- control API -----------------------------------------------------------

    def _control(self, path, query_string, body):
        state = self.server.state
        method = self.command
        try:
            data = None
            if method == "POST" and body.strip():
                data = self._json_body(body)
                if data is None:
                    raise ControlError("body is not JSON")
            if method == "GET" and path == "/__stub/requests":
                query = urllib.parse.parse_qs(query_string)
                try:
                    since = int(query.get("since", ["0"])[0])
                except ValueError:
                    raise ControlError("'since' must be an integer")
                result = state.list_records(query.get("path", [None])[0], since)
            elif method == "GET" and path == "/__stub/stats":
                result = state.stats()
            elif method == "GET" and path == "/__stub/faults":
                result = state.list_faults()
            elif method == "GET" and path == "/__stub/tokens":
                result = state.current_tokens()
            elif method == "POST" and path == "/__stub/reset":
                if data is not None and not isinstance(data, dict):
                    raise ControlError("reset takes a JSON object")
                state.reset(tokens=bool(data and data.get("tokens") is True))
                result = {"ok": True}
            elif method == "POST" and path == "/__stub/fault":
                result = state.add_fault(data)
            elif method == "POST" and path == "/__stub/faults/clear":
                result = {"ok": True, "cleared": state.clear_faults()}
            else:
                self._send_json(404, {"error": "no control endpoint %s %s"
                                      % (method, path)})
                return
        except ControlError as exc:
            self._send_json(400, {"error": str(exc)})
            return
        self._send_json(200, result)


class StubServer(http.server.ThreadingHTTPServer):
    """Threaded server; with a TLS context, each connection's handshake runs in
    its own thread, so a client that never completes one blocks nobody."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address, state, ssl_context=None, verbose=False):
        self.state = state
        self.ssl_context = ssl_context
        self.verbose = verbose
        super().__init__(address, Handler)

    def finish_request(self, request, client_address):
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        try:
            request.settimeout(HANDSHAKE_TIMEOUT)
            conn = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            if self.verbose:
                sys.stderr.write("wechat_stub: TLS handshake failed: %r\n" % exc)
            return
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def handle_error(self, request, client_address):
        # A client dropping its connection is routine here: stay quiet.
        if self.verbose:
            super().handle_error(request, client_address)


def parse_accounts(text):
    accounts = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        appid, sep, secret = item.partition(":")
        if not sep or not appid or not secret:
            raise ValueError("account %r is not appid:secret" % item)
        accounts[appid] = secret
    if not accounts:
        raise ValueError("no accounts given")
    return accounts


def write_port_file(path, port):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def remove_port_file(path, port):
    """Remove the port file unless another stub has written it since."""
    try:
        with open(path) as f:
            if f.read().strip() == str(port):
                os.unlink(path)
    except OSError:
        pass


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Stand-in WeChat API server for the shopping_upload tests "
                    "(see the module docstring for the control API).")
    parser.add_argument("--host", default="127.0.0.1",
                        help="must be 127.0.0.1 (the only address served)")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    parser.add_argument("--port-file", help="write the chosen port here")
    parser.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", help="private key of --tls-cert (PEM)")
    parser.add_argument("--accounts", default="wxtestappid:testsecret",
                        help="appid:secret[,appid:secret...]")
    parser.add_argument("--token-ttl", type=int, default=7200,
                        help="access token lifetime in seconds")
    parser.add_argument("--log", help="append each recorded request to FILE (JSON lines)")
    parser.add_argument("--seed", type=int, help="seed for fraction faults")
    parser.add_argument("--verbose", action="store_true",
                        help="log requests and connection errors to stderr")
    args = parser.parse_args(argv)

    if args.host != "127.0.0.1":
        parser.error("refusing --host %s: the stub binds 127.0.0.1 only" % args.host)
    if not 0 <= args.port <= 65535:
        parser.error("--port must be 0..65535")
    if args.token_ttl < 1:
        parser.error("--token-ttl must be at least 1")
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    try:
        accounts = parse_accounts(args.accounts)
    except ValueError as exc:
        parser.error("--accounts: %s" % exc)

    try:
        ssl_context = None
        if args.tls_cert:
            ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ssl_context.load_cert_chain(args.tls_cert, args.tls_key)
            ssl_context.set_alpn_protocols(["http/1.1"])
        log_file = open(args.log, "a", encoding="utf-8") if args.log else None
        state = StubState(accounts, args.token_ttl, log_file, args.seed)
        server = StubServer((args.host, args.port), state, ssl_context, args.verbose)
    except (OSError, ssl.SSLError) as exc:
        sys.stderr.write("wechat_stub: %s\n" % exc)
        return 1
    port = server.server_address[1]

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    if args.port_file:
        write_port_file(args.port_file, port)
    try:
        print("listening on %s://127.0.0.1:%d"
              % ("https" if ssl_context else "http", port), flush=True)
    except OSError:
        pass                    # stdout closed: the port file is enough

    serving = threading.Thread(target=server.serve_forever,
                               kwargs={"poll_interval": 0.2}, daemon=True)
    serving.start()
    while not stop.wait(1.0):
        pass
    server.shutdown()
    server.server_close()
    if args.port_file:
        remove_port_file(args.port_file, port)
    if log_file is not None:
        log_file.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
