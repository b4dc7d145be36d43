#!/usr/bin/env python3
"""Per-thread CPU (ns on a CPU from /proc/<pid>/task/*/schedstat) and wake-ups (voluntary context
switches from .../status) of the process running BIN, beside `loadgen` (which reports CPU but not
wake-ups). Waits for the process, reads every thread every 0.25 s until it exits, and prints one JSON
line for the window from SKIP seconds after the event loop first used CPU to TRIM seconds before
the last reading: {thread: [cpu_s, voluntary, involuntary], "_dt": seconds}.

usage: threads.py BIN SKIP TRIM"""
import json, os, sys, time
bin_path, skip, trim = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
def find():
    for p in os.listdir('/proc'):
        if p.isdigit():
            try:
                if os.readlink(f'/proc/{p}/exe') == bin_path: return p
            except OSError: pass
def snap(pid):
    out = {}
    for t in os.listdir(f'/proc/{pid}/task'):
        name = open(f'/proc/{pid}/task/{t}/comm').read().strip()
        if name.startswith('rdk:'): name = 'librdkafka'
        ns = int(open(f'/proc/{pid}/task/{t}/schedstat').read().split()[0])
        vol = nv = 0
        for l in open(f'/proc/{pid}/task/{t}/status'):
            if l.startswith('voluntary_ctxt_switches'): vol = int(l.split()[1])
            if l.startswith('nonvoluntary_ctxt_switches'): nv = int(l.split()[1])
        a = out.setdefault(name, [0, 0, 0]); a[0] += ns; a[1] += vol; a[2] += nv
    return out
end = time.time() + 60
pid = None
while pid is None and time.time() < end:
    pid = find(); time.sleep(0.05)
if pid is None: sys.exit('no process')
snaps = []
while True:
    try:
        snaps.append((time.time(), snap(pid)))
    except OSError:
        break
    time.sleep(0.25)
start = next((t for t, s in snaps if s.get('event-loop', [0])[0] > 0), None)
if start is None: sys.exit('no event loop')
a = next((x for x in snaps if x[0] >= start + skip), None)
b = next((x for x in reversed(snaps) if x[0] <= snaps[-1][0] - trim), None)
if a is None or b is None or b[0] <= a[0]: sys.exit('window too short')
res = {k: [(b[1][k][0] - a[1][k][0]) / 1e9, b[1][k][1] - a[1][k][1], b[1][k][2] - a[1][k][2]] for k in b[1] if k in a[1]}
res['_dt'] = b[0] - a[0]
print(json.dumps(res))
