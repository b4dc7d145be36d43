"""NetworkPolicy and ConfigMap-secret assertions of scripts/chart_assert.py (kept apart to keep that
file short): what the chart promises about network exposure and secrets in rendered values."""

from __future__ import annotations

import re


def by_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def selector_matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def assert_network_policy(docs, values, selector_labels, configmaps, tests, ck):
    # NetworkPolicy: only the metrics port, only from the monitoring namespace (and the helm test pod);
    # egress only to DNS, Binance and the Kafka ports of KAFKA_BROKER (unless given).
    nps = by_kind(docs, "NetworkPolicy")
    npv = values.get("networkPolicy") or {}
    if npv.get("enabled"):
        ck.check(len(nps) == 1, f"expected one NetworkPolicy, got {len(nps)}")
        for np_ in nps:
            spec = np_["spec"]
            ck.check(spec["podSelector"].get("matchLabels") == selector_labels,
                     f"NetworkPolicy: podSelector {spec['podSelector']} != selector labels")
            ck.check(sorted(spec.get("policyTypes") or []) == ["Egress", "Ingress"],
                     "NetworkPolicy: policyTypes must be Ingress and Egress (default deny both ways)")
            ingress = spec.get("ingress") or []
            ck.check(len(ingress) == 1, f"NetworkPolicy: expected one ingress rule, got {len(ingress)}")
            for rule in ingress:
                ck.check(rule.get("ports") == [{"protocol": "TCP", "port": int(values["env"]["PROM_PORT"])}],
                         f"NetworkPolicy: ingress ports {rule.get('ports')} are not exactly the metrics port")
                peers = rule.get("from") or []
                want_ns = npv["metrics"].get("namespaceSelector") or \
                    {"matchLabels": {"kubernetes.io/metadata.name": npv["metrics"]["namespace"]}}
                ns_peers = [p for p in peers if "namespaceSelector" in p]
                ck.check(len(ns_peers) == 1 and ns_peers[0]["namespaceSelector"] == want_ns,
                         f"NetworkPolicy: ingress namespaces {ns_peers} != {want_ns}")
                ck.check(all("ipBlock" not in p for p in peers), "NetworkPolicy: ingress from an ipBlock")
                for t in tests:
                    ck.check(any(set(p) == {"podSelector"} and selector_matches(p["podSelector"].get("matchLabels") or {},
                                                                                t["metadata"].get("labels") or {})
                                 for p in peers), "NetworkPolicy: the helm test pod cannot reach the metrics port")
            egress = spec.get("egress") or []
            ports = [sorted((p.get("protocol"), p.get("port")) for p in r.get("ports") or []) for r in egress]
            ck.check([("TCP", 53), ("UDP", 53)] in ports, f"NetworkPolicy: no DNS egress rule in {ports}")
            ck.check(all(r.get("ports") for r in egress), "NetworkPolicy: an egress rule without ports (any port)")
            want_kafka = npv["egress"]["kafka"].get("ports") or \
                sorted({int(b.rsplit(":", 1)[1]) for b in str(values["env"]["KAFKA_BROKER"]).split(",")})
            ck.check(sorted(("TCP", p) for p in set(want_kafka)) in ports,
                     f"NetworkPolicy: no egress rule for the Kafka ports {want_kafka} in {ports}")
            want_binance = sorted(("TCP", p) for p in set(npv["egress"]["binance"]["ports"]))
            ck.check(want_binance in ports, f"NetworkPolicy: no egress rule for Binance {want_binance} in {ports}")
    else:
        ck.check(not nps, "NetworkPolicy rendered though networkPolicy.enabled is false")

    # No secret librdkafka property in a ConfigMap (the schema refuses them; this checks the rendering).
    for cm in configmaps.values():
        props = str((cm.get("data") or {}).get("KAFKA_PROPS", ""))
        for item in filter(None, (i.strip() for i in re.split(r"[;\n]", props))):
            key = item.split("=", 1)[0].lower()
            ck.check(not re.search(r"pass|pwd|secret|token|jaas|credential|pem|oauthbearer\.config|key$", key),
                     f"ConfigMap/{cm['metadata']['name']}: KAFKA_PROPS carries the secret property {key}")
