"""The one locked step before a rollout of the MLflow server, run as a Kubernetes Job in the server's image.

1. Prove the artifact destination is writable and readable with the pod's own identity (MLflow would otherwise
   fall back to an anonymous GCS client and fail later, on the first artifact).
2. Take a database-wide lock, refuse a schema newer than this image knows, then migrate the tracking schema and,
   when auth is on, the auth schema.
The outcome (one line) goes to the termination log, which the role reads back.
"""

from __future__ import annotations

import os
import sys
import uuid
from contextlib import contextmanager

import sqlalchemy

TERMINATION_LOG = "/dev/termination-log"
LOCK_ID = 7316001  # arbitrary, constant: every upgrade Job of every version takes the same lock


def report(message: str, code: int) -> None:
    print(message, flush=True)
    try:
        with open(TERMINATION_LOG, "w", encoding="utf-8") as f:
            f.write(message[:3500])
    except OSError:
        pass
    sys.exit(code)


def check_artifacts(destination: str) -> str:
    probe = f".mlplatform-preflight/{uuid.uuid4().hex}"
    payload = uuid.uuid4().bytes
    if destination.startswith("gs://"):
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError
        from google.cloud import storage

        bucket_name, _slash, prefix = destination[len("gs://"):].partition("/")
        if os.environ.get("STORAGE_EMULATOR_HOST"):
            client = storage.Client(project="mlplatform-local")
            if client.lookup_bucket(bucket_name) is None:
                client.create_bucket(bucket_name)
        else:
            try:
                credentials, project = google.auth.default()
            except DefaultCredentialsError as exc:
                report(f"ARTIFACTS: no Google credentials in the pod ({exc}); is Workload Identity wired for the "
                       "server's Kubernetes ServiceAccount?", 4)
            client = storage.Client(credentials=credentials, project=project)
        blob = client.bucket(bucket_name).blob(f"{prefix.strip('/')}/{probe}".lstrip("/"))
        try:
            blob.upload_from_string(payload)
            ok = blob.download_as_bytes() == payload
            blob.delete()
        except Exception as exc:  # noqa: BLE001 - the message is what the operator needs
            report(f"ARTIFACTS: cannot write and read {destination} with the pod's identity: {exc}", 4)
    else:
        path = os.path.join(destination, probe)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(payload)
            with open(path, "rb") as f:
                ok = f.read() == payload
            os.remove(path)
        except OSError as exc:
            report(f"ARTIFACTS: cannot write and read {destination}: {exc}", 4)
    if not ok:
        report(f"ARTIFACTS: {destination} returned different bytes than were written", 4)
    return f"artifacts {destination} writable"


@contextmanager
def database_lock(conn):
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:id)"), {"id": LOCK_ID})
    elif dialect in ("mysql", "mariadb"):
        got = conn.execute(sqlalchemy.text("SELECT GET_LOCK(:name, 600)"), {"name": f"mlflow-{LOCK_ID}"}).scalar()
        if got != 1:
            report("MIGRATION: could not take the migration lock within 600 s (another upgrade is running?)", 5)
    try:
        yield
    finally:
        if dialect == "postgresql":
            conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:id)"), {"id": LOCK_ID})
        elif dialect in ("mysql", "mariadb"):
            conn.execute(sqlalchemy.text("SELECT RELEASE_LOCK(:name)"), {"name": f"mlflow-{LOCK_ID}"})


def auth_schema_on_mysql(engine) -> bool:
    """Create MLflow's first auth revision (8606fa83a998) on MySQL or MariaDB, once; True when it did.

    That revision names the foreign keys of two tables fk_user_id; MySQL and MariaDB refuse the second, as constraint
    names are unique per database (mlflow/mlflow#9642, open in every release). Its three tables are created here as
    it would create them, the second key named fk_user_id_registered_model. MLflow then finds auth tables without
    its version table, stamps them as that revision and migrates them on, as for any auth database older than 3.6.
    """
    from sqlalchemy import Boolean, Column, ForeignKeyConstraint, Integer, String, Table, UniqueConstraint

    if engine.dialect.name not in ("mysql", "mariadb") or "users" in sqlalchemy.inspect(engine).get_table_names():
        return False
    meta = sqlalchemy.MetaData()
    Table("users", meta, Column("id", Integer, primary_key=True), Column("username", String(255), unique=True),
          Column("password_hash", String(255)), Column("is_admin", Boolean))
    for table, key, resource, unique in (("experiment_permissions", "fk_user_id", "experiment_id",
                                          "unique_experiment_user"),
                                         ("registered_model_permissions", "fk_user_id_registered_model", "name",
                                          "unique_name_user")):
        Table(table, meta, Column("id", Integer, primary_key=True), Column(resource, String(255), nullable=False),
              Column("user_id", Integer, nullable=False), Column("permission", String(255)),
              ForeignKeyConstraint(["user_id"], ["users.id"], name=key),
              UniqueConstraint(resource, "user_id", name=unique))
    meta.create_all(engine)
    return True


def migrate(uri: str, auth: bool) -> str:
    import mlflow
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError
    from mlflow.store.db import utils as db_utils

    engine = sqlalchemy.create_engine(uri, pool_pre_ping=True)
    script = ScriptDirectory.from_config(db_utils._get_alembic_config(uri))
    head = script.get_current_head()
    with engine.connect() as lock_conn, database_lock(lock_conn):
        current = MigrationContext.configure(lock_conn).get_current_revision()
        lock_conn.commit()
        if current is not None:
            try:
                known = script.get_revision(current) is not None
            except CommandError:
                known = False
            if not known:
                report(f"REFUSED: the database schema is at revision {current}, newer than MLflow "
                       f"{mlflow.__version__} in this image knows (its newest is {head}). Use an image at least "
                       "as new as the one that migrated the database; migrations cannot be undone.", 3)
        if db_utils._is_empty_database(engine):
            db_utils._initialize_tables(engine)
            outcome = f"schema created at {head}"
        elif current != head:
            db_utils._upgrade_db(engine)
            outcome = f"schema migrated {current} -> {head}"
        else:
            outcome = f"schema already at {head}"
        if auth:
            from mlflow.server.auth.db import utils as auth_utils

            created = auth_schema_on_mysql(engine)
            auth_utils.migrate_if_needed(engine, "head")
            outcome += ", auth schema " + ("created (MySQL foreign key names) and " if created else "") + "at head"
    return outcome


def main() -> None:
    steps = []
    if os.environ.get("MLPLATFORM_ARTIFACTS_PREFLIGHT", "true") == "true":
        steps.append(check_artifacts(os.environ["MLPLATFORM_ARTIFACTS_DESTINATION"]))
    steps.append(migrate(os.environ["MLFLOW_BACKEND_STORE_URI"], os.environ.get("MLPLATFORM_AUTH") == "true"))
    report("OK: " + "; ".join(steps), 0)


if __name__ == "__main__":
    main()
