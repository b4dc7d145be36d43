#!/usr/bin/env python3
"""Checks of the ingestor's dashboard and alerts against a real Prometheus (run by
scripts/test-observability.sh).

Modes:
  prepare RENDERED --target HOST:PORT --out-dir DIR
      From the rendered chart (helm template output) writes DIR/rules.yaml (the PrometheusRule's groups as
      a Prometheus rules file) and DIR/prometheus.yml: scrape and rule evaluation every second, one job
      named like the chart's Service (the job label a ServiceMonitor gives), scraping HOST:PORT with the
      labels the Prometheus Operator would add (namespace, pod, service, container, endpoint), so that the
      alerts' series selector (`namespace="<ns>",job="<service>"`) matches exactly as in a cluster.
  check RENDERED --prom URL --symbols a,b,c [--rate-interval 10s] [--interval 5s] [--range 15s]
      Through Prometheus' HTTP API (instant queries at the current time):
      - every PromQL expression of the dashboard (panels and template variables; Grafana's
        $__rate_interval / $__interval / $__range replaced by the given durations, template variables
        such as $namespace, $job, $symbol, $stage by `.*`) parses, evaluates and returns data; the per-stage
        latency percentile queries return a finite value for every stage; the throughput queries return a
        positive rate (per configured symbol for the by-symbol panel);
      - every alert expression of the rendered PrometheusRule parses and returns nothing (not firing in
        a healthy run), while its series selector alone (the expression without its final comparison)
        matches series, so the empty result means "healthy", not "selects nothing";
      - Prometheus evaluated every loaded rule without error and none is pending or firing.
      Prints one PASS/FAIL line per check and ends with `obs-check: N passed, M failed`.

Only the given Prometheus URL is contacted (proxies from the environment are ignored).
Exit status: 0 when every check passed, 1 otherwise, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chart_assert import by_kind, dashboard_exprs, load_docs, rendered_rules  # noqa: E402

STAGES = ("exchange_to_receive", "receive_to_enqueue", "enqueue_to_ack")
# Never a proxy: the server is on loopback.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok: bool, what: str, detail: str = "") -> bool:
        if ok:
            self.passed += 1
            print(f"  PASS  {what}" + (f"  ({detail})" if detail else ""))
        else:
            self.failed += 1
            print(f"  FAIL  {what}" + (f": {detail}" if detail else ""))
        return ok

    def report(self) -> int:
        print(f"obs-check: {self.passed} passed, {self.failed} failed")
        return 1 if self.failed else 0


# ---------------------------------------------------------------------------------------------- prepare

def service_of(docs) -> tuple[str, str]:
    svcs = by_kind(docs, "Service")
    if not svcs:
        sys.exit("prepare: no Service in the rendered chart")
    meta = svcs[0]["metadata"]
    return meta.get("namespace") or "default", meta["name"]


def cmd_prepare(args) -> int:
    docs = load_docs(Path(args.rendered))
    namespace, job = service_of(docs)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rules = rendered_rules(docs)
    if not rules["groups"]:
        sys.exit("prepare: no PrometheusRule groups in the rendered chart")
    with open(out / "rules.yaml", "w") as f:
        yaml.safe_dump(rules, f, sort_keys=False, width=1000)
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str((out / "rules.yaml").resolve())],
        "scrape_configs": [{
            "job_name": job,
            "metrics_path": "/metrics",
            "static_configs": [{
                "targets": [args.target],
                "labels": {"namespace": namespace, "pod": f"{job}-obs-test", "service": job,
                           "container": "ingestor", "endpoint": "metrics"},
            }],
        }],
    }
    with open(out / "prometheus.yml", "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    print(f"wrote {out / 'prometheus.yml'} (job={job}, namespace={namespace}, target={args.target}) and "
          f"{out / 'rules.yaml'} ({sum(len(g['rules']) for g in rules['groups'])} rules)")
    return 0


# ------------------------------------------------------------------------------------------------ check

class Prom:
    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def get(self, path: str, **params) -> dict:
        q = urllib.parse.urlencode(params)
        try:
            with OPENER.open(f"{self.url}{path}?{q}", timeout=10) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:  # 400/422 carry the parse/evaluation error as JSON
            try:
                return json.load(e)
            except Exception:  # noqa: BLE001
                return {"status": "error", "error": f"HTTP {e.code}"}
        except (urllib.error.URLError, TimeoutError) as e:
            return {"status": "error", "error": str(e)}

    def query(self, expr: str) -> tuple[str | None, list]:
        """(error or None, result vector)."""
        r = self.get("/api/v1/query", query=expr)
        if r.get("status") != "success":
            return f"{r.get('errorType', '')} {r.get('error', r)}".strip(), []
        data = r["data"]
        if data["resultType"] != "vector":
            return None, [{"metric": {}, "value": data["result"]}] if data["result"] else []
        return None, data["result"]


def grafana_to_promql(expr: str, rate_interval: str, interval: str, rng: str) -> str:
    expr = (expr.replace("$__rate_interval", rate_interval).replace("${__rate_interval}", rate_interval)
            .replace("$__interval", interval).replace("${__interval}", interval)
            .replace("$__range", rng).replace("${__range}", rng))
    # Template variables ($var, ${var}, ${var:format}) as "All" with allValue `.*`.
    return re.sub(r"\$\{[^}]*\}|\$\w+", ".*", expr)


def value(sample) -> float:
    return float(sample["value"][1])


def show(result, limit=6) -> str:
    parts = []
    for s in result[:limit]:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s["metric"].items()))
        parts.append(f"{{{labels}}} {s['value'][1]}")
    more = f" … (+{len(result) - limit})" if len(result) > limit else ""
    return "; ".join(parts) + more


LATENCY_PER_STAGE = re.compile(r"histogram_quantile\((0\.\d+),\s*sum by \(le, stage\) \(rate\(marketflow_ingestor_latency_seconds_bucket")
THROUGHPUT_BY_SYMBOL = re.compile(r"^sum by \(symbol\) \(rate\(marketflow_ingestor_messages_sent_total")
THROUGHPUT_TOTAL = re.compile(r"^sum\(rate\(marketflow_ingestor_messages_sent_total")
COMPARISON = re.compile(r"^(?P<lhs>.*?)\s*(==|!=|>=|<=|>|<)\s*(bool\s+)?[-+]?[0-9.]+([eE][-+]?\d+)?\s*$", re.S)


def check_dashboard(prom: Prom, docs, args, ck: Checks):
    exprs = dashboard_exprs(docs)
    ck.check(bool(exprs), "dashboard: expressions found in the rendered dashboard ConfigMap", f"{len(exprs)}")
    symbols = [s for s in args.symbols.split(",") if s]
    for where, raw in exprs:
        where = where.split(": ", 1)[-1]
        lv = re.fullmatch(r"\s*label_values\((.*),\s*([a-zA-Z_]\w*)\s*\)\s*", raw, re.S)
        if lv:
            label = lv.group(2)
            expr = f"count by ({label}) ({grafana_to_promql(lv.group(1), args.rate_interval, args.interval, args.range)})"
        else:
            label = None
            expr = grafana_to_promql(raw, args.rate_interval, args.interval, args.range)
        err, res = prom.query(expr)
        if not ck.check(err is None, f"dashboard {where}: evaluates", err or ""):
            print(f"        query: {expr}")
            continue
        if label:
            vals = sorted({s["metric"].get(label, "") for s in res} - {""})
            ck.check(bool(vals), f"dashboard {where}: label_values({label}) lists values",
                     ", ".join(vals) if vals else f"none; query: {expr}")
            continue
        if not ck.check(bool(res), f"dashboard {where}: returns data",
                        show(res) if res else f"empty result (the panel would show 'No data'); query: {expr}"):
            continue
        finite = [s for s in res if math.isfinite(value(s))]
        m = LATENCY_PER_STAGE.search(expr)
        if m:
            got = {s["metric"].get("stage"): value(s) for s in finite}
            for stage in STAGES:
                ck.check(stage in got, f"dashboard {where}: p{float(m.group(1)) * 100:g} of stage {stage}",
                         f"{got[stage] * 1e3:.3f} ms" if stage in got else f"no finite value; got {show(res)}")
        elif THROUGHPUT_BY_SYMBOL.search(expr):
            got = {s["metric"].get("symbol"): value(s) for s in finite}
            for sym in symbols:
                ck.check(got.get(sym, 0) > 0, f"dashboard {where}: throughput of {sym} > 0",
                         f"{got[sym]:.1f}/s" if sym in got else f"absent; got {show(res)}")
        elif THROUGHPUT_TOTAL.search(expr):
            ck.check(finite and value(finite[0]) > 0, f"dashboard {where}: total throughput > 0",
                     show(res))
        else:
            ck.check(bool(finite), f"dashboard {where}: finite values", show(res))


def check_alerts(prom: Prom, docs, ck: Checks):
    rules = [r for g in rendered_rules(docs)["groups"] for r in g["rules"]]
    alerts = [r for r in rules if "alert" in r]
    ck.check(bool(alerts), "alerts: found in the rendered PrometheusRule", f"{len(alerts)}")
    for r in alerts:
        name, expr = r["alert"], str(r["expr"]).strip()
        err, res = prom.query(expr)
        if not ck.check(err is None, f"alert {name}: parses and evaluates", err or ""):
            continue
        ck.check(not res, f"alert {name}: not firing in a healthy run",
                 "expression returns nothing" if not res else f"expression returns {show(res)}")
        m = COMPARISON.match(expr)
        if not m:
            print(f"  NOTE  alert {name}: no final comparison to strip; selector check skipped")
            continue
        err, res = prom.query(m.group("lhs"))
        ck.check(err is None and bool(res), f"alert {name}: its series exist (expression without the comparison)",
                 show(res) if res else (err or f"empty: the alert cannot see a change it never saw start "
                                               f"(counter not exported until its first increment?); "
                                               f"query: {m.group('lhs')}"))


def check_rule_states(prom: Prom, docs, ck: Checks):
    want = {r["alert"] for g in rendered_rules(docs)["groups"] for r in g["rules"] if "alert" in r}
    r = prom.get("/api/v1/rules")
    if not ck.check(r.get("status") == "success", "Prometheus /api/v1/rules answers", r.get("error", "")):
        return
    loaded = {}
    for g in r["data"]["groups"]:
        for rule in g["rules"]:
            loaded[rule["name"]] = rule
    ck.check(want <= set(loaded), "Prometheus loaded every alert of the rendered PrometheusRule",
             f"missing {sorted(want - set(loaded))}" if not want <= set(loaded) else f"{len(want)} alerts")
    bad = {n: f"{x.get('health')} {x.get('lastError', '')}".strip() for n, x in loaded.items()
           if x.get("health") != "ok"}
    ck.check(not bad, "Prometheus evaluated every rule without error (health ok)", json.dumps(bad) if bad else "")
    active = {n: x.get("state") for n, x in loaded.items() if x.get("type") == "alerting" and x.get("state") != "inactive"}
    ck.check(not active, "no alert pending or firing in Prometheus", json.dumps(active) if active else "all inactive")


def cmd_check(args) -> int:
    docs = load_docs(Path(args.rendered))
    prom = Prom(args.prom)
    ck = Checks()
    print("dashboard queries (Grafana variables: $__rate_interval=%s, $__interval=%s, $__range=%s, others `.*`)"
          % (args.rate_interval, args.interval, args.range))
    check_dashboard(prom, docs, args, ck)
    print("alert expressions (rendered PrometheusRule)")
    check_alerts(prom, docs, ck)
    print("rule evaluation inside Prometheus")
    check_rule_states(prom, docs, ck)
    return ck.report()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("rendered")
    p.add_argument("--target", required=True)
    p.add_argument("--out-dir", required=True)
    c = sub.add_parser("check")
    c.add_argument("rendered")
    c.add_argument("--prom", required=True)
    c.add_argument("--symbols", required=True)
    c.add_argument("--rate-interval", default="10s")
    c.add_argument("--interval", default="5s")
    c.add_argument("--range", default="15s")
    args = ap.parse_args(argv)
    return {"prepare": cmd_prepare, "check": cmd_check}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
