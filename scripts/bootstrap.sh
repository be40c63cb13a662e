#!/usr/bin/env bash
# Set up this machine for the collection: Debian packages, a Python >= 3.12 virtualenv with the pinned packages,
# and the collection on Ansible's collection path. Idempotent; a second run takes about a second.
#   bootstrap.sh            everything `make test` needs (requirements.txt: the runtime packages and the test stack)
#   bootstrap.sh runtime    what `make deploy` needs: the cluster's packages and requirements-runtime.txt only
#   bootstrap.sh packages   only the Debian packages of a full run (scripts/test.sh starts the cluster build after them)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MLP_CACHE=${MLP_CACHE:-/var/cache/mlplatform}
# libnss-myhostname resolves *.localhost to loopback for every program (glibc alone does not: Python's MLflow client
# could not reach https://mlflow.localhost:8443); libnss3-tools' certutil makes the browser test trust a local CA.
APT_RUNTIME="containerd runc containernetworking-plugins iptables conntrack umoci skopeo debootstrap busybox-static
  openssl jq rsync git make gcc libc6-dev nftables curl libnss-myhostname"
# The tests' own: load generators, the browser and its certificate tool, promtool.
APT_TESTS="wrk apache2-utils chromium libnss3-tools prometheus"
MODE=${1:-all}
case $MODE in
  all | packages) APT_PACKAGES="$APT_RUNTIME $APT_TESTS"; REQUIREMENTS=$ROOT/requirements.txt ;;
  runtime) APT_PACKAGES=$APT_RUNTIME; REQUIREMENTS=$ROOT/requirements-runtime.txt ;;
  *) echo "usage: scripts/bootstrap.sh [runtime | packages]" >&2; exit 2 ;;
esac

log() { printf 'bootstrap: %s\n' "$*" >&2; }

find_python() {
  local candidate
  for candidate in "${MLP_PYTHON:-}" python3.13 python3.12 \
      "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python python3; do
    if [ -z "$candidate" ] || ! command -v "$candidate" >/dev/null 2>&1; then
      continue
    fi
    if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  log "ERROR: no Python >= 3.12 found (tried \$MLP_PYTHON, python3.13, python3.12, pyenv's 3.12/3.13, python3)."
  log "Install one (apt-get install python3.12, or pyenv install 3.12) or point MLP_PYTHON at it."
  return 1
}

install_debian_packages() {
  local missing
  missing=$(for p in $APT_PACKAGES; do dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || echo "$p"; done)
  [ -z "$missing" ] && return 0
  log "installing Debian packages: ${missing//$'\n'/ }"
  apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

install_python_packages() {
  local python=$1 key venv
  key=$(cat "$REQUIREMENTS" "$ROOT/requirements-runtime.txt" <("$python" -V) | sha256sum | cut -c1-12)
  venv=$MLP_CACHE/venv/$key
  if [ ! -f "$venv/.complete" ]; then
    log "creating virtualenv $venv with $("$python" -V)"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$REQUIREMENTS"
    touch "$venv/.complete"
  fi
  ln -sfn "$venv" "$ROOT/.venv"
}

link_collection() {
  # Ansible finds the collection as mlplatform.mlflow through this link (ansible.cfg's collections_path).
  mkdir -p "$ROOT/.cache/collections/ansible_collections/mlplatform"
  ln -sfn ../../../.. "$ROOT/.cache/collections/ansible_collections/mlplatform/mlflow"
}

install_debian_packages
getent hosts probe.localhost >/dev/null ||
  log "WARNING: *.localhost names do not resolve here: add myhostname to the hosts line of /etc/nsswitch.conf"
[ "$MODE" != packages ] || exit 0
install_python_packages "$(find_python)"
link_collection
log "ready: . scripts/env.sh  (or use make targets)"
