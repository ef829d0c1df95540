"""Every plan mlplan offers can be written and read back: random valid specs -> recommend -> plan -> load.

The first round found 22 of 191 offered top-3 plans that `mlplan plan` could not write (emitters re-deriving
geography and runtime capability). This samples random valid specs on every run; ``benchmarks/plan_roundtrip.py``
runs 1,000 and prints the table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings

from tests.fuzz_strategies import valid_spec_data
from tests.roundtrip import roundtrip


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                 HealthCheck.function_scoped_fixture])
@given(data=valid_spec_data())
def test_every_offered_plan_writes_and_loads(tmp_path: Path, data: dict[str, Any]) -> None:
    out = roundtrip(data, top=3, workdir=tmp_path)
    assert out.failures == [], out.failures


def test_the_examples_round_trip(tmp_path: Path) -> None:
    """Every example's first three plans, through the same path (the examples are what users copy)."""
    from planner.specs import read_yaml

    root = Path(__file__).resolve().parent.parent / "examples"
    written = 0
    for path in sorted(root.glob("*.yaml")):
        if path.name.endswith(".catalog.yaml"):
            continue
        data = read_yaml(path)
        if data.get("catalog_overlay"):
            data["catalog_overlay"] = str(root / data["catalog_overlay"])
        out = roundtrip(data, top=3, workdir=tmp_path)
        assert out.failures == [], (path.name, out.failures)
        written += out.plans
    assert written >= 15
