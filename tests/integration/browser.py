"""The MLflow UI in a real browser: Debian's headless Chromium, driven by Playwright (no browser is downloaded).

`ui_works_through` opens each way in to one server as a person would: logs in with basic-auth, opens an experiment's
runs table, a run and its artifact, the registry and a model with its alias, and sends writes from the page as the UI
does (an experiment created, an alias set). Any failed request, status >= 400 or console error fails the test.
A certificate of a local CA is trusted the way a person trusts it: imported into the browser's own NSS database.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

# A write as the UI sends it: a POST from the page to the UI's API path (the browser adds the Origin header).
POST_FROM_THE_PAGE = """async ([endpoint, body]) => (await fetch('ajax-api/2.0/mlflow/' + endpoint, {
    method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)})).status"""


def trusting_home(folder: Path, ca_file: Path | None) -> Path:
    """A home folder whose NSS database (the one Chromium reads on Linux) trusts ca_file for web sites."""
    nssdb = folder / ".pki" / "nssdb"
    nssdb.mkdir(parents=True, exist_ok=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True, capture_output=True)
    if ca_file is not None:
        subprocess.run(["certutil", "-A", "-d", f"sql:{nssdb}", "-n", "mlplatform local CA", "-t", "C,,",
                        "-i", str(ca_file)], check=True, capture_output=True)
    return folder


def ui_works_through(bases: list[str], client, password: str, tmp_path: Path, ca_file: Path | None = None) -> None:
    """Opens the UI through every URL in bases (one server; client is an MlflowClient of it)."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    tag = uuid.uuid4().hex[:6]
    experiment = client.create_experiment(f"ui-{tag}")
    run = client.create_run(experiment, run_name=f"ui-run-{tag}")
    (tmp_path / "note.txt").write_text("hello")
    client.log_artifact(run.info.run_id, str(tmp_path / "note.txt"))
    client.log_metric(run.info.run_id, "accuracy", 0.9)
    client.set_terminated(run.info.run_id)
    model = f"ui-model-{tag}"
    client.create_registered_model(model)
    version = client.create_model_version(model, run.info.artifact_uri, run.info.run_id).version
    client.set_registered_model_alias(model, "champion", version)
    pages = [(f"/#/experiments/{experiment}/runs", f"ui-run-{tag}"),
             (f"/#/experiments/{experiment}/runs/{run.info.run_id}", f"ui-run-{tag}"),
             (f"/#/experiments/{experiment}/runs/{run.info.run_id}/artifacts", "note.txt"),
             ("/#/models", model), (f"/#/models/{model}", "champion")]
    home = trusting_home(tmp_path / "browser-home", ca_file)

    with sync_playwright() as playwright:
        # Never --ignore-certificate-errors: a certificate the NSS database does not trust fails the page.
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"],
                                             env={"HOME": str(home)})
        try:
            for way, base in enumerate(bases):
                context = browser.new_context(http_credentials={"username": "admin", "password": password})
                page = context.new_page()
                problems: list[str] = []
                page.on("console", lambda m, p=problems: p.append(f"console: {m.text}") if m.type == "error" else None)
                page.on("response", lambda r, p=problems: p.append(f"{r.status} {r.request.method} {r.url}")
                        if r.status >= 400 else None)
                page.on("requestfailed", lambda r, p=problems: p.append(f"failed {r.url}: {r.failure}"))
                for path, text in pages:
                    try:
                        page.goto(base + path)
                        page.get_by_text(text).first.wait_for(timeout=20000)
                    except PlaywrightError as exc:
                        raise AssertionError(f"{base}{path} never showed {text!r}: {exc}; {problems[:10]}") from exc
                for endpoint, body in (("experiments/create", {"name": f"ui-write-{tag}-{way}"}),
                                       ("registered-models/alias", {"name": model, "alias": f"way-{way}",
                                                                    "version": version})):
                    status = page.evaluate(POST_FROM_THE_PAGE, [endpoint, body])
                    assert status == 200, f"{base}: the page's POST {endpoint} answered {status}"
                assert not problems, f"{base}: {problems[:10]}"
                context.close()
        finally:
            browser.close()
    for way in range(len(bases)):
        assert client.get_model_version_by_alias(model, f"way-{way}").version == version
