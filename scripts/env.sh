# Source this file to use the project's virtualenv, kubeconfig and collection path in your shell.
# shellcheck shell=bash
MLP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$MLP_ROOT/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$MLP_ROOT/ansible.cfg"
export KUBECONFIG="${KUBECONFIG:-/var/lib/mlplatform-cluster/kubeconfig}"
