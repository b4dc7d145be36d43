#!/usr/bin/env python3
"""LOOP_COALESCE_US measured alternated in one sitting: for each repetition, each rate, each window,
one `loadgen` run (wss, trade, 3 symbols, even arrival, Kafka sink) of the same ingester binary with
`threads.py` beside it for the event loop's wake-ups. Writes results.json (one object per run) and
prints the Markdown table of summary.md.

usage: run.py BIN OUT_DIR REPS RATES WINDOWS [SECS [K=V,...]]
  e.g. run.py /tmp/ingester /tmp/loop-bench 2 1000,16000,100000 0,500,1000 10 TIME_UNIT=us
(TIME_UNIT=us: exchange->receive in µs instead of ms, but loadgen's log-append readings need ms.)
"""
import json, os, subprocess, sys, time

here = os.path.dirname(os.path.abspath(__file__))
bin_path, out, reps, rates, windows = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
secs = float(sys.argv[6]) if len(sys.argv) > 6 else 10.0
extra = [kv for kv in (sys.argv[7] if len(sys.argv) > 7 else '').split(',') if kv]
warm = 3.0
rates = [float(r) for r in rates.split(',')]
windows = [int(w) for w in windows.split(',')]
loadgen = os.path.join(os.getcwd(), 'target/release/loadgen')
results = []

def running(exe):
    for p in os.listdir('/proc'):
        try:
            if p.isdigit() and os.readlink(f'/proc/{p}/exe') == exe:
                return True
        except OSError:
            pass
    return False

for rep in range(1, reps + 1):
    for rate in rates:
        for w in windows:
            name = f'r{rep}-{int(rate)}-c{w}'
            # The last run's ingester must be gone: the sampler finds the process by its binary.
            while running(bin_path):
                time.sleep(0.2)
            # The sampler finds the process, skips the warm-up and the start, then reads a window
            # inside loadgen's measured one.
            sampler = subprocess.Popen(["python3", os.path.join(here, "threads.py"), bin_path, str(warm + 1), "2"],
                                       stdout=subprocess.PIPE, text=True)
            cmd = ['nice', '-n', '10', loadgen, '--sink', 'kafka', '--tls', '--arrival', 'even', '--rate', str(rate),
                   '--secs', str(secs), '--warmup', str(warm), '--ingester', bin_path, '--out', out, '--name', name,
                   '--env', f'LOOP_COALESCE_US={w}'] + [a for kv in extra for a in ('--env', kv)]
            lg = subprocess.run(cmd, capture_output=True, text=True)
            th = json.loads(sampler.communicate()[0] or '{}')
            try:
                s = json.load(open(os.path.join(out, name, 'summary.json')))
            except OSError:
                print(f'{name}: no summary\n{lg.stdout[-2000:]}\n{lg.stderr[-2000:]}', file=sys.stderr)
                continue
            loop = th.get('event-loop', [0, 0, 0])
            dt = th.get('_dt', 1.0)
            wakes = loop[1] / dt
            r = {
                'run': name, 'rep': rep, 'rate': rate, 'coalesce_us': w, 'cmd': ' '.join(cmd),
                'delivered_per_s': s['acked_rate'], 'parsed_per_s': s['parsed_rate'], 'sustained': s['sustained'],
                'problems': s['problems'], 'feeder_per_s': s['feeder_rate'],
                'cpu_ns_per_msg': s['cpu_ns_per_msg'], 'loop_ns_per_msg': s['event_loop_ns_per_msg'],
                'threads_pct': s['threads_pct'],
                'loop_wakeups_per_s': wakes, 'loop_preempted_per_s': loop[2] / dt,
                'msgs_per_wakeup': s['parsed_rate'] / wakes if wakes else None,
                'process_wakeups_per_s': sum(v[1] for k, v in th.items() if k != '_dt') / dt,
                'latency_us': s['latency_us'], 'e2e_ms': s['e2e_ms'],
                'load_before': s['host']['loadavg_before'], 'load_after': s['host']['loadavg_after'],
            }
            results.append(r)
            print(f"{name}: {r['cpu_ns_per_msg']/1e3:.1f} µs/msg, loop {r['loop_ns_per_msg']/1e3:.2f} µs/msg, "
                  f"{wakes:.0f} wakes/s, {r['msgs_per_wakeup'] or 0:.1f} msg/wake, load {r['load_before']} -> {r['load_after']}",
                  flush=True)
            json.dump(results, open(os.path.join(out, 'results.json'), 'w'), indent=1)
