"""No secret material in what mlplan writes or prints. Fake but well-formed secrets (an AKIA access key id,
a secret access key, session / GitHub / Hugging Face / Pulumi tokens, a passphrase, a password) are put in the
environment before ``plan``, ``deploy --preview`` and ``preflight`` run; none of them, and no other credential
shape (PEM private keys, ``aws_secret_access_key = ...``, ``password: ...``), may appear in any emitted file or
in the captured stdout/stderr. The deploy state and server logs of real local deploys are scanned by
``tests/faults`` the same way."""

from __future__ import annotations

from pathlib import Path

from tests.faults.conftest import mlplan, one_line_error
from tests.security import audit
from tests.security.conftest import Emitted
from tests.security.scan import FAKE_SECRETS, scan_text, scan_tree


def test_no_secret_in_any_emitted_file(emitted: dict[str, Emitted]) -> None:
    total, hits = 0, []
    for e in emitted.values():
        n, found = scan_tree(e.folder)
        total += n
        hits += [f"{e.name}/{h}" for h in found]
    assert not hits, "\n".join(hits)
    assert total >= 5 * len(emitted)


def test_cli_plan_preview_and_preflight_leak_nothing(tmp_path: Path) -> None:
    out = tmp_path / "hybrid"
    # real CLI, with the offline Pulumi preview (a subprocess that inherits the environment)
    plan = mlplan("plan", "examples/hybrid-clinic.yaml", "--out", str(out))
    assert plan.returncode == 0, plan.stderr
    assert "(offline preview skipped)" not in (out / "PLAN.md").read_text()
    stack_cfg = next((out / "infra").glob("Pulumi.*.yaml")).read_text()
    assert "pulumi config set --secret mlplan:kubeconfig" in stack_cfg  # the secret is set by the user, later
    preview = mlplan("deploy", str(out), "--target", "pulumi", "--preview", env={"PATH": str(tmp_path / "no-bin")})
    assert preview.returncode == 4 and "pulumi CLI is not installed" in one_line_error(preview)
    preflight = mlplan("preflight", str(out), env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9",
                                                   "AWS_EC2_METADATA_DISABLED": "true"})
    assert preflight.returncode == 4, preflight.stderr
    outputs = [plan.stdout, plan.stderr, preview.stdout, preview.stderr, preflight.stdout, preflight.stderr]
    hits = scan_tree(out)[1] + [h for i, text in enumerate(outputs) for h in scan_text(text, f"output {i}")]
    assert not hits, "\n".join(map(str, hits))


def test_the_scanner_finds_secrets(tmp_path: Path) -> None:
    """The scan can fail: each planted value, and credential shapes nobody planted."""
    for value in FAKE_SECRETS.values():
        assert scan_text(f"x: {value}\n", "f"), value
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n"
    samples = {"aws access key id": "id = AKIAIOSFODNN7EXAMPLE", "private key": pem,
               "aws secret access key": "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
               "password": "password: hunter2hunter2", "github token": "ghp_" + "a" * 36}
    for kind, text in samples.items():
        assert [h.kind for h in scan_text(text, "f", planted=())] == [kind], kind
    for text in ("password: ${DB_PASSWORD}", "passwordless: true", "password: <set me>",
                 "# secret, set with: pulumi config set --secret mlplan:kubeconfig \"$(cat KUBECONFIG_FILE)\""):
        assert scan_text(text, "f", planted=()) == [], text
    folder = tmp_path / "f"
    (folder / "k8s").mkdir(parents=True)
    (folder / "k8s" / "x.yaml").write_text(f"env:\n- name: KEY\n  value: {FAKE_SECRETS['AWS_SECRET_ACCESS_KEY']}\n")
    assert [h.where for h in scan_tree(folder)[1]] == ["k8s/x.yaml"]
    assert audit.manifest_files(folder) == [folder / "k8s" / "x.yaml"]
