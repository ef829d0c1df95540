"""Across the boundaries, as a user goes: spec -> recommend -> plan --plan-index i (every offered plan) -> load.

Shared by ``tests/test_plan_roundtrip.py`` (a hypothesis sample on every run) and ``benchmarks/plan_roundtrip.py``
(1,000 random specs). A failure is any exception other than the spec's own InfeasibleError, or a folder that the
one plan-folder reader refuses.
"""

from __future__ import annotations

import shutil
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planner.catalog import Catalog
from planner.errors import InfeasibleError
from planner.optimizer import recommend
from planner.specs import spec_from_data


@dataclass
class Outcome:
    plans: int = 0
    infeasible: bool = False
    failures: list[str] = field(default_factory=list)


def roundtrip(data: dict[str, Any], *, top: int = 3, catalog: Catalog | None = None,
              workdir: Path | None = None) -> Outcome:
    """Recommend ``data`` and write + load a folder for each of its first ``top`` plans (no offline preview)."""
    from stacks.folder import load_folder
    from stacks.writer import write_plan_folder

    out = Outcome()
    spec = spec_from_data(data, source="spec")
    cat = catalog or Catalog.load(spec.catalog_overlay)
    try:
        rec = recommend(spec, cat, top=top)
    except InfeasibleError:
        out.infeasible = True
        return out
    root = Path(tempfile.mkdtemp(prefix="roundtrip-", dir=workdir))
    try:
        for i, plan in enumerate(rec.plans[:top]):
            out.plans += 1
            folder = root / f"plan-{i}"
            try:
                write_plan_folder(spec, rec, folder, plan_index=i, catalog=cat, preview=False)
                loaded = load_folder(folder)
                if loaded.plan != plan:
                    out.failures.append(f"plan {i} ({plan.id}): the loaded plan differs from the written one")
            except Exception as e:  # every failure is recorded with its place, none is expected
                where = traceback.extract_tb(e.__traceback__)[-1]
                out.failures.append(f"plan {i} ({plan.id}): {type(e).__name__}: {e} "
                                    f"[{Path(where.filename).name}:{where.lineno}]")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return out
