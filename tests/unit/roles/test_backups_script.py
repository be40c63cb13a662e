"""roles/mlflow_server/files/backups.py, the scheduled backups' store, on a folder store (the bucket store is the
same calls on google-cloud-storage, run by the site test against the GCS emulator)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "roles" / "mlflow_server" / "files" / "backups.py"
spec = importlib.util.spec_from_file_location("backups", SCRIPT)
backups = importlib.util.module_from_spec(spec)
spec.loader.exec_module(backups)


def dump(day: int) -> str:
    return f"mlflow-202612{day:02d}T024700Z-scheduled.dump"


def test_only_scheduled_dumps_beyond_the_newest_kept_expire():
    names = [dump(d) for d in (5, 1, 3, 4, 2)] + ["mlflow-20261201T000000Z-manual.dump", "notes.txt"]
    assert backups.expired(names, 3) == [dump(1), dump(2)]
    assert backups.expired(names, 7) == []


def test_keep_stores_the_dump_and_applies_the_retention(tmp_path, monkeypatch):
    store, work = tmp_path / "store", tmp_path / "work"
    store.mkdir()
    work.mkdir()
    for day in (1, 2, 3):
        (store / dump(day)).write_bytes(b"old")
    (work / dump(4)).write_bytes(b"PGDMP new")
    monkeypatch.setenv("MLPLATFORM_BACKUP_STORE", str(store))
    monkeypatch.setenv("MLPLATFORM_BACKUP_KEEP", "2")
    monkeypatch.setattr(backups, "report", lambda message: None)
    assert backups.main(["keep", str(work)]) == 0
    assert sorted(p.name for p in store.iterdir()) == [dump(3), dump(4)]
    assert (store / dump(4)).read_bytes() == b"PGDMP new"


@pytest.mark.parametrize("asked, fetched", [("newest", dump(3)), (dump(2), dump(2))])
def test_fetch_copies_the_named_or_newest_dump_into_the_folder_given(tmp_path, monkeypatch, asked, fetched):
    store, volume = tmp_path / "store", tmp_path / "fetched"
    store.mkdir()
    volume.mkdir()
    for day in (1, 2, 3):
        (store / dump(day)).write_bytes(f"dump {day}".encode())
    reports = []
    monkeypatch.setenv("MLPLATFORM_BACKUP_STORE", str(store))
    monkeypatch.setattr(backups, "report", reports.append)
    assert backups.main(["fetch", asked, str(volume)]) == 0
    assert [p.name for p in volume.iterdir()] == [fetched]
    assert (volume / fetched).read_bytes() == (store / fetched).read_bytes()
    assert reports == [f"{fetched} {len((store / fetched).read_bytes())}"]


def test_fetch_of_a_missing_dump_lists_what_the_store_holds(tmp_path, monkeypatch):
    (tmp_path / dump(1)).write_bytes(b"x")
    reports = []
    monkeypatch.setenv("MLPLATFORM_BACKUP_STORE", str(tmp_path))
    monkeypatch.setattr(backups, "report", reports.append)
    assert backups.main(["fetch", dump(9), str(tmp_path / "fetched")]) == 2
    assert reports == [f"no backup {dump(9)} in {tmp_path}; it holds: {dump(1)}"]
