"""A real OCI registry on loopback for the tests: CNCF distribution's `registry`, built by cluster/registry.sh."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import typing as t
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

CONFIG = """\
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: {addr}
{auth}"""

HTPASSWD_AUTH = """\
auth:
  htpasswd:
    realm: it-image
    path: {path}
"""


def registry_binary() -> str:
    """Build the registry when missing (cluster/registry.sh prints the binary's path)."""
    proc = subprocess.run([str(ROOT / "cluster" / "registry.sh")], capture_output=True, text=True, check=False,
                          timeout=1800)
    assert proc.returncode == 0, f"cluster/registry.sh failed:\n{proc.stderr[-3000:]}"
    return proc.stdout.strip().splitlines()[-1]


@contextlib.contextmanager
def running_registry(workdir: Path, addr: str = "127.0.0.1:5000",
                     htpasswd: Path | None = None) -> t.Iterator[tuple[str, Path]]:
    """Serve a registry on addr with its storage in workdir; yield (base URL, log file). Stopped on exit."""
    storage = workdir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    config = workdir / f"config-{addr.rsplit(':', 1)[1]}.yml"
    auth = HTPASSWD_AUTH.format(path=htpasswd) if htpasswd else ""
    config.write_text(CONFIG.format(root=storage, addr=addr, auth=auth))
    log = workdir / f"registry-{addr.rsplit(':', 1)[1]}.log"
    # No telemetry: OpenTelemetry's exporters off, so nothing dials anywhere.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OTEL_SDK_DISABLED": "true",
           "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}
    with log.open("wb") as out:
        proc = subprocess.Popen([registry_binary(), "serve", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
    url = f"http://{addr}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"the registry exited ({proc.returncode}):\n{log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"{url}/v2/", timeout=2):
                    break
            except urllib.error.HTTPError as exc:
                if exc.code == 401:  # up, and asking for credentials
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"the registry did not answer on {addr}:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
        yield url, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
