"""Shared fixtures of the serving tests: a private model cache, and the demo model built once."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlplan-cache")


@pytest.fixture(autouse=True)
def _private_cache(model_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """builtin:// models resolve into a per-session cache, never the user's ~/.cache."""
    monkeypatch.setenv("MLPLAN_CACHE_DIR", str(model_cache))


@pytest.fixture(scope="session")
def demo_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from serving.model.demo import write

    return write(tmp_path_factory.mktemp("demo") / "mlp-demo.onnx")


# Ray 2.60's serve config models (ray/serve/_private/config.py) pass ``update_type=`` to pydantic ``Field``, which
# pydantic 2.x reports as PydanticDeprecatedSince20 at import time; that is Ray's code, not ours, so exactly that
# message is ignored for the serving tests (pytest runs with filterwarnings=error).
RAY_PYDANTIC_WARNING = (
    "ignore:Using extra keyword arguments on `Field` is deprecated:pydantic.warnings.PydanticDeprecatedSince20"
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.filterwarnings(RAY_PYDANTIC_WARNING))
