# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over container image references (the checks the roles' preflights run before anything changes)."""

from __future__ import annotations


def image_reference_problem(value: object, artifact_registry: bool = False) -> str:
    """'' when value is a pinned image reference (registry host, path, tag and/or sha256 digest), else the reason.

    With artifact_registry=True the registry must also be an Artifact Registry Docker host
    (LOCATION-docker.pkg.dev/PROJECT/REPOSITORY/IMAGE).
    """
    # Imported here, not at the top: Ansible loads every filter file of the collection to find any one filter.
    from ansible_collections.mlplatform.mlflow.plugins.module_utils import image_reference

    text = "" if value is None else str(value)
    return (image_reference.artifact_registry_problem(text) if artifact_registry
            else image_reference.image_reference_problem(text))


class FilterModule:
    def filters(self):
        return {"image_reference_problem": image_reference_problem}
