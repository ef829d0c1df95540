"""The verbs behind ``mlplan deploy / status / destroy`` through their seam, a fake :class:`DeployTarget` (as
httpx's ``BaseTransport`` is faked): the lock, dry runs, streaming each step as it happens, the order of
destroy; and the three real targets meeting the Protocol."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from planner.errors import DeployError
from stacks.deploy import targets
from stacks.deploy.state import DeployState
from stacks.deploy.target import Applied, DeployTarget, Health, Say
from stacks.folder import PlanFolder, Target, load_folder
from tests import factories
from tests.deploy.conftest import write_plan_folder


class FakeTarget:
    """Records what the verbs asked and when; each apply runs two recorded steps."""

    def __init__(self, name: Target, folder: PlanFolder, state: DeployState, say: Say, log: list[str],
                 seen: list[str]) -> None:
        self.name, self.folder, self.state, self.say, self.log, self.seen = name, folder, state, say, log, seen

    def plan(self) -> Applied:
        self.log.append(f"{self.name}.plan")
        return Applied(target=self.name, changed=2, dry_run=True)

    def apply(self) -> Applied:
        self.log.append(f"{self.name}.apply")
        self.state.begin(self.name)
        for step in ("start", "warm up"):
            with self.state.step(self.name, step):
                # what the user has seen by the time the step's work runs: its start line, already
                self.log.append(f"seen before {step}: {self.seen[-1]}")
                time.sleep(0.05)
        self.state.add_resource(self.name, {"id": "server", "kind": "fake"})
        self.state.update(self.name, status="deployed")
        return Applied(target=self.name, changed=1, endpoint="http://127.0.0.1:1/", ready=True)

    def status(self) -> Health:
        self.log.append(f"{self.name}.status")
        return Health(True, ("fake server: healthy",))

    def destroy(self) -> int:
        self.log.append(f"{self.name}.destroy")
        self.state.update(self.name, status="destroyed", resources=[])
        return 1

    def close(self) -> None:
        self.log.append(f"{self.name}.close")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_plan_folder(tmp_path / "p", factories.local_demo("triton"))


def _factory(log: list[str], seen: list[str]) -> targets.TargetFactory:
    def make(name: Target, folder: PlanFolder, state: DeployState, opts: targets.Options, say: Say) -> DeployTarget:
        return FakeTarget(name, folder, state, say, log, seen)
    return make


def test_deploy_streams_each_step_as_it_happens(folder: Path) -> None:
    log: list[str] = []
    seen: list[str] = []
    result = targets.deploy(folder, say=seen.append, factory=_factory(log, seen))
    assert result == Applied(target="local", changed=1, endpoint="http://127.0.0.1:1/", ready=True)
    assert log == ["local.apply", "seen before start: local: start ...", "seen before warm up: local: warm up ...",
                   "local.close"]
    assert seen[0] == f"plan {load_folder(folder).plan.id}: target local"
    assert seen[1:3] == ["local: start ...", seen[2]] and seen[2].startswith("local: start done in 0.")
    assert seen[3] == "local: warm up ..." and seen[4].startswith("local: warm up done in 0.")


def test_dry_run_plans_without_the_lock_or_state(folder: Path) -> None:
    log: list[str] = []
    result = targets.deploy(folder, dry_run=True, say=lambda _: None, factory=_factory(log, []))
    assert result.dry_run and result.changed == 2
    assert log == ["local.plan", "local.close"]
    assert not (folder / ".mlplan" / "state.json").exists()


def test_one_deploy_at_a_time(folder: Path) -> None:
    state = DeployState(folder / ".mlplan", "x")
    with state.locked(), pytest.raises(DeployError, match="another mlplan process is changing"):
        targets.deploy(folder, say=lambda _: None, factory=_factory([], [""]))


def test_status_and_destroy_go_through_the_recorded_targets(folder: Path) -> None:
    log: list[str] = []
    seen: list[str] = [""]
    targets.deploy(folder, say=seen.append, factory=_factory(log, seen))
    healthy, lines = targets.status(folder, factory=_factory(log, seen))
    assert healthy and lines == ["local: healthy (state deployed)", "  fake server: healthy"]
    assert targets.destroy(folder, say=seen.append, factory=_factory(log, seen)) == 1
    assert targets.destroy(folder, say=seen.append, factory=_factory(log, seen)) == 0
    assert [e for e in log if not e.startswith("seen")] == [
        "local.apply", "local.close", "local.status", "local.close", "local.destroy", "local.close"]


def test_the_real_targets_meet_the_protocol(tmp_path: Path) -> None:
    from stacks.deploy.kube import KubernetesTarget
    from stacks.deploy.local import LocalTarget
    from stacks.deploy.pulumi_target import PulumiTarget

    f = load_folder(write_plan_folder(tmp_path / "p", factories.onprem_llm()))
    state = DeployState(f.state_dir, f.plan.id)
    made = [LocalTarget(f, state), KubernetesTarget(f, state), PulumiTarget(f, state)]
    assert all(isinstance(t, DeployTarget) for t in made)
    assert [t.name for t in made] == ["local", "kubernetes", "pulumi"]
    opts = targets.Options()
    assert [type(targets.make_target(n, f, state, opts, print)).__name__ for n in ("local", "kubernetes", "pulumi")] \
        == ["LocalTarget", "KubernetesTarget", "PulumiTarget"]
