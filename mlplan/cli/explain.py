"""``mlplan explain SPEC OPTION``: why not OPTION?"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("explain")(explain_cmd)


def explain_cmd(
    spec: Annotated[Path, typer.Argument(help="spec YAML")],
    option: Annotated[str, typer.Argument(help="instance type, accelerator, on-prem SKU or edge device id")],
    catalog: Annotated[Path | None, typer.Option(help="catalog overlay YAML")] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Why not OPTION? The binding constraint and the numbers behind it (e.g. `mlplan explain spec.yaml g5.xlarge`)."""
    from planner.catalog import Catalog
    from planner.explain import explain
    from planner.specs import load_spec

    s = load_spec(spec)
    e = explain(s, option, Catalog.load(catalog or s.catalog_overlay))
    if json_out:
        print(json.dumps({
            "option": e.option, "feasible": e.feasible, "verdict": e.verdict, "reasons": list(e.reasons),
            "best_for_option": e.best_for_option.model_dump(mode="json") if e.best_for_option else None,
            "winner": e.winner.id if e.winner else None,
        }, indent=2))
        return
    print(f"{e.verdict}:")
    for r in e.reasons:
        print(f"  - {r}")
    if e.winner is not None and not e.feasible:
        print(f"  the recommended plan is {e.winner.instance} ({e.winner.accelerator}, {e.winner.dtype}) at "
              f"${e.winner.monthly_cost_usd:,.0f}/month")
