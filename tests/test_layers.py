"""The import contract of the layers (README "Layout", ARCHITECTURE.md), checked on the source of every module.

- ``planner`` (the pure core) imports no outer layer: not ``mlplan``, ``stacks`` or ``serving``;
- ``serving`` does not import ``stacks``;
- the emitters (``serving/`` and ``stacks/`` outside ``stacks/deploy/``) read the plan only: they import neither the
  catalog nor the optimizer (the deploy tools may read the catalog: the catalog refresh writes overlays and
  preflight compares an account with it; they never import the optimizer);
- heavy libraries are imported inside the function that needs them, never at module level, in ``mlplan`` and
  ``planner`` (so ``mlplan --help`` and ``mlplan recommend`` stay fast).

Imports under ``if TYPE_CHECKING:`` are type annotations, not imports at run time, and are allowed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("ray", "pulumi", "pulumi_aws", "pulumi_kubernetes", "pulumi_gcp", "pulumi_azure_native", "boto3",
         "botocore", "kubernetes", "tritonclient", "torch", "matplotlib", "google.cloud", "azure", "onnxruntime")


def modules(package: str) -> Iterator[Path]:
    yield from sorted((ROOT / package).rglob("*.py"))


def imports(path: Path, *, top_level_only: bool = False) -> list[tuple[int, str]]:
    """(line, module) of every import in ``path`` outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: list[tuple[int, str]] = []

    def visit(node: ast.AST, depth: int) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            nested = depth + isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            if isinstance(child, ast.Import) and (not top_level_only or depth == 0):
                out.extend((child.lineno, a.name) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0 and (
                    not top_level_only or depth == 0):
                out.extend((child.lineno, f"{child.module}.{a.name}") for a in child.names)
            visit(child, nested)

    visit(tree, 0)
    return out


def violations(packages: tuple[str, ...], forbidden: tuple[str, ...], *, top_level_only: bool = False,
               skip: tuple[str, ...] = ()) -> list[str]:
    found = []
    for package in packages:
        for path in modules(package):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith(skip):
                continue
            for line, name in imports(path, top_level_only=top_level_only):
                if any(name == f or name.startswith(f + ".") for f in forbidden):
                    found.append(f"{rel}:{line} imports {name}")
    return found


def test_the_core_imports_no_outer_layer() -> None:
    assert violations(("planner",), ("mlplan", "stacks", "serving")) == []


def test_serving_does_not_import_stacks() -> None:
    assert violations(("serving",), ("stacks",)) == []


def test_emitters_read_the_plan_not_the_catalog_or_the_optimizer() -> None:
    assert violations(("serving", "stacks"), ("planner.catalog", "planner.optimizer"), skip=("stacks/deploy/",)) == []
    assert violations(("stacks",), ("planner.optimizer",)) == []


@pytest.mark.parametrize("package", ["mlplan", "planner"])
def test_heavy_libraries_only_inside_the_function_that_needs_them(package: str) -> None:
    assert violations((package,), HEAVY, top_level_only=True) == []


def test_the_checker_sees_what_it_forbids(tmp_path: Path) -> None:
    """The scanner is not vacuous: it reports a module-level heavy import and an upward import, and skips
    TYPE_CHECKING blocks and function-level imports where only module level is forbidden."""
    src = tmp_path / "m.py"
    src.write_text("from typing import TYPE_CHECKING\nimport ray\nfrom stacks.layout import parts\n"
                   "if TYPE_CHECKING:\n    from planner.catalog import Catalog\n"
                   "def f():\n    import pulumi\n")
    found = imports(src)
    assert (2, "ray") in found and (3, "stacks.layout.parts") in found and (7, "pulumi") in found
    assert not any(name.startswith("planner.catalog") for _, name in found)
    assert (7, "pulumi") not in imports(src, top_level_only=True)
