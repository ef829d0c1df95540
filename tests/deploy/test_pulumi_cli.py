"""The Pulumi target through the real Automation API and CLI, on a local file backend (no cloud, no login).

Runs where the ``pulumi`` CLI is installed (the Dockerfile's image has it); skipped with the reason elsewhere.
The program is a minimal Pulumi Python project (a stack output, no provider plugin to download), so the test
exercises mlplan's own path: create_or_select_stack, preview, up with streamed output/events, idempotent second
up, status, destroy, second destroy.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import yaml

from stacks.deploy import targets
from stacks.deploy.state import DeployState
from tests import factories
from tests.deploy.conftest import write_plan_folder

pytestmark = [
    pytest.mark.pulumi_cli,
    pytest.mark.skipif(shutil.which("pulumi") is None,
                       reason="the pulumi CLI is not installed here (curl -fsSL https://get.pulumi.com | sh)"),
]


def _project(root: Path) -> Path:
    runtime = {"name": "python", "options": {"toolchain": "pip", "virtualenv": str(Path(sys.prefix))}}
    return write_plan_folder(root, factories.cloud_llm_single_gpu(), {
        "infra/Pulumi.yaml": yaml.safe_dump({"name": "mlplan-deploy-test", "runtime": runtime}),
        "infra/Pulumi.ci.yaml": yaml.safe_dump({"config": {"mlplan-deploy-test:greeting": "hello"}}),
        "infra/__main__.py": "import pulumi\n"
                             "cfg = pulumi.Config()\n"
                             "pulumi.export('endpoint', 'http://127.0.0.1:8000/' + cfg.require('greeting'))\n",
    })


def test_preview_up_idempotent_destroy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "mlplan-test-passphrase")
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    monkeypatch.setenv("PULUMI_HOME", str(tmp_path / "pulumi-home"))
    folder = _project(tmp_path / "plan")
    out: list[str] = []
    preview = targets.deploy(folder, dry_run=True, say=out.append)
    assert preview.details["preview"].get("create", 0) >= 1 and preview.changed >= 1 and preview.dry_run
    assert not (folder / ".mlplan" / "state.json").exists() or "deployed" not in \
        (folder / ".mlplan" / "state.json").read_text()
    assert (folder / ".mlplan" / "pulumi").is_dir()  # the local file backend, nothing logged in
    up = targets.deploy(folder, say=out.append)
    assert up.endpoint == "http://127.0.0.1:8000/hello" and up.changed >= 1
    assert any(line.startswith("  | ") for line in out)  # streamed engine output
    again = targets.deploy(folder, say=out.append)
    assert again.details["preview"].get("create", 0) == 0 and again.details["preview"].get("update", 0) == 0
    assert again.changed == 0
    healthy, lines = targets.status(folder)
    assert healthy, lines
    state = DeployState(folder / ".mlplan", "x").target("pulumi")
    assert state is not None and [s["name"] for s in state["steps"]] == ["preview", "up"]
    targets.destroy(folder, say=out.append)
    assert targets.destroy(folder, say=out.append) == 0
