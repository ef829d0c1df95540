"""mlplan's pure core: specs, the hardware catalog, the estimator and the optimizer.

No network, no cloud SDK, cheap to import. The public surface::

    from planner import load_spec, Catalog, recommend
"""

from __future__ import annotations

from planner.catalog import Catalog
from planner.specs import Spec, load_spec

__all__ = ["Catalog", "Spec", "load_spec"]
__version__ = "0.1.0"
