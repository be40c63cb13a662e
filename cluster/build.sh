#!/usr/bin/env bash
# Build the local cluster's binaries from the Go module proxy into a versioned cache outside the repository
# ($BIN_DIR, keyed by every version in versions.env and the Go version). The consumer go.mod/go.sum files under
# cluster/go/ are committed; where one is missing it is recreated from upstream. Each binary is built only when
# it is missing, so a warm run takes no time.
#   build.sh              build the cluster's binaries
#   build.sh monitoring   build only what the tests watch the cluster with, on the host: kube-state-metrics (into
#                         $KSM_BIN_DIR), prometheus and promtool (into $PROMETHEUS_BIN_DIR); not part of the cluster
#   build.sh path NAME    print the absolute path of kube-state-metrics, prometheus or promtool (built or not)
. "$(dirname "$0")/lib.sh"

missing() { local b; for b in "$@"; do [ -x "$BIN_DIR/$b" ] || return 0; done; return 1; }

build_kubernetes() {
  local cmds="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl kubeadm" minor ld="-s -w" p
  # shellcheck disable=SC2086
  missing $cmds || return 0
  cd "$CLUSTER_DIR/go/kubernetes"
  if [ ! -f go.mod ]; then
    log "creating the Kubernetes consumer module"
    go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" >/dev/null
    local upstream=$GOMODCACHE/cache/download/k8s.io/kubernetes/@v/$KUBERNETES_VERSION.mod staging=${KUBERNETES_VERSION/v1./v0.} m
    go mod init local/k8sbuild
    go mod edit -go=1.25.0 -godebug=default=go1.24
    # Upstream requires its staging modules at v0.0.0 and replaces them with directories; use the published tags.
    for m in $(awk '/^\tk8s\.io\/[^ ]+ v0\.0\.0$/{print $1}' "$upstream"); do go mod edit "-replace=$m=$m@$staging"; done
    go mod edit "-require=k8s.io/kubernetes@$KUBERNETES_VERSION"
    # shellcheck disable=SC2046
    go get $(for c in $cmds; do echo "k8s.io/kubernetes/cmd/$c@$KUBERNETES_VERSION"; done)
  fi
  minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitCommit=$KUBERNETES_COMMIT"
    ld="$ld -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  log "building Kubernetes $KUBERNETES_VERSION ($cmds)"
  # shellcheck disable=SC2046
  go build -trimpath -ldflags "$ld" -o "$BIN_DIR/" $(for c in $cmds; do echo "k8s.io/kubernetes/cmd/$c"; done)
}

build_go_binary() { # name module-dir "module@version..." package
  local name=$1 dir=$CLUSTER_DIR/go/$2 modules=$3 package=$4
  missing "$name" || return 0
  mkdir -p "$dir" && cd "$dir"
  if [ ! -f go.mod ]; then
    go mod init "local/$2"
    # shellcheck disable=SC2086
    go get $modules
  fi
  log "building $name ($modules)"
  go build -trimpath -ldflags "-s -w" -o "$BIN_DIR/$name.tmp" "$package"
  mv "$BIN_DIR/$name.tmp" "$BIN_DIR/$name"
}

build_pause() {
  missing pause || return 0
  log "building pause $PAUSE_VERSION"
  gcc -Os -Wall -Werror -static "-DVERSION=v$PAUSE_VERSION-mlplatform" -o "$BIN_DIR/pause" \
    "$GOMODCACHE/k8s.io/kubernetes@$KUBERNETES_VERSION/build/pause/linux/pause.c"
}

build_traefik() {
  local dir=$CLUSTER_DIR/go/traefik upstream ld pkg=github.com/traefik/traefik/v3/cmd/traefik
  [ -x "$TRAEFIK_BIN_DIR/traefik" ] && return 0
  mkdir -p "$dir" "$TRAEFIK_BIN_DIR" && cd "$dir"
  if [ ! -f go.mod ]; then
    log "creating the Traefik consumer module"
    upstream=$(go mod download -json "github.com/traefik/traefik/v3@$TRAEFIK_VERSION" | jq -r .Dir)
    go mod init local/traefikbuild
    # Upstream's `replace` (forks of go-http-auth and gorilla/mux under their original paths) and `exclude` lines
    # act only in its own module: copy them. Its go.sum holds the hashes of dependency versions (lego DNS-provider
    # SDKs) that the proxy serves but the checksum database does not know: start from it, verification stays on.
    install -m 644 "$upstream/go.sum" go.sum
    local directives='"-go=\(.Go)",
      ((.Replace // [])[] | "-replace=\(.Old.Path)\(.Old.Version // "" | sub("^(?=.)"; "@"))=\(.New.Path)\(.New.Version // "" | sub("^(?=.)"; "@"))"),
      ((.Exclude // [])[] | "-exclude=\(.Path)@\(.Version)")'
    # shellcheck disable=SC2046
    go mod edit $(go mod edit -json "$upstream/go.mod" | jq -r "$directives")
    nice go get "$pkg@$TRAEFIK_VERSION"
  fi
  # Without the version ldflag Traefik reports "dev"; the codename is the one of upstream's v3.6 release workflow.
  ld="-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION"
  ld="$ld -X github.com/traefik/traefik/v3/pkg/version.Codename=ramequin"
  ld="$ld -X github.com/traefik/traefik/v3/pkg/version.BuildDate=1970-01-01T00:00:00Z"
  log "building Traefik $TRAEFIK_VERSION (about 10 min cold, 3 GB of memory)"
  nice go build -trimpath -ldflags "$ld" -o "$TRAEFIK_BIN_DIR/traefik.tmp" "$pkg"
  mv "$TRAEFIK_BIN_DIR/traefik.tmp" "$TRAEFIK_BIN_DIR/traefik"
}

build_kube_network_policies() {
  local dir=$CLUSTER_DIR/go/kube-network-policies src=$KNP_BIN_DIR/src
  [ -x "$KNP_BIN_DIR/kube-network-policies" ] && return 0
  mkdir -p "$KNP_BIN_DIR" && cd "$dir"
  # main.go is ours (upstream's reads only an in-cluster config); go.mod/go.sum pin upstream's packages.
  if [ ! -f go.mod ]; then
    log "creating the kube-network-policies consumer module"
    go mod init local/kubenetpolbuild
    go mod edit -go=1.23.0
    nice go get "sigs.k8s.io/kube-network-policies@$KUBE_NETWORK_POLICIES_VERSION"
    nice go mod tidy
  fi
  # Built from a vendored copy with the files under _patched/ laid over it: the nftables library's `queue` expression
  # becomes the xtables NFQUEUE target (why: in the header of that file, which is written for the version below).
  [ "$(go list -m -f '{{.Version}}' github.com/google/nftables)" = v0.3.0 ] \
    || die "cluster/go/kube-network-policies/_patched is written for github.com/google/nftables v0.3.0"
  rm -rf "$src" && mkdir -p "$src" && cp main.go go.mod go.sum "$src/" && cd "$src"
  go mod vendor
  cp -r "$dir/_patched/." vendor/
  log "building kube-network-policies $KUBE_NETWORK_POLICIES_VERSION (about 10 min cold)"
  nice go build -mod=vendor -trimpath -ldflags "-s -w" -o "$KNP_BIN_DIR/kube-network-policies.tmp" .
  mv "$KNP_BIN_DIR/kube-network-policies.tmp" "$KNP_BIN_DIR/kube-network-policies"
  cd "$dir" && rm -rf "$src"
}

build_metrics_server() {
  local dir=$CLUSTER_DIR/go/metrics-server pkg=sigs.k8s.io/metrics-server v=k8s.io/client-go/pkg/version ld
  [ -x "$METRICS_SERVER_BIN_DIR/metrics-server" ] && return 0
  mkdir -p "$dir" "$METRICS_SERVER_BIN_DIR" && cd "$dir"
  if [ ! -f go.mod ]; then
    log "creating the metrics-server consumer module"
    go mod init local/metrics-server
    nice go get "$pkg/cmd/metrics-server@$METRICS_SERVER_VERSION"
  fi
  # Upstream's Makefile sets the version (its commit comes from git, which a module download lacks).
  ld="-s -w -X $v.gitVersion=$METRICS_SERVER_VERSION -X $v.buildDate=1970-01-01T00:00:00Z"
  log "building metrics-server $METRICS_SERVER_VERSION"
  nice go build -trimpath -ldflags "$ld" -o "$METRICS_SERVER_BIN_DIR/metrics-server.tmp" "$pkg/cmd/metrics-server"
  mv "$METRICS_SERVER_BIN_DIR/metrics-server.tmp" "$METRICS_SERVER_BIN_DIR/metrics-server"
}

build_kube_state_metrics() {
  local dir=$CLUSTER_DIR/go/kube-state-metrics pkg=k8s.io/kube-state-metrics/v2 v=github.com/prometheus/common/version ld
  [ -x "$KSM_BIN_DIR/kube-state-metrics" ] && return 0
  mkdir -p "$dir" "$KSM_BIN_DIR" && cd "$dir"
  if [ ! -f go.mod ]; then
    log "creating the kube-state-metrics consumer module"
    go mod init local/ksmbuild
    nice go get "$pkg@$KUBE_STATE_METRICS_VERSION"
  fi
  # Upstream's Makefile sets these (its Revision and Branch come from git, which a module download lacks).
  ld="-s -w -X $v.Version=$KUBE_STATE_METRICS_VERSION -X $v.BuildDate=1970-01-01T00:00:00Z"
  ld="$ld -X $pkg/pkg/app.ClientGoVersion=$(go list -m -f '{{.Version}}' k8s.io/client-go)"
  log "building kube-state-metrics $KUBE_STATE_METRICS_VERSION"
  nice go build -trimpath -ldflags "$ld" -o "$KSM_BIN_DIR/kube-state-metrics.tmp" "$pkg"
  mv "$KSM_BIN_DIR/kube-state-metrics.tmp" "$KSM_BIN_DIR/kube-state-metrics"
}

build_prometheus() {
  local dir=$CLUSTER_DIR/go/prometheus mod=github.com/prometheus/prometheus v=github.com/prometheus/common/version
  local upstream release ld b
  [ -x "$PROMETHEUS_BIN_DIR/prometheus" ] && [ -x "$PROMETHEUS_BIN_DIR/promtool" ] && return 0
  mkdir -p "$dir" "$PROMETHEUS_BIN_DIR" && cd "$dir"
  upstream=$(go mod download -json "$mod@$PROMETHEUS_VERSION" | jq -r .Dir)
  if [ ! -f go.mod ]; then
    # (Upstream's go.mod has no replace or exclude lines to carry over.)
    log "creating the Prometheus consumer module"
    go mod init local/prombuild
    nice go get "$mod/cmd/prometheus@$PROMETHEUS_VERSION" "$mod/cmd/promtool@$PROMETHEUS_VERSION"
  fi
  # Upstream's .promu.yml sets these (its Revision, Branch and BuildUser come from git and the build host). Its version
  # is the release's (3.X.Y, the module's VERSION file), not the module's v0.X.Y.
  release=$(cat "$upstream/VERSION")
  ld="-s -w -X $v.Version=$release -X $v.BuildDate=19700101-00:00:00"
  # Upstream's tags are netgo and builtinassets; the latter embeds the web UI, which is built by npm: left out, so
  # the UI's pages answer 500 (no index.html) while the server, /-/ready and the HTTP API under /api/v1 work.
  log "building Prometheus $release ($PROMETHEUS_VERSION: prometheus, promtool)"
  for b in prometheus promtool; do
    [ -x "$PROMETHEUS_BIN_DIR/$b" ] && continue
    nice go build -trimpath -tags netgo -ldflags "$ld" -o "$PROMETHEUS_BIN_DIR/$b.tmp" "$mod/cmd/$b"
    mv "$PROMETHEUS_BIN_DIR/$b.tmp" "$PROMETHEUS_BIN_DIR/$b"
  done
}

start=$SECONDS
case "$*" in
  '') ;;
  monitoring)
    build_kube_state_metrics
    build_prometheus
    [ $((SECONDS - start)) -lt 2 ] || log "built the monitoring binaries in $((SECONDS - start)) s"
    exit 0 ;;
  'path kube-state-metrics') echo "$KSM_BIN_DIR/kube-state-metrics"; exit 0 ;;
  'path prometheus' | 'path promtool') echo "$PROMETHEUS_BIN_DIR/$2"; exit 0 ;;
  *) die "usage: cluster/build.sh [monitoring | path kube-state-metrics|prometheus|promtool]" ;;
esac
mkdir -p "$BIN_DIR"
build_kubernetes
etcd_modules="go.etcd.io/etcd/server/v3@$ETCD_VERSION go.etcd.io/etcd/etcdctl/v3@$ETCD_VERSION"
build_go_binary etcd etcd "$etcd_modules" go.etcd.io/etcd/server/v3
build_go_binary etcdctl etcd "$etcd_modules" go.etcd.io/etcd/etcdctl/v3
build_go_binary coredns coredns "github.com/coredns/coredns@$COREDNS_VERSION" github.com/coredns/coredns
build_go_binary local-path-provisioner local-path-provisioner \
  "github.com/rancher/local-path-provisioner@$LOCAL_PATH_PROVISIONER_VERSION" github.com/rancher/local-path-provisioner
build_pause
build_traefik
build_kube_network_policies
build_metrics_server
[ $((SECONDS - start)) -lt 2 ] || log "built the cluster's binaries into $BIN_DIR in $((SECONDS - start)) s"
