#!/usr/bin/env python3
"""Assertions on the rendered ingestor Helm chart (run by scripts/test-chart.sh).

Modes:
  validate RENDERED --values CI_VALUES [--chart DIR] [--kube-version V ...]
      Schema-validates every rendered manifest (built-in kinds with kubernetes-validate, strict; the CRD
      kinds ServiceMonitor, PrometheusRule and SecretProviderClass against minimal schemas kept here;
      any other kind fails), then checks what the chart promises for those values: Guaranteed QoS with
      whole CPUs, the security context, probes, selector labels without helm.sh/chart, disjoint SYMBOLS
      per shard, the Key Vault wiring, the ServiceMonitor, the alerts and the dashboard.
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
import copy
import json
import os
import re
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import yaml

from chart_netpol import assert_network_policy

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

SELECTOR_FORBIDDEN = ("helm.sh/chart", "app.kubernetes.io/version", "app.kubernetes.io/managed-by")
PASSWORD_ENV = {"KAFKA_PASSWORD"}
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


def deep_merge(base, over):
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = deep_merge(base.get(k), v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


_SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
           "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, "m": Decimal("0.001"),
           "": 1}


def quantity(v) -> Decimal:
    """Kubernetes resource quantity -> Decimal (cores for cpu, bytes for memory)."""
    m = re.fullmatch(r"([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m|)", str(v).strip())
    if not m:
        raise ValueError(f"not a quantity: {v!r}")
    return Decimal(m.group(1)) * Decimal(_SUFFIX[m.group(2)])


def split_symbols(s) -> list[str]:
    return [x.strip() for x in str(s or "").split(",") if x.strip()]


def by_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def container_env(container: dict, configmaps: dict) -> dict:
    """Resolved env of a container: envFrom ConfigMaps first, then env (which wins, as in Kubernetes).
    Values are strings, or ('valueFrom', {...}) for references."""
    env = {}
    for src in container.get("envFrom", []) or []:
        ref = src.get("configMapRef")
        if ref and ref.get("name") in configmaps:
            for k, v in (configmaps[ref["name"]].get("data") or {}).items():
                env[k] = v
    for e in container.get("env", []) or []:
        env[e["name"]] = ("valueFrom", e["valueFrom"]) if "valueFrom" in e else e.get("value", "")
    return env


def tests_pods(docs) -> list[dict]:
    return [d for d in by_kind(docs, "Pod") if (d["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"]


def qos_class(pod_spec: dict) -> str:
    """The QoS class Kubernetes would compute for a pod spec."""
    containers = (pod_spec.get("containers") or []) + (pod_spec.get("initContainers") or [])
    guaranteed, any_set = True, False
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            any_set = True
        for r in ("cpu", "memory"):
            if r not in lim:
                guaranteed = False
                continue
            if r in req and quantity(req[r]) != quantity(lim[r]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def selector_matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in (selector or {}).items())


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


# ------------------------------------------------------------------------------------------ the promises

def expected_shards(values) -> list[list[str]]:
    if values.get("shards"):
        return [[str(s).strip() for s in shard] for shard in values["shards"]]
    symbols = split_symbols(values["env"]["SYMBOLS"])
    n = int(values.get("shardCount") or 0)
    if n > 1:
        return [[s for k, s in enumerate(symbols) if k % n == i] for i in range(n)]
    return [symbols]


def assert_chart(docs, values, release, namespace, ck: Checker):
    selector_labels = {"app.kubernetes.io/name": values.get("nameOverride") or "ingestor",
                       "app.kubernetes.io/instance": release}
    configmaps = {d["metadata"]["name"]: d for d in by_kind(docs, "ConfigMap")}
    deployments = by_kind(docs, "Deployment")
    services = by_kind(docs, "Service")
    spcs = by_kind(docs, "SecretProviderClass")
    sas = {d["metadata"]["name"]: d for d in by_kind(docs, "ServiceAccount")}
    kv = values["keyVault"]
    wi = values["azure"]["workloadIdentity"]

    # Names, labels, namespaces.
    for d in docs:
        md = d.get("metadata") or {}
        name = f"{d['kind']}/{md.get('name')}"
        ck.check(len(md.get("name", "")) <= 63, f"{name}: name longer than 63 characters")
        labels = md.get("labels") or {}
        ck.check(selector_matches(selector_labels, labels) or d["kind"] == "Pod" and "helm.sh/hook" in (md.get("annotations") or {}),
                 f"{name}: missing the selector labels {selector_labels}")
        ck.check("helm.sh/chart" in labels, f"{name}: missing the helm.sh/chart label")
        ck.check(d["kind"] != "Secret", f"{name}: the chart must never render a Secret")

    # Deployments and shards.
    want_shards = expected_shards(values)
    sharded = bool(values.get("shards")) or int(values.get("shardCount") or 0) > 1
    ck.check(len(deployments) == len(want_shards),
             f"expected {len(want_shards)} Deployment(s), rendered {len(deployments)}")
    seen_symbols: dict[str, str] = {}
    got_shards = []
    topics = set()
    for dep in deployments:
        name = f"Deployment/{dep['metadata']['name']}"
        spec = dep["spec"]
        match = spec["selector"]["matchLabels"]
        tmpl = spec["template"]
        pod_labels = tmpl["metadata"].get("labels") or {}
        pod = tmpl["spec"]
        for bad in SELECTOR_FORBIDDEN:
            ck.check(bad not in match, f"{name}: selector contains {bad} (selectors are immutable)")
        ck.check(selector_matches(match, pod_labels), f"{name}: selector does not match its pod labels")
        want_match = dict(selector_labels)
        if sharded:
            ck.check("shard" in match, f"{name}: sharded Deployment has no `shard` selector label")
            want_match["shard"] = match.get("shard")
        ck.check(match == want_match, f"{name}: selector {match} != {want_match}")
        ck.check(spec.get("replicas") == values["replicaCount"], f"{name}: replicas != replicaCount")

        ann = tmpl["metadata"].get("annotations") or {}
        ck.check(re.fullmatch(r"[0-9a-f]{64}", str(ann.get("checksum/config", ""))),
                 f"{name}: pod template lacks a sha256 checksum/config annotation")
        for k, v in (values.get("podAnnotations") or {}).items():
            ck.check(ann.get(k) == v, f"{name}: podAnnotation {k} missing")

        # QoS and CPU pinning.
        ck.check(qos_class(pod) == "Guaranteed", f"{name}: QoS class is {qos_class(pod)}, not Guaranteed")
        for c in (pod.get("containers") or []) + (pod.get("initContainers") or []):
            res = c.get("resources") or {}
            req, lim = res.get("requests") or {}, res.get("limits") or {}
            for r in ("cpu", "memory"):
                ck.check(r in req and r in lim and quantity(req[r]) == quantity(lim[r]),
                         f"{name}/{c['name']}: {r} requests {req.get(r)} != limits {lim.get(r)}")
            if "cpu" in lim:
                cpu = quantity(lim["cpu"])
                ck.check(cpu == cpu.to_integral_value() and cpu >= 1,
                         f"{name}/{c['name']}: cpu {lim['cpu']} is not a whole number of CPUs "
                         f"(the static CPU manager pins only integer CPUs)")
            want_res = values["resources"]
            ck.check(quantity(lim.get("cpu", 0)) == quantity(want_res["limits"]["cpu"])
                     and quantity(lim.get("memory", 0)) == quantity(want_res["limits"]["memory"]),
                     f"{name}/{c['name']}: resources {res} differ from values {want_res}")

        # Security context.
        psc = pod.get("securityContext") or {}
        ck.check(psc.get("runAsNonRoot") is True, f"{name}: pod securityContext.runAsNonRoot is not true")
        ck.check((psc.get("runAsUser") or 0) > 0, f"{name}: pod runs as uid 0 or unset")
        for c in pod["containers"]:
            sc = c.get("securityContext") or {}
            cname = f"{name}/{c['name']}"
            ck.check(sc.get("runAsNonRoot") is True, f"{cname}: runAsNonRoot is not true")
            ck.check(sc.get("readOnlyRootFilesystem") is True, f"{cname}: readOnlyRootFilesystem is not true")
            ck.check(sc.get("allowPrivilegeEscalation") is False, f"{cname}: allowPrivilegeEscalation is not false")
            ck.check("ALL" in ((sc.get("capabilities") or {}).get("drop") or []), f"{cname}: capabilities.drop lacks ALL")
            ck.check(not (sc.get("capabilities") or {}).get("add"), f"{cname}: adds capabilities")
            ck.check(sc.get("privileged") in (None, False), f"{cname}: privileged")
            seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
            ck.check(seccomp == "RuntimeDefault", f"{cname}: seccompProfile is {seccomp}, not RuntimeDefault")
            mounts = {m["mountPath"]: m for m in c.get("volumeMounts") or []}
            vols = {v["name"]: v for v in pod.get("volumes") or []}
            tmp = mounts.get("/tmp")
            ck.check(tmp and "emptyDir" in vols.get(tmp["name"], {}), f"{cname}: /tmp is not an emptyDir")

            # Ports and probes.
            ports = {p.get("name"): p for p in c.get("ports") or []}
            prom_port = int(values["env"]["PROM_PORT"])
            ck.check("metrics" in ports and ports["metrics"]["containerPort"] == prom_port,
                     f"{cname}: no port named metrics on PROM_PORT {prom_port}")
            for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                hg = (c.get(probe) or {}).get("httpGet") or {}
                ck.check(hg.get("path") == path and hg.get("port") in ("metrics", prom_port),
                         f"{cname}: {probe} is not GET {path} on the metrics port ({hg})")

            # Environment.
            env = container_env(c, configmaps)
            for e in c.get("env") or []:
                ck.check(not (e["name"] in PASSWORD_ENV and "value" in e),
                         f"{cname}: {e['name']} has a literal value (must come from a Secret)")
            for cm in configmaps.values():
                ck.check(not (PASSWORD_ENV | {"KAFKA_PASSWORD_FILE"}) & set((cm.get("data") or {})),
                         f"ConfigMap/{cm['metadata']['name']}: holds a password variable")
            for k in ("SYMBOLS", "STREAMS", "KAFKA_BROKER", "KAFKA_TOPIC", "PROM_PORT"):
                ck.check(isinstance(env.get(k), str) and env.get(k) != "", f"{cname}: env {k} missing or empty")
            for k in ("KAFKA_USERNAME", "STREAMS", "KAFKA_BROKER", "KAFKA_TOPIC", "LOG_FORMAT", "PIN_CORE",
                      "PRODUCER_CORE"):
                want = values["env"].get(k)
                if want not in (None, ""):
                    ck.check(env.get(k) == str(want), f"{cname}: env {k}={env.get(k)!r}, values say {want!r}")
                else:
                    ck.check(k not in env, f"{cname}: env {k} rendered though empty in values")
            ck.check(env.get("PROM_PORT") == str(prom_port), f"{cname}: PROM_PORT env != containerPort")
            topics.add(env.get("KAFKA_TOPIC"))
            for e in values.get("extraEnv") or []:
                ck.check(e["name"] in env, f"{cname}: extraEnv {e['name']} missing")

            # Kafka password wiring. The ingestor refuses KAFKA_PASSWORD together with KAFKA_PASSWORD_FILE,
            # and a username without a password (or the reverse).
            csi_vols = {v["name"]: v for v in pod.get("volumes") or [] if "csi" in v}
            ck.check(not ("KAFKA_PASSWORD" in env and "KAFKA_PASSWORD_FILE" in env),
                     f"{cname}: both KAFKA_PASSWORD and KAFKA_PASSWORD_FILE are set (the ingestor refuses that)")
            ck.check(bool(env.get("KAFKA_USERNAME")) == ("KAFKA_PASSWORD" in env or "KAFKA_PASSWORD_FILE" in env),
                     f"{cname}: KAFKA_USERNAME and a password source must come together")
            if kv["enabled"]:
                pw_env = kv["syncSecret"]["enabled"] and kv["syncSecret"]["passwordEnv"]
                want_file = kv["mountPath"].rstrip("/") + "/" + kv["secretName"]
                if not pw_env:
                    ck.check(env.get("KAFKA_PASSWORD_FILE") == want_file,
                             f"{cname}: KAFKA_PASSWORD_FILE={env.get('KAFKA_PASSWORD_FILE')!r}, want {want_file!r}")
                mount = mounts.get(kv["mountPath"])
                vol = csi_vols.get(mount["name"]) if mount else None
                ck.check(vol is not None and mount.get("readOnly") is True,
                         f"{cname}: no read-only CSI volume mounted at {kv['mountPath']}")
                if vol:
                    ck.check(vol["csi"]["driver"] == "secrets-store.csi.k8s.io", f"{cname}: CSI driver is not secrets-store")
                    spc_name = vol["csi"].get("volumeAttributes", {}).get("secretProviderClass")
                    ck.check(spc_name in {s["metadata"]["name"] for s in spcs},
                             f"{cname}: CSI volume references SecretProviderClass {spc_name!r}, which is not rendered")
                if pw_env:
                    ref = env.get("KAFKA_PASSWORD")
                    ok = isinstance(ref, tuple) and ref[1].get("secretKeyRef") == {
                        "name": kv["syncSecret"]["name"], "key": kv["syncSecret"]["key"]}
                    ck.check(ok, f"{cname}: KAFKA_PASSWORD is not a secretKeyRef to the synced Secret ({ref})")
                else:
                    ck.check("KAFKA_PASSWORD" not in env, f"{cname}: KAFKA_PASSWORD set though passwordEnv is off")
            else:
                ck.check(not csi_vols and "KAFKA_PASSWORD_FILE" not in env,
                         f"{cname}: Key Vault disabled but a CSI volume / KAFKA_PASSWORD_FILE is rendered")
                eps = values.get("existingPasswordSecret") or {}
                if eps.get("name"):
                    ref = env.get("KAFKA_PASSWORD")
                    ck.check(isinstance(ref, tuple) and ref[1].get("secretKeyRef") == {"name": eps["name"], "key": eps["key"]},
                             f"{cname}: KAFKA_PASSWORD is not a secretKeyRef to existingPasswordSecret")

            symbols = split_symbols(env.get("SYMBOLS"))
            got_shards.append(symbols)
            for s in symbols:
                ck.check(s not in seen_symbols, f"symbol {s} is in both {seen_symbols.get(s)} and {name}")
                seen_symbols[s] = name

        # Workload identity and service account.
        sa_name = pod.get("serviceAccountName")
        if values["serviceAccount"]["create"]:
            ck.check(sa_name in sas, f"{name}: serviceAccountName {sa_name} is not rendered")
        if wi["enabled"]:
            ck.check(pod_labels.get("azure.workload.identity/use") == "true",
                     f"{name}: pod lacks label azure.workload.identity/use=\"true\"")
            ck.check("azure.workload.identity/use" not in match, f"{name}: workload identity label in the selector")
            if sa_name in sas:
                ck.check((sas[sa_name]["metadata"].get("annotations") or {}).get("azure.workload.identity/client-id")
                         == wi["clientId"], f"ServiceAccount/{sa_name}: client-id annotation != values clientId")
        else:
            ck.check("azure.workload.identity/use" not in pod_labels, f"{name}: workload identity label though disabled")
        ck.check(pod.get("automountServiceAccountToken") is False or values["serviceAccount"]["automountServiceAccountToken"],
                 f"{name}: automountServiceAccountToken is not false")

        # Scheduling knobs pass through.
        for key in ("nodeSelector", "tolerations", "priorityClassName"):
            if values.get(key):
                ck.check(pod.get(key) == values[key], f"{name}: {key} not rendered from values")
        for key in ("affinity", "topologySpreadConstraints"):
            if values.get(key):
                ck.check(pod.get(key) and "{{" not in json.dumps(pod.get(key)), f"{name}: {key} missing or not templated")

    if deployments:
        ck.check(sorted(map(sorted, got_shards)) == sorted(map(sorted, want_shards)),
                 f"shard symbol lists {got_shards} != expected {want_shards}")
        ck.check(len(topics) == 1, f"shards publish to different topics: {topics}")
        if sharded:
            shard_ids = [d["spec"]["selector"]["matchLabels"].get("shard") for d in deployments]
            ck.check(len(set(shard_ids)) == len(shard_ids), f"shard labels are not unique: {shard_ids}")

    # Service.
    ck.check(len(services) == 1, f"expected one Service, got {len(services)}")
    for svc in services:
        ports = {p["name"]: p for p in svc["spec"]["ports"]}
        ck.check("metrics" in ports and ports["metrics"]["port"] == values["service"]["port"],
                 "Service: no port `metrics` on service.port")
        ck.check(ports.get("metrics", {}).get("targetPort") in ("metrics", int(values["env"]["PROM_PORT"])),
                 "Service: metrics targetPort is not the container's metrics port")
        sel = svc["spec"]["selector"]
        ck.check(sel == selector_labels, f"Service: selector {sel} != {selector_labels}")
        for dep in deployments:
            ck.check(selector_matches(sel, dep["spec"]["template"]["metadata"]["labels"]),
                     f"Service selector misses the pods of {dep['metadata']['name']}")

    # ServiceMonitor.
    sms = by_kind(docs, "ServiceMonitor")
    if values["serviceMonitor"]["enabled"]:
        ck.check(len(sms) == 1, f"expected one ServiceMonitor, got {len(sms)}")
        for sm in sms:
            ep = sm["spec"]["endpoints"][0]
            ck.check(ep.get("port") == "metrics", "ServiceMonitor: endpoint port is not `metrics`")
            ck.check(ep.get("path") == "/metrics", f"ServiceMonitor: path {ep.get('path')} != /metrics")
            ck.check(ep.get("interval") == "30s", f"ServiceMonitor: interval {ep.get('interval')} != 30s")
            ck.check(sm["spec"]["selector"]["matchLabels"] == selector_labels, "ServiceMonitor: selector != selector labels")
            for svc in services:
                ck.check(selector_matches(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"]),
                         "ServiceMonitor does not select the Service")
            ck.check(sm["spec"].get("namespaceSelector", {}).get("matchNames") == [namespace],
                     "ServiceMonitor: namespaceSelector is not the release namespace")
            for k, v in (values["serviceMonitor"].get("additionalLabels") or {}).items():
                ck.check(sm["metadata"]["labels"].get(k) == v, f"ServiceMonitor: additional label {k} missing")
    else:
        ck.check(not sms, "ServiceMonitor rendered though serviceMonitor.enabled is false")

    # SecretProviderClass.
    if kv["enabled"]:
        ck.check(len(spcs) == 1, f"expected one SecretProviderClass, got {len(spcs)}")
        for spc in spcs:
            sp = spc["spec"]
            p = sp["parameters"]
            ck.check(sp["provider"] == "azure", "SecretProviderClass: provider is not azure")
            ck.check(p.get("usePodIdentity") == "false", "SecretProviderClass: usePodIdentity is not \"false\"")
            ck.check(p.get("clientID") == wi["clientId"], "SecretProviderClass: clientID != azure.workloadIdentity.clientId")
            ck.check(p.get("keyvaultName") == kv["name"], "SecretProviderClass: keyvaultName != keyVault.name")
            ck.check(p.get("tenantID") == values["azure"]["tenantId"], "SecretProviderClass: tenantID != azure.tenantId")
            try:
                objs = [yaml.safe_load(o) for o in yaml.safe_load(p.get("objects", ""))["array"]]
            except Exception as e:  # noqa: BLE001 - report any parse problem as a failure
                objs = []
                ck.check(False, f"SecretProviderClass: objects do not parse: {e}")
            ck.check(objs == [{"objectName": kv["secretName"], "objectType": "secret", "objectVersion": ""}],
                     f"SecretProviderClass: objects {objs} != the Key Vault secret {kv['secretName']}")
            if kv["syncSecret"]["enabled"]:
                ck.check(sp.get("secretObjects") == [{
                    "secretName": kv["syncSecret"]["name"], "type": "Opaque",
                    "data": [{"objectName": kv["secretName"], "key": kv["syncSecret"]["key"]}]}],
                    f"SecretProviderClass: secretObjects {sp.get('secretObjects')} do not sync "
                    f"{kv['secretName']} into {kv['syncSecret']['name']}/{kv['syncSecret']['key']}")
            else:
                ck.check("secretObjects" not in sp, "SecretProviderClass: secretObjects though syncSecret is off")
    else:
        ck.check(not spcs, "SecretProviderClass rendered though keyVault.enabled is false")

    # PodDisruptionBudget.
    pdbs = by_kind(docs, "PodDisruptionBudget")
    if values["podDisruptionBudget"]["enabled"]:
        ck.check(len(pdbs) == 1, f"expected one PodDisruptionBudget, got {len(pdbs)}")
        for pdb in pdbs:
            ml = pdb["spec"]["selector"]["matchLabels"]
            ck.check(ml == selector_labels, f"PodDisruptionBudget: selector {ml} != selector labels")
            ck.check("minAvailable" not in pdb["spec"], "PodDisruptionBudget uses minAvailable (blocks drains)")

    assert_network_policy(docs, values, selector_labels, configmaps, tests_pods(docs), ck)

    # helm test pod.
    tests = tests_pods(docs)
    ck.check(len(tests) == 1, f"expected one helm test Pod, got {len(tests)}")
    selectors = [(f"Service/{s['metadata']['name']}", s["spec"]["selector"]) for s in services] + \
        [(f"{d['kind']}/{d['metadata']['name']}", d["spec"]["selector"]["matchLabels"])
         for d in deployments + by_kind(docs, "PodDisruptionBudget")]
    for t in tests:
        for who, sel in selectors:
            ck.check(not selector_matches(sel, t["metadata"].get("labels") or {}),
                     f"{who} selects the helm test pod {t['metadata']['name']}")
        cmd = " ".join(t["spec"]["containers"][0].get("command", []) + t["spec"]["containers"][0].get("args", []))
        svc_name = services[0]["metadata"]["name"] if services else "?"
        ck.check(re.search(rf"(wget|curl)\b.*http://{re.escape(svc_name)}(\.{re.escape(namespace)}(\.svc)?)?:"
                           rf"{values['service']['port']}/readyz", cmd), f"helm test pod does not fetch /readyz of the Service: {cmd}")
        ck.check(t["spec"].get("restartPolicy") == "Never", "helm test pod restartPolicy is not Never")
        sc = t["spec"]["containers"][0].get("securityContext") or {}
        ck.check(t["spec"].get("securityContext", {}).get("runAsNonRoot") is True and sc.get("allowPrivilegeEscalation") is False,
                 "helm test pod is not non-root / no-escalation")

    # PrometheusRule.
    prs = by_kind(docs, "PrometheusRule")
    if values["prometheusRule"]["enabled"]:
        ck.check(len(prs) == 1, f"expected one PrometheusRule, got {len(prs)}")
        rules = [r for pr in prs for g in pr["spec"]["groups"] for r in g["rules"]]
        alerts = {r.get("alert"): r for r in rules if "alert" in r}
        expect = {
            "MarketflowIngestorNoMessagesSent": r"^rate\(marketflow_ingestor_messages_sent_total\{[^}]*\}\[5m\]\) == 0$",
            "MarketflowIngestorLatencyP99High": r"^histogram_quantile\(0\.99, sum by \([^)]*\ble, stage\) \(rate\(marketflow_ingestor_latency_seconds_bucket\{[^}]*\}\[5m\]\)\)\) > [0-9.]+$",
            "MarketflowIngestorReconnectStorm": r"marketflow_ingestor_ws_reconnects_total\{",
            "MarketflowIngestorStreamGaps": r"marketflow_ingestor_gaps_total\{",
            "MarketflowIngestorKafkaDeliveryErrors": r"marketflow_ingestor_kafka_delivery_errors_total\{",
            "MarketflowIngestorRingOccupancyHigh": r"marketflow_ingestor_ring_occupancy_ratio\{",
            "MarketflowIngestorDown": r"^up\{",
        }
        sel = values["prometheusRule"].get("seriesSelector") or f'namespace="{namespace}",job="{services[0]["metadata"]["name"] if services else "?"}"'
        for alert, pattern in expect.items():
            r = alerts.get(alert)
            if not ck.check(r is not None, f"PrometheusRule: alert {alert} missing"):
                continue
            expr = str(r["expr"]).strip()
            ck.check(re.search(pattern, expr), f"PrometheusRule: {alert} expr {expr!r} does not match {pattern!r}")
            ck.check("{" + sel + "}" in expr or "{" + sel + "," in expr,
                     f"PrometheusRule: {alert} is not scoped to the release ({sel})")
            ck.check(r.get("labels", {}).get("severity") in ("critical", "warning", "info"), f"{alert}: no severity label")
            ck.check(r.get("annotations", {}).get("summary") and r.get("annotations", {}).get("description"),
                     f"{alert}: summary/description annotations missing")
            for k, v in (values["prometheusRule"].get("alertLabels") or {}).items():
                ck.check(r["labels"].get(k) == v, f"{alert}: alert label {k} missing")
    else:
        ck.check(not prs, "PrometheusRule rendered though prometheusRule.enabled is false")

    # Dashboard.
    dash_cms = [c for c in configmaps.values() if (c["metadata"].get("labels") or {}).get("grafana_dashboard") == "1"]
    if values["dashboard"]["enabled"]:
        ck.check(len(dash_cms) == 1, f"expected one dashboard ConfigMap labelled grafana_dashboard=\"1\", got {len(dash_cms)}")
        for cm in dash_cms:
            data = cm.get("data") or {}
            ck.check(all(k.endswith(".json") for k in data), "dashboard ConfigMap keys must end in .json")
            for key, text in data.items():
                try:
                    dash = json.loads(text)
                except json.JSONDecodeError as e:
                    ck.check(False, f"dashboard {key} is not JSON: {e}")
                    continue
                assert_dashboard(dash, ck)
    else:
        ck.check(not dash_cms, "dashboard ConfigMap rendered though dashboard.enabled is false")


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
    chart = Path(args.chart)
    values = yaml.safe_load(open(chart / "values.yaml"))
    for vf in args.values or []:
        values = deep_merge(values, yaml.safe_load(open(vf)) or {})
    docs = load_docs(Path(args.rendered))
    ck = Checker(Path(args.rendered).stem)
    ck.check(docs, "nothing rendered")
    validate_schemas(docs, args.kube_version, ck)
    try:
        assert_chart(docs, values, args.release, args.namespace, ck)
    except Exception as e:  # noqa: BLE001 - a crash in the checks is a failure, with its reason
        import traceback
        traceback.print_exc()
        ck.check(False, f"assertions crashed: {e!r}")
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
    schema = json.load(open(chart / "values.schema.json"))
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


def rdkafka_build_packages(cargo_toml: Path) -> tuple[list[str], list[str], list[str]]:
    """Debian packages that building librdkafka needs with the rdkafka features of Cargo.toml, those it
    does not need, and the runtime libraries the binary then links (rdkafka-sys build.rs: without
    `cmake-build`, librdkafka's mklove ./configure + `make libs`, which builds the C++ wrapper too)."""
    import tomllib
    deps = tomllib.loads(cargo_toml.read_text()).get("dependencies", {})
    rd = deps.get("rdkafka", {})
    rd = rd if isinstance(rd, dict) else {}
    feats = set(rd.get("features", []))
    if rd.get("default-features", True):
        feats.add("libz")
    if feats & {"ssl-vendored", "gssapi", "gssapi-vendored", "sasl"}:
        feats.add("ssl")
    if feats & {"gssapi-vendored", "sasl"}:
        feats.add("gssapi")
    builder, unneeded, runtime = ["make", "g++", "pkg-config"], [], []
    (builder if {"cmake-build", "cmake_build"} & feats else unneeded).append("cmake")
    if "ssl" in feats and "ssl-vendored" not in feats:
        builder.append("libssl-dev"); runtime.append("libssl3")
    if "libz" in feats:
        builder.append("zlib1g-dev"); runtime.append("zlib1g")
    if "gssapi" in feats and "gssapi-vendored" not in feats:
        builder.append("libsasl2-dev"); runtime.append("libsasl2-2")
    else:
        unneeded.append("libsasl2-dev")
    return builder, unneeded, runtime


def cmd_dockerfile(args) -> int:
    ck = Checker("dockerfile")
    text = open(args.dockerfile).read()
    lines = [ln for ln in re.sub(r"\\\n", " ", text).splitlines()]
    instr = [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1] if len(ln.split(None, 1)) > 1 else "")
             for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    stages, cur = [], None
    for op, rest in instr:
        if op == "FROM":
            cur = {"from": rest, "ops": []}
            stages.append(cur)
        elif cur is not None:
            cur["ops"].append((op, rest))
    ck.check(len(stages) >= 2, "Dockerfile is not multi-stage")
    build_cmd = "cargo build --release --locked --bin marketflow-ingestor"
    ck.check(f"# BUILD-CMD: {build_cmd}" in text.splitlines(), "no `# BUILD-CMD:` marker line with the exact build command")
    ck.check(any(op == "RUN" and build_cmd in rest for s in stages[:-1] for op, rest in s["ops"]),
             "the build stage does not RUN the exact build command")
    ck.check(stages and stages[0]["from"].split()[0] == "rust:1-bookworm", "builder is not rust:1-bookworm")
    builder_pkgs, builder_unneeded, runtime_pkgs = rdkafka_build_packages(Path(args.cargo_toml))
    builder_run = " ".join(r for op, r in (stages[0]["ops"] if stages else []) if op == "RUN")
    has_pkg = lambda pkg, text: re.search(rf"(?<![\w.+-]){re.escape(pkg)}(?![\w.+-])", text)  # noqa: E731
    for pkg in builder_pkgs:
        ck.check(has_pkg(pkg, builder_run), f"builder lacks {pkg} (needed to build librdkafka with {args.cargo_toml}'s features)")
    for pkg in builder_unneeded:
        ck.check(not has_pkg(pkg, builder_run), f"builder installs {pkg}, which the rdkafka features in {args.cargo_toml} do not use")
    builder_text = " ".join(f"{op} {r}" for op, r in (stages[0]["ops"] if stages else []))
    ck.check(re.search(r"\bARG GIT_COMMIT\b", builder_text), "builder has no `ARG GIT_COMMIT` (build.rs records the commit from it)")
    build_idx = next((i for i, (op, r) in enumerate(stages[0]["ops"] if stages else []) if op == "RUN" and build_cmd in r), None)
    arg_idx = next((i for i, (op, r) in enumerate(stages[0]["ops"] if stages else []) if op == "ARG" and r.split("=")[0].strip() == "GIT_COMMIT"), None)
    ck.check(arg_idx is not None and build_idx is not None and arg_idx < build_idx, "ARG GIT_COMMIT is not declared before the cargo build")
    final = stages[-1] if stages else {"from": "", "ops": []}
    ck.check(final["from"].split()[0] == "debian:bookworm-slim", "runtime is not debian:bookworm-slim")
    final_run = " ".join(r for op, r in final["ops"] if op == "RUN")
    for pkg in ("ca-certificates", *runtime_pkgs):
        ck.check(has_pkg(pkg, final_run), f"runtime lacks {pkg}")
    for tool in ("cmake", "gcc", "g\\+\\+", "make", "cargo", "rustc", "pkg-config", r"\S+-dev", "build-essential", "curl", "wget"):
        ck.check(not re.search(rf"apt-get install[^&]*\s{tool}(\s|$)", final_run), f"runtime installs build tool {tool}")
    ck.check("--no-install-recommends" in final_run and "rm -rf /var/lib/apt/lists" in final_run,
             "runtime apt-get lacks --no-install-recommends / list cleanup")
    users = [r.strip() for op, r in final["ops"] if op == "USER"]
    ck.check(users and users[-1].split(":")[0] == "10001", f"final USER is {users[-1] if users else None}, want 10001")
    ck.check(re.search(r"useradd[^&]*--uid 10001", final_run), "runtime does not create uid 10001")
    ck.check(any(op == "EXPOSE" and "8000" in r.split() for op, r in final["ops"]), "no EXPOSE 8000")
    eps = [r for op, r in final["ops"] if op == "ENTRYPOINT"]
    ck.check(eps and eps[-1].strip().startswith("[") and "marketflow-ingestor" in eps[-1], "ENTRYPOINT is not the binary in exec form")
    for op, r in instr:
        if op in ("ENV", "ARG"):
            ck.check(not re.search(r"(PASSWORD|SECRET|TOKEN|CONNECTIONSTRING)", r, re.I), f"{op} {r!r} looks like a secret")
        if op == "ADD":
            ck.check(not re.search(r"https?://", r), f"ADD of a URL: {r}")
    copies_from_builder = [r for op, r in final["ops"] if op == "COPY"]
    ck.check(all("--from=" in r for r in copies_from_builder), "runtime COPYs from the build context (sources/secrets)")
    if os.path.exists(args.dockerignore):
        ign = [ln.strip() for ln in open(args.dockerignore) if ln.strip() and not ln.startswith("#")]
        for must in ("target/", ".git/", ".env"):
            ck.check(any(i.rstrip("/") == must.rstrip("/") for i in ign), f".dockerignore does not exclude {must}")
        for keep in ("Cargo.lock", "Cargo.toml", "src"):
            ck.check(not any(i.rstrip("/") == keep for i in ign), f".dockerignore excludes {keep}, which the build needs")
        # Cargo resolves the whole workspace even for `--bin marketflow-ingestor`: every member's
        # manifest and targets must be in the context. A pattern excludes a path when it matches
        # the path or one of its parent folders (Docker's rule; no `!` re-includes are used here);
        # a pattern naming something inside a member cuts into it too.
        import fnmatch
        import tomllib
        ws = tomllib.loads(Path(args.cargo_toml).read_text()).get("workspace", {})
        members = [m for m in ws.get("members", []) if m.strip("./")]
        ck.check(members, f"{args.cargo_toml} has no [workspace] members besides the root")
        def excluded(path: str) -> str | None:
            parts = path.strip("/").split("/")
            prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
            return next((i for i in ign if not i.startswith("!")
                         for p in prefixes if fnmatch.fnmatchcase(p, i.strip("/"))), None)
        for member in members:
            pattern = excluded(member) or next((i for i in ign if i.strip("/").startswith(member.strip("/") + "/")), None)
            ck.check(pattern is None, f".dockerignore pattern {pattern!r} excludes workspace member {member}")
        ck.check(excluded("bench-results") is not None, ".dockerignore does not exclude bench-results/ (saved load-test results)")
    else:
        ck.check(False, f"{args.dockerignore} missing")
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
    v.add_argument("--values", action="append", help="values file(s) the manifest was rendered with, in order")
    v.add_argument("--chart", default=str(CHART))
    v.add_argument("--release", default="ingestor")
    v.add_argument("--namespace", default="marketflow")
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
