"""Print every published figure the estimator is checked against, the estimate, and the error.

    .venv/bin/python benchmarks/estimator_vs_published.py [--markdown]

The cases (and their sources) are :data:`planner.estimator.reference.CASES`; tests/test_estimator_published.py
asserts each within its tolerance. Exit status 1 if any case is outside its tolerance.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from planner.estimator.reference import CASES


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = ap.parse_args(argv)
    rows = []
    for c in CASES:
        est = c.estimate()
        err = est / c.published - 1.0
        rows.append((c.name, f"{c.published:,.4g}", f"{est:,.4g}", c.unit, f"{err:+.1%}", f"{c.tolerance:.0%}",
                     "ok" if abs(err) <= c.tolerance + 1e-9 else "OUT", c.source))
    head = ("case", "published", "estimate", "unit", "error", "tol", "", "source")
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        w = [max(len(r[i]) for r in (*rows, head)) for i in range(7)]
        print("  ".join(h.ljust(w[i]) if i == 0 else h.rjust(w[i]) for i, h in enumerate(head[:7])))
        for r in rows:
            print("  ".join(v.ljust(w[i]) if i == 0 else v.rjust(w[i]) for i, v in enumerate(r[:7])))
        errs = sorted(abs(float(r[4].rstrip("%"))) for r in rows)
        print(f"\n{len(rows)} cases; median |error| {errs[len(errs) // 2]:.1f}%, max {errs[-1]:.1f}%")
    return 0 if all(r[6] == "ok" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
