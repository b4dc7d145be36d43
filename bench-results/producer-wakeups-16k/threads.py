#!/usr/bin/env python3
"""Per-thread CPU (% of a core) and wake-ups (voluntary context switches/s) of the process running
BIN, over a window: waits for it, skips WARM seconds, measures SECS seconds."""
import os, sys, time
bin_path, warm, secs = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
tck = os.sysconf('SC_CLK_TCK')
def find():
    for p in os.listdir('/proc'):
        if p.isdigit():
            try:
                if os.readlink(f'/proc/{p}/exe') == bin_path: return p
            except OSError: pass
def snap(pid):
    out = {}
    for t in os.listdir(f'/proc/{pid}/task'):
        try:
            st = open(f'/proc/{pid}/task/{t}/stat').read()
            name = st[st.index('(')+1:st.rindex(')')]
            f = st[st.rindex(')')+2:].split()
            cpu = (int(f[11]) + int(f[12])) / tck
            vol = nv = 0
            for l in open(f'/proc/{pid}/task/{t}/status'):
                if l.startswith('voluntary_ctxt_switches'): vol = int(l.split()[1])
                if l.startswith('nonvoluntary_ctxt_switches'): nv = int(l.split()[1])
            key = name if not name.startswith('rdk:') else name
            a = out.setdefault(key, [0.0, 0, 0]); a[0] += cpu; a[1] += vol; a[2] += nv
        except OSError: pass
    return out
end = time.time() + 60
pid = None
while pid is None and time.time() < end:
    pid = find(); time.sleep(0.2)
if pid is None: sys.exit('no process')
time.sleep(warm)
a = snap(pid); t0 = time.time(); time.sleep(secs); b = snap(pid); dt = time.time() - t0
tot = [0, 0]
for k in sorted(b):
    if k not in a: continue
    cpu = 100 * (b[k][0] - a[k][0]) / dt; vol = (b[k][1] - a[k][1]) / dt; nv = (b[k][2] - a[k][2]) / dt
    tot[0] += cpu; tot[1] += vol
    if cpu >= 0.05 or vol >= 1: print(f"  {k:18s} cpu {cpu:5.1f} %  wakeups {vol:8.0f}/s  preempted {nv:6.0f}/s")
print(f"  {'total':18s} cpu {tot[0]:5.1f} %  wakeups {tot[1]:8.0f}/s")
