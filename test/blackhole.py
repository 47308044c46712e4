#!/usr/bin/env python3
"""A TCP port on 127.0.0.1 that never completes a connection.

    python3 test/blackhole.py PORT_FILE

Listens with a backlog of 0 and fills its own accept queue, so that the
kernel drops every further SYN: a client's connect() hangs until its own
connect timeout.  Writes the port to PORT_FILE; runs until killed.
"""
import os
import signal
import socket
import sys
import time

server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.bind(("127.0.0.1", 0))
server.listen(0)
port = server.getsockname()[1]

fillers = []
for _ in range(4):
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.setblocking(False)
    try:
        c.connect(("127.0.0.1", port))
    except (BlockingIOError, OSError):
        pass
    fillers.append(c)
time.sleep(0.2)

tmp = sys.argv[1] + ".tmp"
with open(tmp, "w") as f:
    f.write(str(port))
os.rename(tmp, sys.argv[1])
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(3600)
