"""Deploy state: ``DIR/.mlplan/state.json``, written step by step.

Every step is recorded as ``running`` before it starts and ``done`` / ``failed`` when it ends, and every
resource or process is recorded the moment it exists, so a crash or a failed step leaves a truthful record of
what was started; ``mlplan status`` reads it and ``mlplan destroy`` undoes it. This file is runtime state, not
reviewed output: it carries timestamps. Writes are atomic (temp file + ``os.replace``) and a lock file keeps
two ``mlplan`` processes from deploying the same folder at once.

Each step is also announced as it happens (``announce``: one line when it starts, one with its duration when it
ends), so a long deploy is never silent. ``deployment_id`` is this folder's own random id, made on the first
deploy and kept for good: the Kubernetes target labels every object it creates with it, and changes or deletes
only objects that carry it.

Shape::

    {"version": 1, "plan_id": "...", "deployment_id": "3f1c0a9b5e2d4c6a",
     "targets": {"local": {"status": "deployed", "started_at": ..., "updated_at": ...,
                           "steps": [{"name": "start ray serve", "status": "done", "started_at": ..., ...}],
                           "resources": [...], "endpoint": "http://127.0.0.1:PORT/", ...}}}
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from planner.errors import ArtifactError, DeployError, MlplanError

STATE_VERSION = 1
_DEPLOYMENT_ID = re.compile(r"^[0-9a-f]{16}$")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class DeployState:
    def __init__(self, state_dir: Path, plan_id: str, *, announce: Callable[[str], None] | None = None) -> None:
        self.dir = state_dir
        self.path = state_dir / "state.json"
        self.plan_id = plan_id
        self.announce = announce
        self.data: dict[str, Any] = {"version": STATE_VERSION, "plan_id": plan_id, "targets": {}}
        self._ephemeral_id: str | None = None
        self.reload()

    def reload(self) -> None:
        if self.path.exists():
            try:
                loaded = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise ArtifactError(f"deploy state {self.path} is unreadable: {e}",
                                    fix="inspect it; delete it once nothing it lists runs") from None
            if not isinstance(loaded, dict) or not isinstance(loaded.get("targets"), dict):
                raise ArtifactError(f"deploy state {self.path} has no 'targets' mapping",
                                    fix="inspect it; delete it only once nothing it lists is running")
            self.data = loaded

    # ------------------------------------------------------------------------------------------ access
    def deployment_id(self, *, create: bool) -> str:
        """This folder's deployment id (16 hex digits). ``create``: make and save one if there is none yet;
        otherwise (a dry run, a status) an unsaved one that no object carries."""
        found = self.data.get("deployment_id")
        if isinstance(found, str) and _DEPLOYMENT_ID.match(found):
            return found
        if found is not None:
            raise ArtifactError(f"deploy state {self.path}: deployment_id {str(found)[:40]!r} is not 16 hex digits",
                                fix="restore the state file; objects of this deployment carry the id in their "
                                    "mlplan.dev/deployment label")
        if not create:
            self._ephemeral_id = self._ephemeral_id or secrets.token_hex(8)
            return self._ephemeral_id
        self.data["deployment_id"] = secrets.token_hex(8)
        self.save()
        return str(self.data["deployment_id"])

    @property
    def targets(self) -> dict[str, dict[str, Any]]:
        targets: dict[str, dict[str, Any]] = self.data["targets"]
        return targets

    def target(self, name: str) -> dict[str, Any] | None:
        return self.targets.get(name)

    def active_targets(self) -> list[str]:
        """Targets that may have something running, in the order they were deployed."""
        live = [(t.get("started_at", ""), n) for n, t in self.targets.items()
                if t.get("status") != "destroyed"]
        return [n for _, n in sorted(live)]

    def begin(self, name: str, **fields: Any) -> dict[str, Any]:
        """Start (or restart) a target's record, keeping what an earlier run left that still exists."""
        old = self.targets.get(name) or {}
        rec: dict[str, Any] = {
            "status": "deploying",
            "started_at": now(),
            "updated_at": now(),
            "steps": [],
            "resources": list(old.get("resources", [])) if old.get("status") != "destroyed" else [],
        }
        rec.update(fields)
        self.targets[name] = rec
        self.data["plan_id"] = self.plan_id
        self.save()
        return rec

    def update(self, name: str, **fields: Any) -> None:
        rec = self.targets.setdefault(name, {"steps": [], "resources": []})
        rec.update(fields)
        rec["updated_at"] = now()
        self.save()

    def add_resource(self, name: str, resource: dict[str, Any], *, key: str = "id") -> None:
        """Record (or replace, by ``key``) one started resource or process and save at once."""
        rec = self.targets.setdefault(name, {"steps": [], "resources": []})
        res = [r for r in rec.setdefault("resources", []) if r.get(key) != resource.get(key)]
        res.append(resource)
        rec["resources"] = res
        rec["updated_at"] = now()
        self.save()

    def remove_resource(self, name: str, value: Any, *, key: str = "id") -> None:
        rec = self.targets.get(name)
        if rec is None:
            return
        rec["resources"] = [r for r in rec.get("resources", []) if r.get(key) != value]
        rec["updated_at"] = now()
        self.save()

    @contextlib.contextmanager
    def step(self, target: str, name: str, *, quiet: bool = False, **detail: Any) -> Iterator[dict[str, Any]]:
        """Record a step as running, then done or failed (with the error's one line). Re-raises failures.
        Announced when it starts and ends, unless ``quiet`` (a per-object step whose caller says its own line)."""
        rec = self.targets.setdefault(target, {"steps": [], "resources": []})
        step: dict[str, Any] = {"name": name, "status": "running", "started_at": now(), **detail}
        rec.setdefault("steps", []).append(step)
        self.save()
        say = (lambda _: None) if quiet else self._say
        say(f"{target}: {name} ...")
        t0 = time.monotonic()
        try:
            yield step
        except BaseException as e:
            step["status"] = "failed"
            step["error"] = e.one_line() if isinstance(e, MlplanError) else f"{type(e).__name__}: {e}"
            step["finished_at"] = now()
            step["seconds"] = round(time.monotonic() - t0, 3)
            rec["status"] = "failed"
            rec["updated_at"] = now()
            self.save()
            say(f"{target}: {name} failed after {step['seconds']:.1f} s")
            raise
        step["status"] = step.get("status") if step.get("status") not in (None, "running") else "done"
        step["finished_at"] = now()
        step["seconds"] = round(time.monotonic() - t0, 3)
        rec["updated_at"] = now()
        self.save()
        say(f"{target}: {name} {step['status']} in {step['seconds']:.1f} s")

    def _say(self, line: str) -> None:
        if self.announce is not None:
            self.announce(line)

    # ------------------------------------------------------------------------------------------- files
    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)

    @contextlib.contextmanager
    def locked(self) -> Iterator[DeployState]:
        """Hold ``DIR/.mlplan/lock`` so that two mlplan processes never change one deployment at once."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise DeployError(f"another mlplan process is changing {self.dir.parent} right now",
                                  fix="wait for it to finish, then retry") from None
            self.reload()
            yield self
        finally:
            os.close(fd)
