"""Fixtures of the deploy tests: plan folders in the layout `mlplan plan --out DIR` writes, a fake Kubernetes API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from planner.plan import Plan
from tests.deploy.fake_kube import FakeKubeServer


def write_plan_folder(root: Path, plan: Plan, files: dict[str, str] | None = None) -> Path:
    """A plan folder with ``plan.yaml`` (as the plan writer stores it) plus the given artifact files."""
    root.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"mlplan_version": "0.1.0", "catalog_version": "test", "spec": {"name": "test"},
                            "plan": plan.model_dump(mode="json"), "runners_up": [], "rejected": []}
    (root / "plan.yaml").write_text(yaml.safe_dump(data, sort_keys=True))
    for rel, text in (files or {}).items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


@pytest.fixture
def kube_server() -> Iterator[FakeKubeServer]:
    with FakeKubeServer() as server:
        yield server
