#!/usr/bin/env bash
# Run every test, in order: lint, sanity, unit, integration (the local cluster tier). `scripts/test.sh STAGE...`
# runs only those stages. Ends with one summary line and exits non-zero when anything failed.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/env.sh
REPORTS=$ROOT/.cache/reports
rm -rf "$REPORTS" && mkdir -p "$REPORTS"
STAGES=("$@")
[ ${#STAGES[@]} -gt 0 ] || STAGES=(lint sanity unit integration)
failed_stages=()

stage_lint() {
  ruff check plugins tests scripts benchmarks && ansible-lint --profile production --offline
}

stage_sanity() {
  # ansible-test sanity on a copy of the collection at ansible_collections/mlplatform/mlflow (ansible-test needs
  # that path; a symlink was seen to fail). The copy holds exactly what git holds or would hold (tracked files plus
  # untracked ones that .gitignore does not exclude). The copy sits inside this repository's .cache/, which git
  # ignores, and ansible-test asks the nearest git repository for the file list; so the copy is made a repository
  # of its own (an empty `git init` is enough: ansible-test lists tracked and untracked files).
  local tree=$ROOT/.cache/ansible-test/ansible_collections/mlplatform/mlflow
  local python core pip_version cache wheels shim
  python=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  core=$(python -c 'from ansible.release import __version__; print(__version__)')
  # ansible-test builds one virtualenv per sanity test under ~/.ansible/test/venv, installing the pinned
  # requirements it ships (ansible_test/_data/requirements/sanity.*.txt) from PyPI. Its HOME is a cache of ours,
  # one per ansible-core version: the cold run fills it (about a minute), warm runs reuse it without any network.
  cache=${MLP_CACHE:-/var/cache/mlplatform}/ansible-test/$core
  wheels=$cache/wheels
  # Each new virtualenv gets pip from get-pip.py, which ansible-test downloads from ci-files.testing.ansible.com,
  # a host this machine cannot reach. Put a stand-in where ansible-test caches that script: it installs the same
  # pip version from pip's wheel, downloaded once from PyPI.
  pip_version=$(python -c 'import types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version="'"$python"'"))["pip"])') || return 1
  shim=$cache/home/.ansible/test/cache/get_pip_${pip_version//./_}.py
  if [ ! -f "$shim" ]; then
    mkdir -p "$wheels" "$(dirname "$shim")"
    python -m pip download -q --disable-pip-version-check --no-deps --only-binary :all: -d "$wheels" \
      "pip==$pip_version" || return 1
    cat >"$shim.tmp" <<EOF
"""Stand-in for get-pip.py $pip_version: install pip from its wheel (what get-pip does with the copy it embeds)."""
import sys

sys.path.insert(0, "$wheels/pip-$pip_version-py3-none-any.whl")
from pip._internal.cli.main import main  # noqa: E402

args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--no-index", "--find-links", "$wheels", "--upgrade", "--force-reinstall", *args]))
EOF
    mv "$shim.tmp" "$shim"
  fi
  rm -rf "$tree" && mkdir -p "$tree" || return 1
  git ls-files -z --cached --others --exclude-standard \
    | rsync -a --from0 --files-from=- --ignore-missing-args "$ROOT/" "$tree/" || return 1
  git -C "$tree" init -q || return 1
  (cd "$tree" && HOME=$cache/home ansible-test sanity --python "$python" --color no)
}

stage_unit() {
  pytest -q -p no:cacheprovider --junitxml="$REPORTS/unit.xml" tests/unit
}

stage_integration() {
  # The cluster tier needs the bundled cluster (or the one in $KUBECONFIG): bring it up, never skip.
  cluster/cluster.sh up || return 1
  pytest -q -p no:cacheprovider --junitxml="$REPORTS/integration.xml" tests/integration
}

for stage in "${STAGES[@]}"; do
  echo "=== $stage"
  start=$SECONDS
  if "stage_$stage"; then echo "=== $stage passed in $((SECONDS - start)) s"
  else echo "=== $stage FAILED after $((SECONDS - start)) s"; failed_stages+=("$stage"); fi
done
python scripts/summarize_tests.py "$REPORTS" "${#STAGES[@]}" "${failed_stages[@]}"
