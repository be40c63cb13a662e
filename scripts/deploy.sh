#!/usr/bin/env bash
# Deploy the whole platform: on the cluster in $KUBECONFIG when one answers, otherwise on the bundled local
# cluster (built and started on demand). Usage: scripts/deploy.sh [INVENTORY] [ansible-playbook args...]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
INVENTORY=${1:-inventories/local}
shift || true
. scripts/env.sh   # sets KUBECONFIG to the bundled cluster's unless one was given

# images_of INVENTORY: the names of the bundled cluster's images that the inventory's objects run (every image, when
# all are built already). The image references come from the render a converge applies, made offline (no cluster:
# placeholders for Secrets), so a cold machine builds only those, beside the cluster's binaries.
images_of() {
  local dir refs
  if ! cluster/images.sh list | cut -f2 | xargs -r ls >/dev/null 2>&1; then
    dir=$(mktemp -d)
    if ! KUBECONFIG=/dev/null ansible-playbook -i "$1" playbooks/render_manifests.yml -e "render_dir=$dir" \
        -e render_manifests_placeholders=true >"$dir.log" 2>&1; then
      tail -n 30 "$dir.log" >&2
      echo "deploy: rendering $1 to find its images failed (above; full log $dir.log)" >&2
      exit 1
    fi
    refs=$(grep -rhoP '^\s+image: \K\S+' "$dir" | sort -u)
    rm -rf "$dir" "$dir.log"
    echo "deploy: $1 runs these images: $(echo "$refs" | tr "\n" " ")" >&2
    # The cluster's own images (pause, coredns) are always built; naming one keeps the list from being empty.
    cluster/images.sh names --with-binaries
    # shellcheck disable=SC2086
    cluster/images.sh names --of $refs
  fi
}

if [ "$KUBECONFIG" = /var/lib/mlplatform-cluster/kubeconfig ] || \
   ! kubectl --request-timeout=5s get --raw /readyz >/dev/null 2>&1; then
  echo "deploy: no reachable cluster in KUBECONFIG; using the bundled local cluster" >&2
  export KUBECONFIG=/var/lib/mlplatform-cluster/kubeconfig
  images=$(images_of "$INVENTORY")  # a failed render ends the deploy here (set -e)
  # shellcheck disable=SC2086
  cluster/cluster.sh up $images
fi
echo "deploy: converging $INVENTORY on $(kubectl config current-context) ($KUBECONFIG)" >&2
exec ansible-playbook -i "$INVENTORY" playbooks/site.yml "$@"
