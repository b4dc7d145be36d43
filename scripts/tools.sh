# shellcheck shell=bash
# Tool installers shared by scripts/test-chart.sh and scripts/test-observability.sh. Source it; it
# defines functions only and changes no shell options.
#
#   TOOLS_DIR      cache of built tools (default ${XDG_CACHE_HOME:-~/.cache}/marketflow-tools)
#   HELM_VERSION   helm release built by install_helm (default v3.22.0)
#   HELM           use this helm binary instead of building one
#   HELM_UNITTEST_VERSION  helm-unittest release built by install_helm_unittest (default v1.1.2)
#
# Each function prints what it found or did and returns non-zero when the tool cannot be had.

TOOLS_DIR="${TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/marketflow-tools}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
HELM_UNITTEST_VERSION="${HELM_UNITTEST_VERSION:-v1.1.2}"
# helm finds the helm-unittest plugin here (test-chart.sh exports HELM_PLUGINS to it), so the user's own
# plugin directory is neither needed nor touched.
HELM_PLUGINS_DIR="$TOOLS_DIR/helm-plugins"

APT_UPDATED="${APT_UPDATED:-0}"
apt_update_once() {
  [[ $APT_UPDATED -eq 1 ]] && return 0
  apt-get -o DPkg::Lock::Timeout=300 update -q && APT_UPDATED=1
}

# install_helm: $HELM if set, else helm $HELM_VERSION in $TOOLS_DIR/bin, built with `go install` when
# missing (Go must be installed).
install_helm() {
  if [[ -n "${HELM:-}" ]]; then
    "$HELM" version >/dev/null || { echo "HELM=$HELM does not run"; return 1; }
    return 0
  fi
  local bin="$TOOLS_DIR/bin/helm"
  if [[ -x "$bin" ]] && go version -m "$bin" 2>/dev/null | grep -Eq "^\s+mod\s+helm.sh/helm/v3\s+$HELM_VERSION\b"; then
    echo "helm $HELM_VERSION already in $bin"
    return 0
  fi
  if ! command -v go >/dev/null; then
    echo "Go is needed to build helm $HELM_VERSION (or set HELM=/path/to/helm)"
    return 1
  fi
  mkdir -p "$TOOLS_DIR/bin"
  echo "building helm $HELM_VERSION with $(go version)"
  # `go install` alone leaves out the -X flags of helm's Makefile: such a helm reports version "v3.22"
  # and assumes Kubernetes v1.20 when no cluster is reachable (so `helm template` of a chart with a
  # kubeVersion constraint fails). Set them as the release build does, from helm's own go.mod.
  local dir client_go minor
  dir="$(GOFLAGS="" go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  client_go="$(awk '$1 == "k8s.io/client-go" { print $2 }' "$dir/go.mod")"   # e.g. v0.33.3
  minor="$(cut -d. -f2 <<<"$client_go")"
  [[ -n "$minor" ]] || { echo "cannot find k8s.io/client-go in $dir/go.mod"; return 1; }
  local x="-X helm.sh/helm/v3"
  GOFLAGS="" GOBIN="$TOOLS_DIR/bin" CGO_ENABLED=0 go install -trimpath -ldflags "-w -s \
    $x/internal/version.version=$HELM_VERSION $x/internal/version.gitTreeState=clean \
    $x/pkg/lint/rules.k8sVersionMajor=1 $x/pkg/lint/rules.k8sVersionMinor=$minor \
    $x/pkg/chartutil.k8sVersionMajor=1 $x/pkg/chartutil.k8sVersionMinor=$minor" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" || return 1
  "$TOOLS_DIR/bin/helm" version
}

# install_helm_unittest: the helm-unittest plugin $HELM_UNITTEST_VERSION as a plugin directory
# $HELM_PLUGINS_DIR/unittest (its own plugin.yaml, and the binary under the name its platformCommand gives
# for this OS/arch), built from the Go module when missing (Go must be installed). Use it with
# `HELM_PLUGINS=$HELM_PLUGINS_DIR helm unittest CHART`.
install_helm_unittest() {
  local dir="$HELM_PLUGINS_DIR/unittest" want="${HELM_UNITTEST_VERSION#v}"
  if [[ -f "$dir/plugin.yaml" ]] && grep -qx "version: \"$want\"" "$dir/plugin.yaml" \
    && HELM_PLUGINS="$HELM_PLUGINS_DIR" "${HELM:-$TOOLS_DIR/bin/helm}" unittest --help >/dev/null 2>&1; then
    echo "helm-unittest $HELM_UNITTEST_VERSION already in $dir"
    return 0
  fi
  if ! command -v go >/dev/null; then
    echo "Go is needed to build helm-unittest $HELM_UNITTEST_VERSION"
    return 1
  fi
  echo "building helm-unittest $HELM_UNITTEST_VERSION with $(go version)"
  # Not `go install module@version`: helm-unittest's go.mod has a replace directive, which go install
  # refuses. Build it as the main module from its own source and go.sum, as its Makefile does (with its
  # -X for the plugin version), in the module cache (read-only: -mod=readonly, nothing is written there).
  local src os arch bin
  src="$(GOFLAGS="" go mod download -json "github.com/helm-unittest/helm-unittest@$HELM_UNITTEST_VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -n "$src" && -f "$src/plugin.yaml" ]] || { echo "cannot download github.com/helm-unittest/helm-unittest@$HELM_UNITTEST_VERSION"; return 1; }
  grep -qx "version: \"$want\"" "$src/plugin.yaml" || { echo "$src/plugin.yaml is not version $want"; return 1; }
  os="$(go env GOOS)" arch="$(go env GOARCH)"
  [[ $os == darwin ]] && os=macos
  # The file name platformCommand runs on this OS/arch, e.g. $HELM_PLUGIN_DIR/untt-linux-amd64.
  bin="untt-$os-$arch"
  grep -q "\$HELM_PLUGIN_DIR/$bin\"" "$src/plugin.yaml" || { echo "helm-unittest has no platformCommand for $os-$arch"; return 1; }
  rm -rf "$dir.new" && mkdir -p "$dir.new" || return 1
  (cd "$src" && GOFLAGS="-mod=readonly" CGO_ENABLED=0 go build -trimpath -ldflags "-s -w \
    -X github.com/helm-unittest/helm-unittest/internal/build.version=$want" -o "$dir.new/$bin" ./cmd/helm-unittest) \
    || { rm -rf "$dir.new"; return 1; }
  cp "$src/plugin.yaml" "$dir.new/plugin.yaml" && chmod u+w "$dir.new/plugin.yaml" || return 1
  rm -rf "$dir" && mv "$dir.new" "$dir" || return 1
  HELM_PLUGINS="$HELM_PLUGINS_DIR" "${HELM:-$TOOLS_DIR/bin/helm}" plugin list
}

# install_prometheus_package CMD...: makes sure each CMD (promtool, prometheus) is on PATH, installing
# Debian's `prometheus` package (it ships both) when one is missing. The packaged service is never
# started: a policy-rc.d that exits 101 is in place during the install (invoke-rc.d and
# deb-systemd-invoke then start nothing; any policy that was there is restored), and under systemd the
# unit is disabled and stopped afterwards. Callers run their own prometheus process.
install_prometheus_package() {
  local cmds=("$@") missing=() c
  ((${#cmds[@]})) || cmds=(promtool)
  for c in "${cmds[@]}"; do command -v "$c" >/dev/null || missing+=("$c"); done
  if ((${#missing[@]})); then
    if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null; then
      echo "not found: ${missing[*]}; install them (Debian: apt-get install prometheus) or put them on PATH"
      return 1
    fi
    echo "installing Debian package prometheus for: ${missing[*]}"
    apt_update_once || return 1
    local policy=/usr/sbin/policy-rc.d backup="" rc
    if [[ -e $policy ]]; then
      backup="$(mktemp "${TMPDIR:-/tmp}/policy-rc.d.XXXXXX")" && cp -p "$policy" "$backup" || return 1
    fi
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends prometheus
    rc=$?
    if [[ -n $backup ]]; then cp -p "$backup" "$policy" && rm -f "$backup"; else rm -f "$policy"; fi
    [[ $rc -eq 0 ]] || return $rc
    if [[ -d /run/systemd/system ]]; then
      systemctl disable --now prometheus.service >/dev/null 2>&1 || true
    fi
    for c in "${cmds[@]}"; do
      dpkg -L prometheus | grep -qx "/usr/bin/$c" || { echo "Debian package prometheus does not provide /usr/bin/$c"; return 1; }
    done
  elif [[ -d /run/systemd/system ]] && systemctl is-active --quiet prometheus.service 2>/dev/null; then
    echo "note: the packaged prometheus.service is running (left alone; this script runs its own server)"
  fi
  if pgrep -x prometheus >/dev/null; then
    echo "warning: a prometheus process is running (not started by this script): $(pgrep -x prometheus | tr '\n' ' ')"
  fi
  for c in "${cmds[@]}"; do
    echo "$c: $(command -v "$c") ($("$c" --version 2>&1 | head -n1))"
  done
}

# install_valgrind: valgrind and callgrind_annotate on PATH (Debian package `valgrind`), for the
# instruction-count gate (scripts/bench_instructions.py).
install_valgrind() {
  if ! command -v valgrind >/dev/null || ! command -v callgrind_annotate >/dev/null; then
    if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null; then
      echo "not found: valgrind; install it (Debian: apt-get install valgrind) or put it on PATH"
      return 1
    fi
    echo "installing Debian package valgrind"
    apt_update_once || return 1
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends valgrind ||
      return 1
  fi
  echo "valgrind: $(command -v valgrind) ($(valgrind --version))"
}

# yaml_python: prints a python interpreter that can `import yaml` (the test-chart venv, the system
# python3, or the system python3 after installing python3-yaml).
yaml_python() {
  local p
  for p in "$TOOLS_DIR/venv/bin/python" python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null && "$p" -c 'import yaml' >/dev/null 2>&1; then
      command -v "$p"; return 0
    fi
  done
  if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
    { apt_update_once && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q \
        --no-install-recommends python3-yaml; } >&2 || return 1
    /usr/bin/python3 -c 'import yaml' && echo /usr/bin/python3 && return 0
  fi
  echo "no python3 with PyYAML (Debian: apt-get install python3-yaml)" >&2
  return 1
}
