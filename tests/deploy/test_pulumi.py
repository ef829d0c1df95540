"""Pulumi target without the pulumi CLI (absent here): the one-line MissingDependency, the backend and
passphrase rules, stack selection. The CLI-backed suite is tests/deploy/test_pulumi_cli.py (marker pulumi_cli)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from planner.errors import DeployError, EnvironmentProblem, MissingDependency
from stacks.deploy import pulumi_target, targets
from stacks.deploy.pulumi_target import PulumiTarget, backend_url, stack_name, workspace_env
from stacks.deploy.state import DeployState
from stacks.folder import load_folder
from tests import factories
from tests.deploy.conftest import write_plan_folder

INFRA = {"infra/Pulumi.yaml": "name: mlplan-test\nruntime: python\n",
         "infra/__main__.py": "import pulumi\npulumi.export('endpoint', 'http://example.invalid')\n",
         "infra/Pulumi.prod.yaml": yaml.safe_dump({"config": {"aws:region": "us-east-1"}})}


@pytest.fixture
def cloud(tmp_path: Path) -> Path:
    return write_plan_folder(tmp_path / "cloud", factories.cloud_llm_single_gpu(), INFRA)


@pytest.fixture
def no_pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def test_missing_cli_is_one_line_with_install_hint(cloud: Path, no_pulumi: None) -> None:
    with pytest.raises(MissingDependency) as err:
        targets.deploy(cloud, say=lambda _: None)  # default target of a cloud plan: pulumi
    line = err.value.one_line()
    assert line.startswith("the pulumi CLI is not installed")
    assert "curl -fsSL https://get.pulumi.com | sh" in line and "\n" not in line
    assert err.value.exit_code == 4


def test_the_sdks_bare_file_not_found_is_mapped(cloud: Path, no_pulumi: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past our own PATH check, the Automation API itself runs `pulumi` and raises FileNotFoundError."""
    monkeypatch.setattr(pulumi_target.shutil, "which", lambda _: "/opt/pulumi/bin/pulumi")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "test")
    folder = load_folder(cloud)
    target = PulumiTarget(folder, DeployState(folder.state_dir, folder.plan.id), say=lambda _: None)
    with pytest.raises(MissingDependency, match="the pulumi CLI is not installed"):
        target.plan()


def test_passphrase_is_required_for_a_file_backend(cloud: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    folder = load_folder(cloud)
    with pytest.raises(EnvironmentProblem, match="PULUMI_CONFIG_PASSPHRASE is not set") as err:
        workspace_env(folder, None)
    assert "PULUMI_CONFIG_PASSPHRASE_FILE" in err.value.one_line()
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "")  # set but empty: accepted (Pulumi allows it)
    env = workspace_env(folder, None)
    assert env["PULUMI_BACKEND_URL"] == (folder.state_dir / "pulumi").as_uri()
    assert (folder.state_dir / "pulumi").is_dir()
    # a Pulumi Cloud backend needs no passphrase (it manages secrets itself), and is used only when asked
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
    assert workspace_env(folder, "https://api.pulumi.com")["PULUMI_BACKEND_URL"] == "https://api.pulumi.com"


def test_backend_precedence(cloud: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = load_folder(cloud)
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    assert backend_url(folder, None).startswith("file:///") and backend_url(folder, None).endswith("/.mlplan/pulumi")
    monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://state-bucket")
    assert backend_url(folder, None) == "s3://state-bucket"
    assert backend_url(folder, "file:///srv/pulumi") == "file:///srv/pulumi"


def test_stack_name(tmp_path: Path, cloud: Path) -> None:
    assert stack_name(load_folder(cloud), None) == "prod"
    assert stack_name(load_folder(cloud), "staging") == "staging"
    (cloud / "infra" / "Pulumi.dev.yaml").write_text("config: {}\n")
    with pytest.raises(DeployError, match=r"several stack files \(dev, prod\)"):
        stack_name(load_folder(cloud), None)
    bare = write_plan_folder(tmp_path / "bare", factories.cloud_llm_single_gpu())
    with pytest.raises(DeployError, match=r"the Pulumi project \(infra/Pulumi.yaml\) is missing"):
        stack_name(load_folder(bare), None)


def test_status_and_destroy_use_the_recorded_backend_and_stack(cloud: Path) -> None:
    folder = load_folder(cloud)
    state = DeployState(folder.state_dir, folder.plan.id)
    state.begin("pulumi", backend="s3://team-state", stack="prod-eu")
    target = PulumiTarget(folder, DeployState(folder.state_dir, folder.plan.id), say=lambda _: None)
    assert (target.backend, target.stack_arg) == ("s3://team-state", "prod-eu")
    explicit = PulumiTarget(folder, state, backend="file:///tmp/x", stack="dev", say=lambda _: None)
    assert (explicit.backend, explicit.stack_arg) == ("file:///tmp/x", "dev")
