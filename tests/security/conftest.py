"""Fixtures of the security tests: the plan folder of every example spec and every factory plan, written once
per session by the real writer with fake secrets planted in the environment, and one checkov run over all of
their manifests plus the Dockerfile."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.security import audit
from tests.security.scan import FAKE_SECRETS


@dataclass(frozen=True)
class Emitted:
    name: str  # example-<spec stem> or factory-<name>
    folder: Path
    plan: Any


@pytest.fixture(scope="session")
def emitted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Emitted]:
    root = tmp_path_factory.mktemp("emitted")
    saved = {k: os.environ.get(k) for k in FAKE_SECRETS}
    os.environ.update(FAKE_SECRETS)  # whatever the writer might copy from the environment, it would copy these
    try:
        out: dict[str, Emitted] = {}
        for spec in audit.example_specs():
            name = f"example-{spec.stem}"
            out[name] = Emitted(name, root / name, audit.emit_example(spec, root / name))
        for factory in audit.factory_names():
            name = f"factory-{factory}"
            out[name] = Emitted(name, root / name, audit.emit_factory(factory, root / name))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return out


@dataclass(frozen=True)
class CheckovScan:
    root: Path
    passed: int
    failures: list[audit.Failure]
    parsing_errors: int
    files: dict[str, list[str]]  # emitted name -> scanned manifest files (relative to root)


@pytest.fixture(scope="session")
def checkov_scan(emitted: dict[str, Emitted], tmp_path_factory: pytest.TempPathFactory) -> CheckovScan:
    if not audit.checkov_available():
        pytest.skip(f"checkov is not installed at {audit.CHECKOV} (`make test` installs it in its own "
                    "environment from requirements-checkov.lock)")
    root = tmp_path_factory.mktemp("checkov")
    files: dict[str, list[str]] = {}
    for e in emitted.values():
        for f in audit.manifest_files(e.folder):
            rel = f"{e.name}/{f.relative_to(e.folder).as_posix().replace('/', '__')}"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, root / rel)
            files.setdefault(e.name, []).append(rel)
    shutil.copy(audit.DOCKERFILE, root / "Dockerfile")
    passed, failures, errors = audit.run_checkov(root)
    return CheckovScan(root, passed, failures, errors, files)


@pytest.fixture(scope="session")
def mock_resources(emitted: dict[str, Emitted]) -> Iterator[dict[str, list[dict[str, Any]]]]:
    """Every IaC plan's Pulumi program run under Pulumi's mocks: the recorded resources and their inputs."""
    from stacks import layout

    yield {name: audit.mock_run(e.plan) for name, e in emitted.items() if layout.has_iac(e.plan)}


# pulumi-aws 7 warns at import about its own deprecated aliases; Ray's serve schema about pydantic Field extras
# (both third-party, both also filtered in pyproject; repeated here so these tests do not depend on that list)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/security/" in item.nodeid:
            item.add_marker(pytest.mark.filterwarnings(
                "ignore:.*has been deprecated in favor of:DeprecationWarning:pulumi_aws"))
            item.add_marker(pytest.mark.filterwarnings(
                "ignore:.*has been deprecated in favor of:DeprecationWarning:pulumi_gcp"))
            item.add_marker(pytest.mark.filterwarnings(
                "ignore:Using extra keyword arguments on `Field` is deprecated:"
                "pydantic.warnings.PydanticDeprecatedSince20"))
