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
  # ansible-test needs the collection at ansible_collections/<namespace>/<name>: test a copy of the tree.
  local tree=$ROOT/.cache/ansible-test/ansible_collections/mlplatform/mlflow
  mkdir -p "$tree"
  rsync -a --delete --exclude .cache --exclude .venv --exclude .git "$ROOT/" "$tree/"
  (cd "$tree" && ansible-test sanity --python "$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
     --requirements --color no --exclude cluster/ --exclude benchmarks/ --exclude molecule/ --exclude tests/)
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
