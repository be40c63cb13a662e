#!/usr/bin/env bash
# Deploy the whole platform: on the cluster in $KUBECONFIG when one answers, otherwise on the bundled local
# cluster (built and started on demand). Usage: scripts/deploy.sh [INVENTORY] [ansible-playbook args...]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
INVENTORY=${1:-inventories/local}
shift || true
. scripts/env.sh   # sets KUBECONFIG to the bundled cluster's unless one was given
if [ "$KUBECONFIG" = /var/lib/mlplatform-cluster/kubeconfig ] || \
   ! kubectl --request-timeout=5s get --raw /readyz >/dev/null 2>&1; then
  echo "deploy: no reachable cluster in KUBECONFIG; using the bundled local cluster" >&2
  export KUBECONFIG=/var/lib/mlplatform-cluster/kubeconfig
  cluster/cluster.sh up
fi
echo "deploy: converging $INVENTORY on $(kubectl config current-context) ($KUBECONFIG)" >&2
exec ansible-playbook -i "$INVENTORY" playbooks/site.yml "$@"
