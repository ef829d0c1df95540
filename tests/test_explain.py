"""`mlplan explain SPEC OPTION`: the binding constraint and the numbers behind it."""

from __future__ import annotations

from pathlib import Path

import pytest

from planner.errors import CatalogError
from planner.explain import explain
from planner.specs import load_spec

EX = Path(__file__).resolve().parent.parent / "examples"


def test_residency_and_budget_bind_for_a_us_instance_on_eu_pii() -> None:
    e = explain(load_spec(EX / "chat-eu-pii.yaml"), "p5.48xlarge")
    assert not e.feasible
    text = " ".join(e.reasons)
    assert "privacy/residency" in text and "budget" in text and "$30,000" in text
    assert e.winner is not None and e.winner.region is not None and e.winner.region.startswith("eu-")


def test_latency_binds_for_a_small_gpu_on_a_70b_model() -> None:
    e = explain(load_spec(EX / "llama-70b-tight-ttft.yaml"), "g5.xlarge")
    assert not e.feasible
    assert any(r.startswith("latency:") and "SLO 300 ms" in r for r in e.reasons)


def test_feasible_but_dearer_option_names_the_cost_gap() -> None:
    e = explain(load_spec(EX / "llama-70b-tight-ttft.yaml"), "p6-b200.48xlarge")
    assert e.feasible and e.best_for_option is not None and e.winner is not None
    assert e.best_for_option.monthly_cost_usd > e.winner.monthly_cost_usd
    assert "less" in e.reasons[0]


def test_the_winner_explains_itself() -> None:
    spec = load_spec(EX / "llama-70b-tight-ttft.yaml")
    # the winner once sized for p99 TTFT under load (issue 12): 8 x H200; 8 x H100 (p5.48xlarge) until the
    # quantized GEMMs' fixed cost put its p99 TTFT just over the SLO
    e = explain(spec, "p5en.48xlarge")
    assert e.feasible and "recommended" in e.verdict


def test_unknown_option_is_a_catalog_error() -> None:
    with pytest.raises(CatalogError, match="not an instance type"):
        explain(load_spec(EX / "chat-eu-pii.yaml"), "z9.mega")


def test_explain_agrees_with_recommend_on_every_side_of_a_hybrid() -> None:
    """A hybrid's winner runs on two kinds of hardware; asked about either, explain answers with the same plan
    recommend chose (narrowing the catalog to one side used to leave the hybrid without its other side)."""
    from planner.optimizer import recommend

    spec = load_spec(EX / "hybrid-clinic.yaml")
    winner = recommend(spec, top=1).plans[0]
    assert len(winner.parts) == 2
    for part in winner.parts:
        e = explain(spec, part.instance)
        assert e.feasible and "recommended" in e.verdict, (part.instance, e.verdict, e.reasons)
        assert e.best_for_option is not None and e.best_for_option.id == winner.id
