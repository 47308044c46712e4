#!/usr/bin/env python3
"""The rooms of src/ and the arrows between them: a check, no server needed.

A room is a base name: src/NAME.c with src/NAME.h (and NAME_internal.h,
the declarations its sibling rooms share).  Room A uses room B when
A's .c or .h includes "B.h" (B's declarations are only reached that way).
Checked, each a case of the "N passed, N failed" line:
  - no circle: no two rooms use each other, directly or around a loop;
  - the kinds of call: SU_KIND_ is named in kindlist.h (the table's rows),
    types.h (the enum made from them) and at most the SQL functions' entry
    points in functions.c (one lookup each), nowhere else;
  - the queue's tables are written by the queue only: no file but the
    queue's rooms (queue.c, queue_commit.c, queue_followup.c,
    queue_trade.c) has an INSERT, UPDATE or DELETE of order_state,
    shipping_state or trade_state;
  - the retry room is pure: retry.c and retry.h include no PostgreSQL
    header and make no SPI call.
Usage: python3 test/rooms.py [SRC_DIR]  (prints the rooms' floors with -v)
"""
import os
import re
import sys

src = next((a for a in sys.argv[1:] if not a.startswith('-')),
           os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'src'))
verbose = '-v' in sys.argv
passed = failed = 0


def case(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print('FAIL: ' + what)


def text(name):
    with open(os.path.join(src, name), encoding='utf-8') as f:
        return f.read()


def code(name):
    """the file without its comments and string literals"""
    t = text(name)
    return re.sub(r'/\*.*?\*/|"(?:\\.|[^"\\\n])*"', ' ', t, flags=re.S)


def room_of(base):
    return base[:-len('_internal')] if base.endswith('_internal') else base


files = sorted(f for f in os.listdir(src) if f.endswith(('.c', '.h')))
rooms = sorted({room_of(f.rsplit('.', 1)[0]) for f in files})
uses = {r: set() for r in rooms}
for f in files:
    room = room_of(f.rsplit('.', 1)[0])
    for inc in re.findall(r'^#include "([^"]+)\.h"', text(f), re.M):
        inc = room_of(inc)
        if inc in uses and inc != room:
            uses[room].add(inc)

# circles: Tarjan's strongly connected components
index, low, stack, on, comps = {}, {}, [], set(), []


def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on.add(v)
    for w in sorted(uses[v]):
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop()
            on.discard(w)
            comp.append(w)
            if w == v:
                break
        comps.append(comp)


sys.setrecursionlimit(10000)
for r in rooms:
    if r not in index:
        visit(r)
circles = [c for c in comps if len(c) > 1]
case(not circles, 'rooms that use each other: ' +
     '; '.join(' <-> '.join(sorted(c)) for c in circles))

if verbose and not circles:
    floor = {}

    def depth(r):
        if r not in floor:
            floor[r] = 1 + max((depth(u) for u in uses[r]), default=0)
        return floor[r]
    for r in sorted(rooms, key=lambda r: (-depth(r), r)):
        print('floor %2d  %-18s uses %s' % (depth(r), r, ' '.join(sorted(uses[r])) or '-'))
    print('%d rooms, %d arrows, %d floors' % (len(rooms),
          sum(len(u) for u in uses.values()), max(floor.values())))

# SU_KIND_ only in the table and its lookups (one per row of the table)
n_kinds = len(re.findall(r'^SU_KIND\(', text('kindlist.h'), re.M))
for f in files:
    n = len(re.findall(r'\bSU_KIND_\w+', code(f)))
    if f in ('kindlist.h', 'types.h'):
        continue
    allowed = n_kinds if f == 'functions.c' else 0
    case(n <= allowed, '%s names SU_KIND_ %d times: a per-kind decision outside the table' % (f, n))

# the states are written by the queue only
writes = re.compile(r'(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"\s*SU_SCHEMA\s*"\.(order_state|shipping_state|trade_state)\b')
for f in files:
    if not f.endswith('.c'):
        continue
    hits = writes.findall(re.sub(r'"\s*\n\s*"', '', text(f)))
    case(f in ('queue.c', 'queue_commit.c', 'queue_followup.c', 'queue_trade.c') or not hits,
         '%s writes %s: state SQL outside the queue' % (f, ', '.join(sorted({h[1] for h in hits}))))

# the retry room is pure
for f in ('retry.c', 'retry.h'):
    t = text(f)
    bad = [i for i in re.findall(r'^#include [<"]([^>"]+)[>"]', t, re.M)
           if i not in ('stdbool.h', 'stddef.h', 'stdint.h', 'errcodes.h', 'retry.h')]
    case(not bad, '%s includes %s: the retry room must stay pure' % (f, ', '.join(bad)))
    case('SPI_' not in code(f), '%s calls SPI' % f)

print('%d passed, %d failed' % (passed, failed))
sys.exit(1 if failed else 0)
