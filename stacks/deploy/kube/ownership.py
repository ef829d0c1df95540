"""Which objects on a cluster are this deployment's: two teams, one cluster, and neither touches the other's.

Every object the target applies carries three labels, added at apply time (the emitted manifests stay free of
deploy identity):

- ``mlplan.dev/owner``: the spec's identity (the plan's project name, ``mlplan-<spec name>``), for people and
  ``kubectl get -l``;
- ``mlplan.dev/deployment``: this plan folder's deployment id (random, made on its first deploy, kept in
  ``DIR/.mlplan/state.json``): two folders of specs that share a name still differ here;
- ``app.kubernetes.io/managed-by: mlplan``.

An object is *ours* when its deployment label is this folder's (or, for an object this folder's state records as
created by mlplan before these labels existed, when it carries no deployment label and mlplan's field manager
manages it). Deploy changes only objects that are ours or absent; destroy and prune delete only ours, and refuse
when another field manager owns part of one (``metadata.managedFields``, as server-side apply records them:
https://kubernetes.io/docs/reference/using-api/server-side-apply/#field-management). Controllers that write only
``status`` or the ``scale`` subresource, or only metadata (labels, annotations, finalizers), do not own an object:
the Deployment controller's revision annotation and an HPA's replica count are no reason to refuse.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stacks.deploy.kube.client import FIELD_MANAGER

OWNER_LABEL = "mlplan.dev/owner"
DEPLOYMENT_LABEL = "mlplan.dev/deployment"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
#: metadata-only and status fields: writing them does not make a manager an owner of the object
_PASSIVE_FIELDS = {"f:metadata", "f:status", "."}
_PASSIVE_SUBRESOURCES = {"status", "scale"}
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Identity:
    """Who this deployment is, as labels."""

    owner: str
    deployment: str
    manager: str = FIELD_MANAGER

    def __post_init__(self) -> None:
        for value in (self.owner, self.deployment):
            if not _LABEL_VALUE.match(value):
                raise ValueError(f"{value!r} is not a Kubernetes label value")

    def labels(self) -> dict[str, str]:
        return {OWNER_LABEL: self.owner, DEPLOYMENT_LABEL: self.deployment, MANAGED_BY_LABEL: "mlplan"}


def owner_label_value(project: str) -> str:
    """A label value (63 characters at most, alphanumeric ends) from the plan's project name."""
    value = re.sub(r"[^-A-Za-z0-9_.]", "-", project)[:63].strip("-_.")
    return value or "mlplan"


def labelled(body: Mapping[str, Any], ident: Identity) -> dict[str, Any]:
    """A copy of ``body`` whose ``metadata.labels`` carry the deployment's labels (the manifest's own kept)."""
    out = copy.deepcopy(dict(body))
    meta = dict(out.get("metadata") or {})
    meta["labels"] = {**(meta.get("labels") or {}), **ident.labels()}
    out["metadata"] = meta
    return out


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


def _entries(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    entries = (obj.get("metadata") or {}).get("managedFields") or []
    return [e for e in entries if isinstance(e, dict)]


def managers(obj: Mapping[str, Any]) -> list[str]:
    """Every field manager of the object (any operation, any subresource)."""
    return sorted({str(e.get("manager") or "?") for e in _entries(obj)})


def is_ours(obj: Mapping[str, Any], ident: Identity, *, recorded_as_created: bool = False) -> bool:
    """The object is this deployment's (see the module docstring)."""
    deployment = _labels(obj).get(DEPLOYMENT_LABEL)
    if deployment is not None:
        return deployment == ident.deployment
    return recorded_as_created and ident.manager in managers(obj)


def has_mlplan_labels(obj: Mapping[str, Any]) -> bool:
    labels = _labels(obj)
    return OWNER_LABEL in labels or DEPLOYMENT_LABEL in labels


def whose(obj: Mapping[str, Any]) -> str:
    """Who the object belongs to, for a message: its mlplan labels and its field managers."""
    labels = _labels(obj)
    parts = []
    if labels.get(OWNER_LABEL):
        parts.append(f"owner {labels[OWNER_LABEL]}")
    if labels.get(DEPLOYMENT_LABEL):
        parts.append(f"deployment {labels[DEPLOYMENT_LABEL]}")
    found = managers(obj)
    parts.append(f"field managers {', '.join(found)}" if found else "no field manager")
    return ", ".join(parts)


def _paths(fields: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Leaf field paths of a ``fieldsV1`` set, as ``.spec.replicas``."""
    out: list[str] = []
    for key, sub in fields.items():
        if key == ".":
            continue
        name = prefix + "." + (key[2:] if key.startswith("f:") else key)
        if isinstance(sub, Mapping) and any(k != "." for k in sub):
            out.extend(_paths(sub, name))
        else:
            out.append(name)
    return out


def co_owners(obj: Mapping[str, Any], ident: Identity) -> dict[str, list[str]]:
    """Other field managers that own part of the object's content (not only its metadata or status, not through
    the status / scale subresources), each with the fields it owns."""
    out: dict[str, list[str]] = {}
    for entry in _entries(obj):
        manager = str(entry.get("manager") or "?")
        if manager == ident.manager or entry.get("subresource") in _PASSIVE_SUBRESOURCES:
            continue
        fields = entry.get("fieldsV1") or {}
        if not isinstance(fields, Mapping):
            continue
        owned = {k: v for k, v in fields.items() if k not in _PASSIVE_FIELDS}
        if owned:
            out.setdefault(manager, []).extend(_paths(owned))
    return {m: sorted(set(p)) for m, p in sorted(out.items())}


def co_owner_text(owners: Mapping[str, list[str]]) -> str:
    """``kubectl-edit (.spec.replicas), helm (.data)`` for a message."""
    parts = []
    for manager, paths in owners.items():
        shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
        parts.append(f"{manager} ({shown})")
    return "; ".join(parts)
