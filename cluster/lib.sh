# Shared settings for the local-cluster scripts. Sourced, never executed.
# shellcheck shell=bash
set -euo pipefail
CLUSTER_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
. "$CLUSTER_DIR/versions.env"
GO_VERSION=$(go env GOVERSION)
# Heavy builds live outside the repository, keyed by what they are built from.
MLP_CACHE=${MLP_CACHE:-/var/cache/mlplatform}
BIN_DIR=$MLP_CACHE/bin/k8s-$KUBERNETES_VERSION-etcd-$ETCD_VERSION-coredns-$COREDNS_VERSION-lpp-$LOCAL_PATH_PROVISIONER_VERSION-$GO_VERSION
# Traefik has its own directory so that a new Traefik version never rebuilds Kubernetes (and the reverse).
TRAEFIK_BIN_DIR=$MLP_CACHE/bin/traefik-$TRAEFIK_VERSION-$GO_VERSION
METRICS_SERVER_BIN_DIR=$MLP_CACHE/bin/metrics-server-$METRICS_SERVER_VERSION-$GO_VERSION
# The tests' monitoring (`build.sh monitoring`), in directories of their own likewise.
KSM_BIN_DIR=$MLP_CACHE/bin/kube-state-metrics-$KUBE_STATE_METRICS_VERSION-$GO_VERSION
PROMETHEUS_BIN_DIR=$MLP_CACHE/bin/prometheus-$PROMETHEUS_VERSION-$GO_VERSION
IMAGE_DIR=$MLP_CACHE/images
# Cluster state, logs and the kubeconfig.
STATE=${MLP_CLUSTER_STATE:-/var/lib/mlplatform-cluster}
KUBECONFIG_PATH=$STATE/kubeconfig
# The NetworkPolicy controller's own directory: its version, Go's, and the Go files of ours it is built with (main.go
# and the patched library file; a change to either rebuilds it).
KNP_BIN_DIR=$MLP_CACHE/bin/kube-network-policies-$KUBE_NETWORK_POLICIES_VERSION-$GO_VERSION-$(cd "$CLUSTER_DIR/go" \
  && cat kube-network-policies/{main.go,_patched/github.com/google/nftables/expr/queue.go} | sha256sum | cut -c1-12)
export GOPATH=$MLP_CACHE/go GOMODCACHE=$MLP_CACHE/go/pkg/mod GOCACHE=$MLP_CACHE/go/cache
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=mod"

log() { printf '%s cluster: %s\n' "$(date -u +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
