"""Deploy state: steps recorded as running then done/failed, resources saved at once, the folder lock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner.errors import ArtifactError, DeployError
from stacks.deploy.state import DeployState


def test_steps_and_resources_are_saved_as_they_happen(tmp_path: Path) -> None:
    state = DeployState(tmp_path / ".mlplan", "plan-a")
    state.begin("local", runtime="ray")
    with state.step("local", "start") as step:
        on_disk = json.loads((tmp_path / ".mlplan" / "state.json").read_text())
        assert on_disk["targets"]["local"]["steps"][-1]["status"] == "running"  # written before the work
        state.add_resource("local", {"id": "ray-serve", "pid": 123})
        assert json.loads(state.path.read_text())["targets"]["local"]["resources"] == [{"id": "ray-serve",
                                                                                       "pid": 123}]
        step["detail"] = "x"
    with pytest.raises(DeployError), state.step("local", "smoke load"):
        raise DeployError("smoke load: 3 of 10 requests failed", fix="read the logs")
    rec = DeployState(tmp_path / ".mlplan", "plan-a").target("local")
    assert rec is not None and rec["status"] == "failed"
    assert [(s["name"], s["status"]) for s in rec["steps"]] == [("start", "done"), ("smoke load", "failed")]
    assert rec["steps"][1]["error"] == "smoke load: 3 of 10 requests failed. To fix: read the logs"
    assert rec["steps"][0]["detail"] == "x" and rec["resources"][0]["pid"] == 123
    assert DeployState(tmp_path / ".mlplan", "plan-a").active_targets() == ["local"]
    state.update("local", status="destroyed")
    assert DeployState(tmp_path / ".mlplan", "plan-a").active_targets() == []


def test_one_deploy_at_a_time(tmp_path: Path) -> None:
    a = DeployState(tmp_path / ".mlplan", "p")
    b = DeployState(tmp_path / ".mlplan", "p")
    with a.locked(), pytest.raises(DeployError, match="another mlplan process"), b.locked():
        pass
    with b.locked():  # released
        pass


def test_corrupt_state_is_an_artifact_error(tmp_path: Path) -> None:
    (tmp_path / ".mlplan").mkdir()
    (tmp_path / ".mlplan" / "state.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="is unreadable"):
        DeployState(tmp_path / ".mlplan", "p")
    (tmp_path / ".mlplan" / "state.json").write_text("[]")
    with pytest.raises(ArtifactError, match="has no 'targets' mapping"):
        DeployState(tmp_path / ".mlplan", "p")
