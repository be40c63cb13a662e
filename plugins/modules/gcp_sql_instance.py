#!/usr/bin/python
# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: gcp_sql_instance
short_description: Manage a Cloud SQL for PostgreSQL or MySQL instance
version_added: 0.1.0
description:
  - Creates a Cloud SQL instance (Cloud SQL Admin API v1) and waits for the operation, or PATCHes only the
    settings that drifted from the options set; options not set are left as they are.
  - Long-running operations are polled with backoff up to O(operation_timeout); they are listed in the result.
  - A request answered with 409 C(operationInProgress) (another operation runs on the instance) is retried.
  - O(region) and O(database_version) cannot change on an existing instance; a difference is an error.
options:
  name:
    description: Instance name (lowercase letters, digits and hyphens, starting with a letter).
    type: str
    required: true
  region:
    description: Region, for example V(europe-west1). Required to create.
    type: str
  database_version:
    description: Engine and major version, for example V(POSTGRES_16) or V(MYSQL_8_0). Required to create.
    type: str
  edition:
    description:
      - Cloud SQL edition. When creating and not set, V(ENTERPRISE) is sent, because the API's own default for
        PostgreSQL 16 and later is V(ENTERPRISE_PLUS), which rejects shared-core and custom tiers.
    type: str
    choices: [ENTERPRISE, ENTERPRISE_PLUS]
  tier:
    description: Machine tier, for example V(db-custom-1-3840). Required to create.
    type: str
  availability_type:
    description: V(ZONAL) or V(REGIONAL) (high availability).
    type: str
    choices: [ZONAL, REGIONAL]
  disk_size_gb:
    description: Data disk size in GB (it can grow, never shrink).
    type: int
  disk_type:
    description: Data disk type.
    type: str
    choices: [PD_SSD, PD_HDD]
  disk_autoresize:
    description: Grow the disk automatically.
    type: bool
  private_network:
    description:
      - VPC network for the private IP, as V(projects/PROJECT/global/networks/NETWORK). It needs Private
        Services Access (a peering of the network with servicenetworking.googleapis.com).
    type: str
  allocated_ip_range:
    description: Name of the allocated range for the private IP, when the network has several.
    type: str
  ipv4_enabled:
    description: Whether the instance gets a public IPv4 address.
    type: bool
    default: false
  ssl_mode:
    description: Which connections the instance accepts.
    type: str
    choices: [ALLOW_UNENCRYPTED_AND_ENCRYPTED, ENCRYPTED_ONLY, TRUSTED_CLIENT_CERTIFICATE_REQUIRED]
  backup_enabled:
    description: Automated daily backups.
    type: bool
    default: true
  backup_start_time:
    description: Start of the daily backup window, C(HH:MM) in UTC.
    type: str
  point_in_time_recovery:
    description:
      - Point-in-time recovery (write-ahead-log archiving on PostgreSQL, binary logging on MySQL).
    type: bool
  transaction_log_retention_days:
    description:
      - Days of transaction logs kept for point-in-time recovery (1-7 on ENTERPRISE, up to 35 on ENTERPRISE_PLUS).
    type: int
  retained_backups:
    description: Number of automated backups kept.
    type: int
  maintenance_window:
    description: Weekly maintenance window.
    type: dict
    suboptions:
      day:
        description: Day of week, 1 (Monday) to 7 (Sunday).
        type: int
        required: true
      hour:
        description: Hour of day in UTC, 0 to 23.
        type: int
        required: true
  deletion_protection:
    description: Refuse to delete the instance (through any API client) while this is true.
    type: bool
    default: true
  database_flags:
    description:
      - Database flags, name to value, for example C(log_bin_trust_function_creators=on) (MySQL) or
        C(cloudsql.iam_authentication=on) (PostgreSQL). Values are strings.
      - Flags already set and not listed are kept unless O(purge_database_flags=true).
    type: dict
  purge_database_flags:
    description: Remove flags that are not in O(database_flags).
    type: bool
    default: false
  labels:
    description: User labels. Labels already there and not listed are kept unless O(purge_labels=true).
    type: dict
  purge_labels:
    description: Remove labels that are not in O(labels).
    type: bool
    default: false
  root_password:
    description: Password of the default user (C(postgres) or C(root)), set at creation only.
    type: str
  state:
    description: V(present) creates or updates; V(absent) deletes (refused while deletion protection is on).
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - mlplatform.mlflow.google
attributes:
  check_mode:
    support: full
    description: Reads the instance and reports the create or PATCH it would send, sending none.
  diff_mode:
    support: full
    description: Shows version, region and the managed settings before and after (never passwords).
author:
  - mlplatform team (@mlplatform)
"""

EXAMPLES = r"""
- name: Create the MLflow PostgreSQL instance on a private IP
  mlplatform.mlflow.gcp_sql_instance:
    project: my-project
    name: mlflow
    region: europe-west1
    database_version: POSTGRES_16
    tier: db-custom-1-3840
    private_network: projects/my-project/global/networks/default
    backup_start_time: "03:00"
    point_in_time_recovery: true
    maintenance_window: {day: 7, hour: 3}
    database_flags:
      cloudsql.iam_authentication: "on"
"""

RETURN = r"""
instance:
  description: The instance as the API returned it (the planned state in check mode).
  returned: when state is present
  type: dict
connection_name:
  description: C(PROJECT:REGION:NAME), what the Cloud SQL Auth Proxy connects to.
  returned: when state is present
  type: str
  sample: my-project:europe-west1:mlflow
private_ip:
  description: The instance's private IP address, when it has one.
  returned: when state is present
  type: str
  sample: 10.20.0.3
operations:
  description: Long-running operations waited for, with status, polls and elapsed seconds.
  returned: when there were any
  type: list
  elements: dict
retries:
  description: Requests that were retried after a transient error or a busy instance.
  returned: when there were any
  type: list
  elements: str
"""

import re

from ansible_collections.mlplatform.mlflow.plugins.module_utils.google import (
    GoogleApiError,
    GoogleModule,
    adopt_on_conflict,
    check_labels,
    check_sql_instance_name,
    deep_merge,
    desired_changes,
    is_sql_busy,
    merge_labels,
)

SETTINGS_VIEW = (
    "tier", "edition", "availabilityType", "dataDiskSizeGb", "dataDiskType", "storageAutoResize", "ipConfiguration",
    "backupConfiguration", "maintenanceWindow", "deletionProtectionEnabled", "databaseFlags", "userLabels",
)  # fmt: skip


def engine_of(version: str) -> str:
    return "MYSQL" if version.upper().startswith("MYSQL") else "POSTGRES"


def desired_settings(p: dict, engine: str) -> dict:
    """The settings the options ask for (only those set), in the API's shape."""
    s: dict = {}
    for option, field in (("tier", "tier"), ("edition", "edition"), ("availability_type", "availabilityType"),
                          ("disk_type", "dataDiskType"), ("disk_autoresize", "storageAutoResize"),
                          ("deletion_protection", "deletionProtectionEnabled")):  # fmt: skip
        if p[option] is not None:
            s[field] = p[option]
    if p["disk_size_gb"] is not None:
        s["dataDiskSizeGb"] = str(p["disk_size_gb"])
    ip = {"ipv4Enabled": p["ipv4_enabled"]}
    for option, field in (
        ("private_network", "privateNetwork"),
        ("allocated_ip_range", "allocatedIpRange"),
        ("ssl_mode", "sslMode"),
    ):
        if p[option] is not None:
            ip[field] = p[option]
    s["ipConfiguration"] = ip
    backup: dict = {"enabled": p["backup_enabled"]}
    if p["backup_start_time"] is not None:
        backup["startTime"] = p["backup_start_time"]
    if p["point_in_time_recovery"] is not None:
        backup["binaryLogEnabled" if engine == "MYSQL" else "pointInTimeRecoveryEnabled"] = p["point_in_time_recovery"]
    if p["transaction_log_retention_days"] is not None:
        backup["transactionLogRetentionDays"] = p["transaction_log_retention_days"]
    if p["retained_backups"] is not None:
        backup["backupRetentionSettings"] = {"retentionUnit": "COUNT", "retainedBackups": p["retained_backups"]}
    s["backupConfiguration"] = backup
    if p["maintenance_window"]:
        s["maintenanceWindow"] = {"day": p["maintenance_window"]["day"], "hour": p["maintenance_window"]["hour"]}
    return s


def flags_list(flags: dict) -> list[dict]:
    return [{"name": k, "value": str(flags[k])} for k in sorted(flags)]


def instance_patch(current: dict, p: dict) -> dict:
    """The PATCH body for an existing instance: only the settings that differ (empty when none)."""
    have = current.get("settings") or {}
    settings = desired_changes(have, desired_settings(p, engine_of(current.get("databaseVersion", "")))) or {}
    if p["database_flags"] is not None:
        have_flags = {f["name"]: f.get("value", "") for f in have.get("databaseFlags") or []}
        want_flags = merge_labels(have_flags, p["database_flags"], p["purge_database_flags"])
        if want_flags != have_flags:
            settings["databaseFlags"] = flags_list(want_flags)
    if p["labels"] is not None:
        have_labels = have.get("userLabels") or {}
        want_labels = merge_labels(have_labels, p["labels"], p["purge_labels"])
        if want_labels != have_labels:
            settings["userLabels"] = want_labels
    return {"settings": settings} if settings else {}


def immutable_changes(current: dict, p: dict) -> list[str]:
    out = []
    if p["region"] and p["region"] != current.get("region"):
        out.append(f"region is {current.get('region')}, not {p['region']}")
    if p["database_version"] and p["database_version"].upper() != current.get("databaseVersion"):
        out.append(f"database_version is {current.get('databaseVersion')}, not {p['database_version']}")
    return out


def create_body(p: dict) -> dict:
    engine = engine_of(p["database_version"])
    settings = desired_settings(p, engine)
    settings.setdefault("edition", "ENTERPRISE")
    if p["database_flags"]:
        settings["databaseFlags"] = flags_list(p["database_flags"])
    if p["labels"]:
        settings["userLabels"] = {str(k): str(v) for k, v in p["labels"].items()}
    body = {
        "name": p["name"],
        "region": p["region"],
        "databaseVersion": p["database_version"].upper(),
        "settings": settings,
    }
    if p["root_password"]:
        body["rootPassword"] = p["root_password"]
    return body


def view(inst: dict | None) -> dict:
    if not inst:
        return {}
    settings = inst.get("settings") or {}
    return {
        "databaseVersion": inst.get("databaseVersion"),
        "region": inst.get("region"),
        "settings": {k: settings[k] for k in SETTINGS_VIEW if k in settings},
    }


def check_options(p: dict) -> list[tuple[str, str | None]]:
    problems = [("name", check_sql_instance_name(p["name"])), ("labels", check_labels(p["labels"]))]
    if p["database_version"] and not re.match(r"^(POSTGRES_\d+|MYSQL_\d+_\d+)$", p["database_version"].upper()):
        problems.append(
            ("database_version", f"'{p['database_version']}' is not POSTGRES_<major> or MYSQL_<major>_<minor>")
        )
    if p["backup_start_time"] and not re.match(r"^([01]\d|2[0-3]):[0-5]\d$", p["backup_start_time"]):
        problems.append(("backup_start_time", f"'{p['backup_start_time']}' is not HH:MM (UTC)"))
    window = p["maintenance_window"]
    if window and not (1 <= window["day"] <= 7 and 0 <= window["hour"] <= 23):
        problems.append(("maintenance_window", "day must be 1-7 and hour 0-23"))
    if p["private_network"] and not re.match(r"^projects/[^/]+/global/networks/[^/]+$", p["private_network"]):
        problems.append(
            ("private_network", f"'{p['private_network']}' is not projects/PROJECT/global/networks/NETWORK")
        )
    if p["tier"] and not re.match(r"^db-[a-z0-9-]+$", p["tier"]):
        problems.append(("tier", f"'{p['tier']}' is not a Cloud SQL tier (db-...)"))
    return problems


def run(module: GoogleModule) -> dict:
    p = module.params
    project = module.require_project()
    module.validate(check_options(p))
    client = module.client
    path = f"v1/projects/{project}/instances/{p['name']}"
    resource = f"Cloud SQL instance {project}:{p['name']}"
    current = client.get("sqladmin", path, resource=resource)

    if p["state"] == "absent":
        if current and not module.check_mode:
            op = client.request("DELETE", "sqladmin", path, resource=resource, retry_if=is_sql_busy)
            client.wait_sql_operation(project, op, resource=resource)
        return {"changed": bool(current), "diff": {"before": view(current), "after": {}}}

    if current is None:
        missing = [o for o in ("region", "database_version", "tier") if not p[o]]
        if missing:
            module.fail(f"options {', '.join(missing)} are required to create {resource}")
        body = create_body(p)
        if module.check_mode:
            connection = f"{project}:{p['region']}:{p['name']}"
            planned = {"instance": body, "connection_name": connection, "private_ip": ""}
            return {"changed": True, **planned, "diff": {"before": {}, "after": view(body)}}
        try:
            op = client.request("POST", "sqladmin", f"v1/projects/{project}/instances", body=body, resource=resource)
        except GoogleApiError as err:
            current = adopt_on_conflict(err, lambda: client.get("sqladmin", path, resource=resource))
        else:
            client.wait_sql_operation(project, op, resource=resource)
            after = client.request("GET", "sqladmin", path, resource=resource)
            return result(after, True, {})

    problems = immutable_changes(current, p)
    if problems:
        module.fail(f"{resource} cannot be changed in place: {'; '.join(problems)}")
    patch = instance_patch(current, p)
    after = current
    if patch:
        settings = deep_merge(current.get("settings") or {}, patch["settings"])
        if "userLabels" in patch["settings"]:
            settings["userLabels"] = patch["settings"]["userLabels"]
        after = dict(current, settings=settings)
        if not module.check_mode:
            op = client.request("PATCH", "sqladmin", path, body=patch, resource=resource, retry_if=is_sql_busy)
            client.wait_sql_operation(project, op, resource=resource)
            after = client.request("GET", "sqladmin", path, resource=resource)
    return result(after, bool(patch), current)


def result(inst: dict, changed: bool, before: dict) -> dict:
    private = [a["ipAddress"] for a in inst.get("ipAddresses") or [] if a.get("type") == "PRIVATE"]
    return {
        "changed": changed,
        "instance": inst,
        "connection_name": inst.get("connectionName", ""),
        "private_ip": private[0] if private else "",
        "diff": {"before": view(before), "after": view(inst)},
    }


def main() -> None:
    module = GoogleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "region": {"type": "str"},
            "database_version": {"type": "str"},
            "edition": {"type": "str", "choices": ["ENTERPRISE", "ENTERPRISE_PLUS"]},
            "tier": {"type": "str"},
            "availability_type": {"type": "str", "choices": ["ZONAL", "REGIONAL"]},
            "disk_size_gb": {"type": "int"},
            "disk_type": {"type": "str", "choices": ["PD_SSD", "PD_HDD"]},
            "disk_autoresize": {"type": "bool"},
            "private_network": {"type": "str"},
            "allocated_ip_range": {"type": "str"},
            "ipv4_enabled": {"type": "bool", "default": False},
            "ssl_mode": {
                "type": "str",
                "choices": ["ALLOW_UNENCRYPTED_AND_ENCRYPTED", "ENCRYPTED_ONLY", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"],
            },
            "backup_enabled": {"type": "bool", "default": True},
            "backup_start_time": {"type": "str"},
            "point_in_time_recovery": {"type": "bool"},
            "transaction_log_retention_days": {"type": "int"},
            "retained_backups": {"type": "int"},
            "maintenance_window": {
                "type": "dict",
                "options": {"day": {"type": "int", "required": True}, "hour": {"type": "int", "required": True}},
            },
            "deletion_protection": {"type": "bool", "default": True},
            "database_flags": {"type": "dict"},
            "purge_database_flags": {"type": "bool", "default": False},
            "labels": {"type": "dict"},
            "purge_labels": {"type": "bool", "default": False},
            "root_password": {"type": "str", "no_log": True},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        }
    )
    module.run(run)


if __name__ == "__main__":
    main()
