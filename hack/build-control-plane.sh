#!/usr/bin/env bash
# Builds the test control plane (kube-apiserver and etcd) from the Go module proxy and caches the
# binaries under ${GOLDRUSH_CACHE_DIR:-~/.cache/goldrush-operator}/<component>-<version>/.
#
# Called by `make ensure-control-plane` (and so by `make test`, `make cluster-up`, `make dev`).
# A second run with the binaries present does no network or build work.
#
# kube-apiserver: k8s.io/kubernetes cannot be `go install`ed (its go.mod replaces every staging module with
# a local path), so a throw-away wrapper module requires it and replaces each staging module with its
# published v0.Y.Z tag. The staging list is read from the downloaded go.mod, never typed in here.
# etcd: built from go.etcd.io/etcd/server/v3 in its own wrapper; on failure Debian's etcd-server is used.
#
# Prints, last, the lines `KUBE_APISERVER=<path>` and `ETCD=<path>`.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.36.3}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
CACHE=${GOLDRUSH_CACHE_DIR:-$HOME/.cache/goldrush-operator}
APISERVER_DIR=$CACHE/kube-apiserver-$K8S_VERSION
ETCD_DIR=$CACHE/etcd-$ETCD_VERSION
mkdir -p "$CACHE"
# Concurrent runs (parallel test sessions) wait for one build instead of building twice.
exec 9>"$CACHE/.control-plane.lock"
flock 9

log() { echo "[control-plane] $*" >&2; }

# Builds get private Go caches so that cleaning them afterwards never touches anything else.
GOWORK_ROOT=$CACHE/.gobuild
export GOMODCACHE=$GOWORK_ROOT/mod GOCACHE=$GOWORK_ROOT/cache GOFLAGS=-modcacherw
export CGO_ENABLED=0 GOTOOLCHAIN=${GOTOOLCHAIN:-local}
built_something=0

check_disk() {
  local avail_kb
  avail_kb=$(df -Pk "$CACHE" | awk 'NR==2{print $4}')
  log "free disk under $CACHE: $((avail_kb / 1024)) MiB"
  if [ "$avail_kb" -lt $((6 * 1024 * 1024)) ]; then
    log "ERROR: building the control plane needs about 6 GiB free for Go caches; only $((avail_kb / 1024)) MiB"
    exit 1
  fi
}

build_apiserver() {
  if [ -x "$APISERVER_DIR/kube-apiserver" ]; then
    log "kube-apiserver $K8S_VERSION cached at $APISERVER_DIR"
    return 0
  fi
  command -v go >/dev/null || { log "ERROR: go is not installed; cannot build kube-apiserver"; exit 1; }
  check_disk
  log "building kube-apiserver $K8S_VERSION (cold build: several minutes)"
  local w staging minor gomod godebug
  w=$(mktemp -d)
  staging=v0.${K8S_VERSION#v1.}
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  (
    cd "$w"
    go mod init build.invalid/kube-apiserver >/dev/null 2>&1
    gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
    mods=$( { sed -E 's/^[[:space:]]*require[[:space:]]+//' "$gomod" | awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}';
              sed -E 's/^[[:space:]]*replace[[:space:]]+//' "$gomod" | awk '$1 ~ /^k8s\.io\// && $2 == "=>" && $3 ~ /^\.\/staging\// {print $1}'; } | sort -u )
    [ -n "$mods" ] || { log "ERROR: no staging modules found in $gomod"; exit 1; }
    log "staging modules: $(echo "$mods" | wc -l)"
    for m in $mods; do go mod edit "-replace=$m=$m@$staging"; done
    godebug=$(awk '$1 == "godebug" && $2 ~ /=/ {print $2; exit}' "$gomod")
    [ -z "$godebug" ] || go mod edit "-godebug=$godebug"
    go get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION"
    mkdir -p "$APISERVER_DIR.tmp"
    go build -trimpath -o "$APISERVER_DIR.tmp/kube-apiserver" -ldflags "-s -w \
      -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 \
      -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean" \
      k8s.io/kubernetes/cmd/kube-apiserver
  )
  rm -rf "$w" "$APISERVER_DIR"
  mv "$APISERVER_DIR.tmp" "$APISERVER_DIR"
  built_something=1
}

build_etcd() {
  if [ -x "$ETCD_DIR/etcd" ]; then
    log "etcd $ETCD_VERSION cached at $ETCD_DIR"
    return 0
  fi
  if [ -f "$CACHE/etcd-fallback" ] && [ -x /usr/bin/etcd ]; then
    log "etcd: using Debian etcd-server (/usr/bin/etcd), the Go build failed before"
    return 0
  fi
  check_disk
  log "building etcd $ETCD_VERSION"
  local w
  w=$(mktemp -d)
  if (
    cd "$w"
    go mod init build.invalid/etcd >/dev/null 2>&1
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    mkdir -p "$ETCD_DIR.tmp"
    go build -trimpath -ldflags "-s -w" -o "$ETCD_DIR.tmp/etcd" go.etcd.io/etcd/server/v3
  ); then
    rm -rf "$ETCD_DIR"
    mv "$ETCD_DIR.tmp" "$ETCD_DIR"
    built_something=1
  else
    log "WARNING: etcd $ETCD_VERSION failed to build; falling back to Debian etcd-server"
    rm -rf "$ETCD_DIR.tmp"
    if ! [ -x /usr/bin/etcd ]; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server) >&2
    fi
    touch "$CACHE/etcd-fallback"
  fi
  rm -rf "$w"
}

build_apiserver
build_etcd
if [ "$built_something" = 1 ]; then
  log "cleaning Go build caches ($(du -sh "$GOWORK_ROOT" 2>/dev/null | cut -f1))"
  chmod -R u+w "$GOWORK_ROOT" 2>/dev/null || true
  rm -rf "$GOWORK_ROOT"
fi
echo "KUBE_APISERVER=$APISERVER_DIR/kube-apiserver"
if [ -x "$ETCD_DIR/etcd" ]; then
  echo "ETCD=$ETCD_DIR/etcd"
else
  echo "ETCD=/usr/bin/etcd"
fi
