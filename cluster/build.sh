#!/usr/bin/env bash
# Build the local cluster's binaries from the Go module proxy into a versioned cache outside the repository.
# The consumer go.mod/go.sum files under cluster/go/ are committed; on a machine without them they are recreated.
. "$(dirname "$0")/lib.sh"

build_kubernetes() {
  local mod=$CLUSTER_DIR/go/kubernetes cmds="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl kubeadm"
  cd "$mod"
  if [ ! -f go.mod ]; then
    log "creating the Kubernetes consumer module"
    go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" >/dev/null
    local upstream=$GOMODCACHE/cache/download/k8s.io/kubernetes/@v/$KUBERNETES_VERSION.mod
    go mod init local/k8sbuild
    go mod edit -go=1.25.0 -godebug=default=go1.24
    local staging=${KUBERNETES_VERSION/v1./v0.}
    for m in $(awk '/^\tk8s\.io\/[^ ]+ v0\.0\.0$/{print $1}' "$upstream"); do go mod edit "-replace=$m=$m@$staging"; done
    go mod edit "-require=k8s.io/kubernetes@$KUBERNETES_VERSION"
    # shellcheck disable=SC2046
    go get $(for c in $cmds; do echo "k8s.io/kubernetes/cmd/$c@$KUBERNETES_VERSION"; done)
  fi
  local minor ld="-s -w" p
  minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitCommit=$KUBERNETES_COMMIT -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  log "building Kubernetes $KUBERNETES_VERSION ($cmds)"
  # shellcheck disable=SC2046
  go build -trimpath -ldflags "$ld" -o "$BIN_DIR.tmp/" $(for c in $cmds; do echo "k8s.io/kubernetes/cmd/$c"; done)
}

build_etcd() {
  cd "$CLUSTER_DIR/go/etcd"
  if [ ! -f go.mod ]; then
    go mod init local/etcdbuild
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" "go.etcd.io/etcd/etcdctl/v3@$ETCD_VERSION"
  fi
  log "building etcd $ETCD_VERSION"
  go build -trimpath -ldflags "-s -w" -o "$BIN_DIR.tmp/etcd" go.etcd.io/etcd/server/v3
  go build -trimpath -ldflags "-s -w" -o "$BIN_DIR.tmp/etcdctl" go.etcd.io/etcd/etcdctl/v3
}

build_coredns() {
  cd "$CLUSTER_DIR/go/coredns"
  if [ ! -f go.mod ]; then
    go mod init local/corednsbuild
    go get "github.com/coredns/coredns@$COREDNS_VERSION"
  fi
  log "building CoreDNS $COREDNS_VERSION"
  go build -trimpath -ldflags "-s -w" -o "$BIN_DIR.tmp/coredns" github.com/coredns/coredns
}

build_pause() {
  log "building pause $PAUSE_VERSION"
  gcc -Os -Wall -Werror -static "-DVERSION=v$PAUSE_VERSION-mlplatform" -o "$BIN_DIR.tmp/pause" \
    "$GOMODCACHE/k8s.io/kubernetes@$KUBERNETES_VERSION/build/pause/linux/pause.c"
}

if [ -x "$BIN_DIR/kubelet" ]; then log "binaries cached in $BIN_DIR"; exit 0; fi
mkdir -p "$BIN_DIR.tmp"
start=$SECONDS
build_kubernetes
build_etcd
build_coredns
build_pause
mv "$BIN_DIR.tmp" "$BIN_DIR"
log "built every binary into $BIN_DIR in $((SECONDS - start)) s"
