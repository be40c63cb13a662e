"""The fake as a process of its own, for the GCP roles' Molecule scenarios (molecule/shared/gcp_prepare.yml).

    python -m gcp_fake.serve STATE_DIR

Serves the fake (projects mlp-staging and mlp-prod, one poll per operation, only tokens it issued accepted) until
SIGTERM, or for 15 minutes at most (a scenario that failed before its cleanup leaves no process behind for long).
STATE_DIR/fake.json says where it answers: the endpoint overrides, a throwaway service-account key of the deployer
(STATE_DIR/deployer-key.json, trusted by the fake) and a token the fake issued to the deployer, for the scenarios'
read-back through Google's own API paths. On SIGTERM it writes every request that broke Google's published contract
to STATE_DIR/violations.json, which the scenario's cleanup requires to be empty.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

from gcp_fake.server import FakeGoogle

DEPLOYER = "deployer@mlp-staging.iam.gserviceaccount.com"


def main(state_dir: Path) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    fake = FakeGoogle({"mlp-staging": "123456789012", "mlp-prod": "210987654321"}, lro_polls=1, strict_tokens=True)
    fake.start()
    key_file = state_dir / "deployer-key.json"
    key_file.write_text(json.dumps(fake.service_account_key(DEPLOYER)))
    key_file.chmod(0o600)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    (state_dir / "fake.json").write_text(json.dumps({
        "url": fake.url, "endpoint_overrides": fake.endpoint_overrides, "key_file": str(key_file),
        "token": fake.issue_token(DEPLOYER)}))
    stopped.wait(timeout=900)
    fake.stop()
    (state_dir / "violations.json").write_text(json.dumps(fake.violations))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
