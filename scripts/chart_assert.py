#!/usr/bin/env python3
"""Checks on the ingestor Helm chart that helm-unittest cannot express (run by scripts/test-chart.sh).

What the chart renders for given values (QoS, security context, probes, selectors, sharding, password
wiring, ConfigMap, ServiceMonitor, SecretProviderClass, NetworkPolicy, alerts, NOTES.txt, refused value
sets) is asserted by the helm-unittest suites in charts/ingestor/tests/*_test.yaml. What is left here
needs more than assertions on one rendered document at a time:
  - schemas: every manifest against Kubernetes' OpenAPI schemas (kubernetes-validate, for each supported
    Kubernetes version) and the CRD kinds against minimal schemas; helm-unittest validates no manifest;
  - the dashboard: JSON inside a ConfigMap string, parsed to check its panels and queries;
  - values.yaml and values.schema.json documentation: comments and the file's own text, not a render;
  - inputs for other tools (promtool rule files from the PrometheusRule and the dashboard, the list of
    metric names) and comparisons across files (every alert tested by alerts.test.yaml, a real scrape
    against the metric names);
  - the Dockerfile (dockerfile_assert.py), which is not part of the chart.

Modes:
  validate RENDERED [--kube-version V ...]
      Schema-validates every rendered manifest (built-in kinds with kubernetes-validate, strict; the CRD
      kinds ServiceMonitor, PrometheusRule and SecretProviderClass against minimal schemas kept here;
      any other kind fails), and checks the panels and queries of the dashboard JSON when rendered.
  values-doc [--chart DIR]
      Every key of values.yaml has a comment and is described in values.schema.json, and every schema
      property has a description.
  rules RENDERED OUT [--test-file FILE]
      Writes the PrometheusRule's spec as a Prometheus rules file (for promtool); with --test-file, also
      checks that the promtool test file expects every alert to fire at least once.
  dashboard-rules RENDERED OUT
      Writes every dashboard PromQL expression as a recording rule (Grafana variables substituted), so
      that `promtool check rules` parses the dashboard's queries.
  dockerfile [--dockerfile FILE] [--dockerignore FILE] [--cargo-toml FILE]
      Structural checks on the Dockerfile (also the fallback when hadolint is not available); the builder
      and runtime packages are derived from the rdkafka features in Cargo.toml, and the builder must
      declare `ARG GIT_COMMIT` before the cargo build.
  metric-names [--rendered FILE] [--out FILE] [--check]
      Lists every metric name the alerts and the dashboard use (default out:
      charts/ingestor/metric-names.txt). Without --rendered it runs `helm template` with
      ci/default-values.yaml. --check fails if the file on disk differs.
  check-scrape SCRAPE [--names FILE]
      Checks that every listed metric name appears in a real /metrics scrape (text exposition format),
      e.g. `curl -s localhost:8000/metrics > scrape.txt`, with the labels the alerts and dashboard use
      (EXPECTED_LABELS).

Exit status: 0 when every check passed, 1 when any failed (each failure is printed), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from dockerfile_assert import check_dockerfile

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "ingestor"

# Kinds defined by CRDs that the chart may render; validated against MINIMAL_CRD_SCHEMAS below (the
# real CRDs are not available offline). Any other kind missing from kubernetes-validate fails.
CRD_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("secrets-store.csi.x-k8s.io/v1", "SecretProviderClass"),
}

DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
_META = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 253},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
_LABEL_SELECTOR = {
    "type": "object",
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {"type": "array"},
    },
    "additionalProperties": False,
}
_RELABEL = {"type": "array", "items": {"type": "object"}}


def _crd(spec_schema):
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": _META,
                       "spec": spec_schema},
        "additionalProperties": False,
    }


# Field names and types follow the CRDs (prometheus-operator monitoring.coreos.com_servicemonitors /
# _prometheusrules, secrets-store-csi-driver secrets-store.csi.x-k8s.io_secretproviderclasses), limited
# to the fields this chart can render; additionalProperties=false catches misspelt fields.
MINIMAL_CRD_SCHEMAS = {
    "ServiceMonitor": _crd({
        "type": "object",
        "required": ["selector", "endpoints"],
        "additionalProperties": False,
        "properties": {
            "selector": _LABEL_SELECTOR,
            "namespaceSelector": {"type": "object", "additionalProperties": False, "properties": {
                "any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}}},
            "podTargetLabels": {"type": "array", "items": {"type": "string"}},
            "targetLabels": {"type": "array", "items": {"type": "string"}},
            "jobLabel": {"type": "string"},
            "endpoints": {"type": "array", "minItems": 1, "items": {
                "type": "object", "additionalProperties": False,
                "properties": {
                    "port": {"type": "string"},
                    "targetPort": {"type": ["string", "integer"]},
                    "path": {"type": "string"},
                    "scheme": {"type": "string", "enum": ["http", "https"]},
                    "interval": {"type": "string", "pattern": DURATION},
                    "scrapeTimeout": {"type": "string", "pattern": DURATION},
                    "honorLabels": {"type": "boolean"},
                    "relabelings": _RELABEL,
                    "metricRelabelings": _RELABEL,
                }}},
        },
    }),
    "PrometheusRule": _crd({
        "type": "object",
        "required": ["groups"],
        "additionalProperties": False,
        "properties": {"groups": {"type": "array", "items": {
            "type": "object", "required": ["name", "rules"], "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "interval": {"type": "string", "pattern": DURATION},
                "rules": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["expr"], "additionalProperties": False,
                    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                    "properties": {
                        "alert": {"type": "string"},
                        "record": {"type": "string"},
                        "expr": {"type": ["string", "integer"]},
                        "for": {"type": "string", "pattern": DURATION},
                        "keep_firing_for": {"type": "string", "pattern": DURATION},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                    }}},
            }}}},
    }),
    "SecretProviderClass": _crd({
        "type": "object",
        "required": ["provider", "parameters"],
        "additionalProperties": False,
        "properties": {
            "provider": {"type": "string", "enum": ["azure", "aws", "gcp", "vault", "akeyless", "conjur"]},
            "parameters": {"type": "object", "additionalProperties": {"type": "string"}},
            "secretObjects": {"type": "array", "items": {
                "type": "object", "required": ["secretName", "type", "data"], "additionalProperties": False,
                "properties": {
                    "secretName": {"type": "string"},
                    "type": {"type": "string"},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                    "data": {"type": "array", "minItems": 1, "items": {
                        "type": "object", "required": ["objectName", "key"], "additionalProperties": False,
                        "properties": {"objectName": {"type": "string"}, "key": {"type": "string"}}}},
                }}},
        },
    }),
}

REQUIRED_METRIC_PREFIX = "marketflow_ingestor_"
# Series that Prometheus itself makes, not the ingestor's /metrics.
SYNTHETIC_METRICS = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
# Labels the alerts and the dashboard group or filter by, per exported series: check-scrape verifies
# that the scrape carries them (other labels may exist too).
EXPECTED_LABELS = {
    "marketflow_ingestor_messages_sent_total": {"symbol"},
    "marketflow_ingestor_latency_seconds_bucket": {"stage", "le"},
    "marketflow_ingestor_messages_received_total": {"type"},
    "marketflow_ingestor_messages_rejected_total": {"reason"},
    "marketflow_ingestor_gaps_total": {"symbol"},
    "marketflow_ingestor_stream_last_message_age_seconds": {"symbol", "stream"},
    "marketflow_ingestor_stream_stale_total": {"action"},
}


class Checker:
    """Collects failures so that one run reports all of them."""

    def __init__(self, label: str):
        self.label = label
        self.failures: list[str] = []
        self.passed = 0

    def check(self, cond, msg: str) -> bool:
        if cond:
            self.passed += 1
        else:
            self.failures.append(msg)
        return bool(cond)

    def report(self) -> int:
        for f in self.failures:
            print(f"  FAIL [{self.label}] {f}")
        print(f"  {self.label}: {self.passed} checks passed, {len(self.failures)} failed")
        return 1 if self.failures else 0


# ---------------------------------------------------------------------------------------------- helpers

class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (PyYAML silently keeps the last one, but the API
    server's strict decoding and kubectl reject them)."""


def _no_duplicates(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def load_docs(path: Path) -> list[dict]:
    with open(path) as f:
        return [d for d in yaml.load_all(f, Loader=_StrictLoader) if d]


def by_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


# ------------------------------------------------------------------------------------- schema validation

def validate_schemas(docs, kube_versions, ck: Checker):
    import jsonschema
    try:
        import kubernetes_validate
    except ImportError:
        ck.check(False, "kubernetes-validate is not installed (pip install kubernetes-validate)")
        return
    for d in docs:
        kind, api = d.get("kind"), d.get("apiVersion")
        name = f"{kind}/{(d.get('metadata') or {}).get('name')}"
        if (api, kind) in CRD_KINDS:
            errs = sorted(jsonschema.Draft7Validator(MINIMAL_CRD_SCHEMAS[kind]).iter_errors(d), key=str)
            ck.check(not errs, f"{name}: minimal CRD schema: " + "; ".join(
                f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errs[:5]))
            continue
        for kv in kube_versions:
            try:
                kubernetes_validate.validate(d, kv, strict=True)
                ck.check(True, "")
            except kubernetes_validate.SchemaNotFoundError:
                ck.check(False, f"{name}: unknown kind {api} {kind} for Kubernetes {kv} (not a built-in, "
                                f"and not one of the CRD kinds this script knows)")
            except kubernetes_validate.ValidationError as e:
                path = "/".join(map(str, e.absolute_path))
                ck.check(False, f"{name}: invalid for Kubernetes {kv} at {path}: {e.message}")


# --------------------------------------------------------------------------------------------- dashboard

def dashboard_panels(dash):
    for p in dash.get("panels", []):
        yield p
        for sub in p.get("panels", []) or []:
            yield sub


def assert_dashboard(dash, ck: Checker):
    panels = list(dashboard_panels(dash))
    exprs = [(p, t.get("expr", "")) for p in panels for t in p.get("targets", [])]
    ck.check(dash.get("uid") and dash.get("title"), "dashboard has no uid/title")
    ids = [p.get("id") for p in panels]
    ck.check(len(ids) == len(set(ids)), "dashboard panel ids are not unique")

    def has(pattern, panel_type=None):
        return any(re.search(pattern, e) and (panel_type is None or p.get("type") == panel_type) for p, e in exprs)

    M = r"\{[^}]*\}"  # any label matchers
    wanted = {
        "throughput by symbol": rf"^sum by \(symbol\) \(rate\(marketflow_ingestor_messages_sent_total({M})?\[1m\]\)\)$",
        "latency p50 per stage": rf"histogram_quantile\(0\.5, sum by \(le, stage\) \(rate\(marketflow_ingestor_latency_seconds_bucket({M})?\[",
        "latency p99 per stage": rf"histogram_quantile\(0\.99, sum by \(le, stage\) \(rate\(marketflow_ingestor_latency_seconds_bucket({M})?\[",
        "latency p99.9 per stage": rf"histogram_quantile\(0\.999, sum by \(le, stage\) \(rate\(marketflow_ingestor_latency_seconds_bucket({M})?\[",
        "reconnects": r"marketflow_ingestor_ws_reconnects_total",
        "ring occupancy": r"marketflow_ingestor_ring_occupancy_ratio",
        "kafka errors": r"marketflow_ingestor_kafka_delivery_errors_total",
        "received by type": r"sum by \(type\) \(rate\(marketflow_ingestor_messages_received_total",
        "rejected by reason": r"sum by \(reason\) \(rate\(marketflow_ingestor_messages_rejected_total",
        "order books valid": r"marketflow_ingestor_depth_book_synced",
        "order-book snapshots by reason": r"sum by \(reason\) \(increase\(marketflow_ingestor_depth_snapshots_total",
        "age of each stream": r"by \(symbol, stream\) \(marketflow_ingestor_stream_last_message_age_seconds",
        "silent streams": r"marketflow_ingestor_streams_stale",
    }
    for what, pattern in wanted.items():
        ck.check(has(pattern), f"dashboard: no panel for {what} ({pattern})")
    ck.check(has(r"marketflow_ingestor_latency_seconds_bucket", "heatmap"), "dashboard: no heatmap of the latency buckets")
    for p in panels:
        if p.get("type") != "row":
            ck.check(p.get("datasource") and p.get("targets"), f"dashboard panel {p.get('title')!r} has no datasource/targets")


# -------------------------------------------------------------------------------------------- PromQL text

_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
             "offset", "inf", "nan", "atan2", "start", "end"}


def metric_names_in(expr: str) -> set[str]:
    """Metric names in a PromQL expression (or a Grafana label_values() query)."""
    expr = re.sub(r"\$__\w+|\$\{[^}]*\}|\$\w+", "x", expr)            # Grafana variables
    names = set()
    lv = re.fullmatch(r"\s*label_values\((.*),\s*[a-zA-Z_]\w*\s*\)\s*", expr, re.S)
    if lv:
        expr = lv.group(1)
    expr = re.sub(r'"(\\.|[^"\\])*"|\'(\\.|[^\'\\])*\'|`[^`]*`', '""', expr)   # strings
    expr = re.sub(r"\{[^}]*\}", " ", expr)                               # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)                              # ranges / subqueries
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    for m in re.finditer(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", expr):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in _KEYWORDS:
            continue
        names.add(word)
    return names


def rendered_rules(docs) -> dict:
    groups = [g for d in by_kind(docs, "PrometheusRule") for g in d["spec"]["groups"]]
    return {"groups": groups}


def dashboard_exprs(docs) -> list[tuple[str, str]]:
    out = []
    for cm in by_kind(docs, "ConfigMap"):
        if (cm["metadata"].get("labels") or {}).get("grafana_dashboard") != "1":
            continue
        for key, text in (cm.get("data") or {}).items():
            dash = json.loads(text)
            for p in dashboard_panels(dash):
                for t in p.get("targets", []):
                    if t.get("expr"):
                        out.append((f"{key}: panel {p.get('title')!r} {t.get('refId')}", t["expr"]))
            for v in (dash.get("templating") or {}).get("list", []):
                q = v.get("query")
                q = q.get("query") if isinstance(q, dict) else q
                if v.get("type") == "query" and q:
                    out.append((f"{key}: variable {v.get('name')}", q))
    return out


def grafana_to_promql(expr: str) -> str:
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$__range", "1h")
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


# ------------------------------------------------------------------------------------------------- modes

def cmd_validate(args) -> int:
    docs = load_docs(Path(args.rendered))
    ck = Checker(Path(args.rendered).stem)
    ck.check(docs, "nothing rendered")
    validate_schemas(docs, args.kube_version, ck)
    for cm in by_kind(docs, "ConfigMap"):
        if (cm["metadata"].get("labels") or {}).get("grafana_dashboard") != "1":
            continue
        for key, text in (cm.get("data") or {}).items():
            ck.check(key.endswith(".json"), f"dashboard ConfigMap key {key} does not end in .json")
            try:
                dash = json.loads(text)
            except json.JSONDecodeError as e:
                ck.check(False, f"dashboard {key} is not JSON: {e}")
                continue
            assert_dashboard(dash, ck)
    return ck.report()


def _schema_node(schema, path):
    node = schema
    for p in path:
        props = (node or {}).get("properties") or {}
        if p in props:
            node = props[p]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return None
    return node


def cmd_values_doc(args) -> int:
    chart = Path(args.chart)
    ck = Checker("values-doc")
    # A key given twice is legal JSON, but every decoder silently keeps one of them (helm's the last):
    # a merge that duplicated env.KAFKA_PROPS once hid which of its two definitions was in force.
    dups: list[str] = []

    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        dups.extend(sorted({k for k in keys if keys.count(k) > 1}))
        return dict(pairs)
    schema = json.load(open(chart / "values.schema.json"), object_pairs_hook=no_duplicates)
    ck.check(not dups, f"values.schema.json: duplicate keys {dups}")
    ck.check(schema.get("$schema", "").startswith("http://json-schema.org/draft-07/"), "values.schema.json is not draft-07")
    lines = open(chart / "values.yaml").read().splitlines()
    ck.check(lines and lines[0] == "# yaml-language-server: $schema=values.schema.json",
             "values.yaml does not start with the yaml-language-server $schema line")
    stack: list[tuple[int, str]] = []
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)([A-Za-z_][\w.\-/]*):(\s|$)", line)
        if not m:
            continue
        indent, key = len(m.group(1)), m.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = [k for _, k in stack] + [key]
        stack.append((indent, key))
        parent = _schema_node(schema, path[:-1])
        if parent is None or parent.get("type") == "object" and "properties" not in parent and len(path) > 1:
            continue  # inside a free-form Kubernetes object (probes, strategy, ...): not chart keys
        if parent is not schema and "properties" not in (parent or {}):
            continue
        node = _schema_node(schema, path)
        ck.check(node is not None, f"values.yaml:{i + 1}: {'.'.join(path)} is not in values.schema.json")
        prev = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        ck.check(prev.strip().startswith("#") or "#" in line.split(":", 1)[1],
                 f"values.yaml:{i + 1}: {'.'.join(path)} has no comment")

    def walk(node, path):
        for k, v in (node.get("properties") or {}).items():
            ck.check(v.get("description"), f"values.schema.json: {'.'.join(path + [k])} has no description")
            walk(v, path + [k])
    walk(schema, [])
    return ck.report()


def cmd_rules(args) -> int:
    docs = load_docs(Path(args.rendered))
    rules = rendered_rules(docs)
    ck = Checker("rules")
    ck.check(rules["groups"], f"{args.rendered}: no PrometheusRule groups")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as f:
        yaml.safe_dump(rules, f, sort_keys=False, width=1000)
    if args.test_file:
        test = yaml.safe_load(open(args.test_file))
        fired = {t["alertname"] for g in test.get("tests", []) for t in g.get("alert_rule_test", []) if t.get("exp_alerts")}
        quiet = {t["alertname"] for g in test.get("tests", []) for t in g.get("alert_rule_test", []) if not t.get("exp_alerts")}
        for g in rules["groups"]:
            for r in g["rules"]:
                if "alert" in r:
                    ck.check(r["alert"] in fired, f"{args.test_file}: no test expects {r['alert']} to fire")
                    ck.check(r["alert"] in quiet, f"{args.test_file}: no test expects {r['alert']} to stay quiet")
    print(f"  wrote {args.out}")
    return ck.report()


def cmd_dashboard_rules(args) -> int:
    docs = load_docs(Path(args.rendered))
    ck = Checker("dashboard-rules")
    exprs = dashboard_exprs(docs)
    ck.check(exprs, "no dashboard expressions found")
    rules = []
    for i, (where, expr) in enumerate(exprs):
        if re.match(r"\s*label_values\(", expr):
            inner = re.fullmatch(r"\s*label_values\((.*),\s*[a-zA-Z_]\w*\s*\)\s*", expr, re.S)
            ck.check(inner, f"{where}: cannot parse {expr!r}")
            if not inner:
                continue
            expr = inner.group(1)
        rules.append({"record": f"dashboard:expr_{i}", "expr": grafana_to_promql(expr)})
    with open(args.out, "w") as f:
        yaml.safe_dump({"groups": [{"name": "dashboard-expressions", "rules": rules}]}, f, sort_keys=False, width=1000)
    print(f"  wrote {args.out} ({len(rules)} expressions)")
    return ck.report()


def cmd_dockerfile(args) -> int:
    ck = Checker("dockerfile")
    check_dockerfile(args.dockerfile, args.dockerignore, args.cargo_toml, ck)
    return ck.report()


def _helm_render_default() -> Path:
    cached = Path(os.environ.get("TOOLS_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                  / "marketflow-tools") / "bin" / "helm"
    helm = os.environ.get("HELM") or (str(cached) if cached.exists() else shutil.which("helm"))
    if not helm:
        sys.exit("metric-names: no --rendered file and no helm on PATH (set HELM=...)")
    out = subprocess.run([helm, "template", "ingestor", str(CHART), "--namespace", "marketflow", "--kube-version", "1.33.0",
                          "-f", str(CHART / "ci" / "default-values.yaml")], check=True, capture_output=True, text=True).stdout
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / "ingestor-metric-names-render.yaml"
    tmp.write_text(out)
    return tmp


def cmd_metric_names(args) -> int:
    rendered = Path(args.rendered) if args.rendered else _helm_render_default()
    docs = load_docs(rendered)
    ck = Checker("metric-names")
    used: dict[str, set[str]] = {}
    for g in rendered_rules(docs)["groups"]:
        for r in g["rules"]:
            for n in metric_names_in(str(r["expr"])):
                used.setdefault(n, set()).add(f"alert {r.get('alert') or r.get('record')}")
    for where, expr in dashboard_exprs(docs):
        for n in metric_names_in(expr):
            used.setdefault(n, set()).add("dashboard")
    ck.check(used, "no metric names found (is the PrometheusRule/dashboard rendered?)")
    exported = sorted(n for n in used if n not in SYNTHETIC_METRICS)
    for n in exported:
        ck.check(n.startswith(REQUIRED_METRIC_PREFIX), f"metric {n} lacks the {REQUIRED_METRIC_PREFIX} prefix")
    # One name per line and nothing else, so that the file can be fed to grep -F / a shell loop as is.
    content = "".join(n + "\n" for n in exported)
    out = Path(args.out)
    if args.check:
        ck.check(out.exists() and out.read_text() == content, f"{out} is stale: run scripts/chart_assert.py metric-names")
    else:
        changed = not out.exists() or out.read_text() != content
        out.write_text(content)
        print(f"  {'updated' if changed else 'unchanged'}: {out}")
    for n in sorted(used):
        print(f"  {n:<50} {', '.join(sorted(used[n]))}{'  (Prometheus synthetic, not listed)' if n in SYNTHETIC_METRICS else ''}")
    return ck.report()


def cmd_check_scrape(args) -> int:
    ck = Checker("check-scrape")
    names = [ln.strip() for ln in open(args.names) if ln.strip() and not ln.startswith("#")]
    samples: dict[str, set[str]] = {}
    for ln in open(args.scrape):
        if ln.startswith("#") or not ln.strip():
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?", ln)
        if m:
            labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"', m.group(3) or ""))
            samples.setdefault(m.group(1), set()).update(labels)
    for n in names:
        if ck.check(n in samples, f"{n} is not in the scrape {args.scrape}"):
            missing = EXPECTED_LABELS.get(n, set()) - samples[n]
            ck.check(not missing, f"{n} has no label(s) {sorted(missing)} in the scrape (alerts/dashboard group by them)")
    extra = sorted(s for s in samples if s.startswith(REQUIRED_METRIC_PREFIX) and s not in names
                   and not re.sub(r"_(sum|count|created)$", "_bucket", s) in names)
    if extra:
        print("  exported but unused by alerts/dashboard: " + ", ".join(extra))
    return ck.report()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    v = sub.add_parser("validate")
    v.add_argument("rendered")
    v.add_argument("--kube-version", action="append", default=None)
    d = sub.add_parser("values-doc")
    d.add_argument("--chart", default=str(CHART))
    r = sub.add_parser("rules")
    r.add_argument("rendered")
    r.add_argument("out")
    r.add_argument("--test-file")
    dr = sub.add_parser("dashboard-rules")
    dr.add_argument("rendered")
    dr.add_argument("out")
    df = sub.add_parser("dockerfile")
    df.add_argument("--dockerfile", default=str(ROOT / "Dockerfile"))
    df.add_argument("--dockerignore", default=str(ROOT / ".dockerignore"))
    df.add_argument("--cargo-toml", default=str(ROOT / "Cargo.toml"))
    m = sub.add_parser("metric-names")
    m.add_argument("--rendered")
    m.add_argument("--out", default=str(CHART / "metric-names.txt"))
    m.add_argument("--check", action="store_true")
    cs = sub.add_parser("check-scrape")
    cs.add_argument("scrape")
    cs.add_argument("--names", default=str(CHART / "metric-names.txt"))
    args = ap.parse_args(argv)
    if args.mode == "validate" and not args.kube_version:
        args.kube_version = ["1.25.0", "1.33.0"]
    return {"validate": cmd_validate, "values-doc": cmd_values_doc, "rules": cmd_rules,
            "dashboard-rules": cmd_dashboard_rules, "dockerfile": cmd_dockerfile,
            "metric-names": cmd_metric_names, "check-scrape": cmd_check_scrape}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
