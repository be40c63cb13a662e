"""The scheduled backups' store: in the artifact bucket (gs://BUCKET/backups/) or in the backups volume.

Run in the server's image, with the server's identity (Workload Identity on GKE, the GCS emulator locally):
  python backups.py keep DIR       store the dump the backup CronJob's first container wrote in DIR, then delete
                                   the oldest scheduled dumps beyond MLPLATFORM_BACKUP_KEEP
  python backups.py fetch NAME DIR copy the dump NAME ("newest": the newest scheduled one) into DIR, for
                                   restore_db.yml
MLPLATFORM_BACKUP_STORE is gs://BUCKET/PREFIX or a folder. The last line written to /dev/termination-log says what
was done ("FILE BYTES" for fetch).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
from pathlib import Path

SCHEDULED = re.compile(r"^[A-Za-z0-9._-]+-\d{8}T\d{6}Z-scheduled\.(dump|sql\.gz)$")


def report(message: str) -> None:
    print(message)
    with contextlib.suppress(OSError):  # not in a pod
        Path("/dev/termination-log").write_text(message, encoding="utf-8")


class Folder:
    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def names(self) -> list[str]:
        return sorted(p.name for p in self.path.iterdir() if p.is_file())

    def put(self, source: Path) -> None:
        partial = self.path / f".{source.name}.partial"
        shutil.copyfile(source, partial)
        partial.rename(self.path / source.name)

    def get(self, name: str, target: Path) -> None:
        shutil.copyfile(self.path / name, target)

    def delete(self, name: str) -> None:
        (self.path / name).unlink()


class Bucket:
    def __init__(self, url: str) -> None:
        from google.cloud import storage

        bucket, prefix = (url[len("gs://"):] + "/").split("/", 1)
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.bucket = storage.Client().bucket(bucket)

    def names(self) -> list[str]:
        return sorted(blob.name[len(self.prefix):] for blob in self.bucket.list_blobs(prefix=self.prefix)
                      if "/" not in blob.name[len(self.prefix):])

    def put(self, source: Path) -> None:
        self.bucket.blob(self.prefix + source.name).upload_from_filename(str(source))

    def get(self, name: str, target: Path) -> None:
        self.bucket.blob(self.prefix + name).download_to_filename(str(target))

    def delete(self, name: str) -> None:
        self.bucket.blob(self.prefix + name).delete()


def open_store(url: str):
    return Bucket(url) if url.startswith("gs://") else Folder(url)


def expired(names: list[str], keep: int) -> list[str]:
    """The scheduled dumps beyond the newest `keep` (their names sort by time); other files are never touched."""
    scheduled = sorted(name for name in names if SCHEDULED.match(name))
    return scheduled[:-keep] if keep > 0 else []


def main(argv: list[str]) -> int:
    store = open_store(os.environ["MLPLATFORM_BACKUP_STORE"])
    if len(argv) == 2 and argv[0] == "keep":
        dumps = sorted(p for p in Path(argv[1]).iterdir() if SCHEDULED.match(p.name))
        if len(dumps) != 1:
            report(f"expected one dump in {argv[1]}, found {[p.name for p in dumps]}")
            return 1
        store.put(dumps[0])
        removed = expired(store.names(), int(os.environ.get("MLPLATFORM_BACKUP_KEEP", "7")))
        for name in removed:
            store.delete(name)
        report(f"{dumps[0].name} {dumps[0].stat().st_size} stored in {os.environ['MLPLATFORM_BACKUP_STORE']}; "
               f"{len(removed)} older removed")
        return 0
    if len(argv) == 3 and argv[0] == "fetch":
        names = store.names()
        scheduled = [name for name in names if SCHEDULED.match(name)]
        name = (scheduled[-1] if scheduled else "") if argv[1] == "newest" else argv[1]
        if name not in names:
            report(f"no backup {argv[1]} in {os.environ['MLPLATFORM_BACKUP_STORE']}; it holds: {' '.join(names)}")
            return 2
        target = Path(argv[2]) / name
        store.get(name, target)
        report(f"{name} {target.stat().st_size}")
        return 0
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
