"""Every command has help and is documented in README.md; --help imports no heavy library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import typer.main
from typer.testing import CliRunner

from mlplan.cli import app

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("ray", "pulumi", "boto3", "kubernetes", "tritonclient", "torch", "onnxruntime", "matplotlib")


def all_commands() -> list[tuple[str, Any]]:
    root = typer.main.get_command(app)
    out: list[tuple[str, Any]] = []

    def walk(prefix: str, cmd: Any) -> None:
        if hasattr(cmd, "commands"):  # a group (typer vendors its own click)
            for name, sub in cmd.commands.items():
                out.append((f"{prefix} {name}".strip(), sub))
                walk(f"{prefix} {name}".strip(), sub)

    walk("", root)
    return out


def test_every_command_has_help_and_docs() -> None:
    readme = (ROOT / "README.md").read_text()
    cmds = all_commands()
    assert {"estimate", "recommend", "catalog"} <= {n for n, _ in cmds}
    runner = CliRunner()
    for name, cmd in cmds:
        assert (cmd.help or "").strip(), f"`mlplan {name}` has no help text"
        assert f"`mlplan {name}" in readme, f"README.md does not document `mlplan {name}`"
        res = runner.invoke(app, [*name.split(), "--help"])
        assert res.exit_code == 0, res.output
        assert "Usage" in res.output


def test_help_imports_no_heavy_library() -> None:
    code = ("import sys\nfrom mlplan.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\nsys.stderr.write('HEAVY=' + ','.join(heavy))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy = res.stderr.rsplit("HEAVY=", 1)[1].strip()
    assert heavy == "", f"mlplan --help imported {heavy}"
