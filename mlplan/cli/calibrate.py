"""``mlplan calibrate DIR``: measure what the serving runtime adds per request on this host and write it into the
catalog overlay. Thin: the measurement is ``stacks.deploy.calibrate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate_cmd)


def calibrate_cmd(
    folder: Annotated[Path, typer.Argument(help="plan folder of a plan served on this machine (target local)")],
    overlay: Annotated[Path | None, typer.Option(help="catalog overlay to write (default: the spec's "
                                                      "catalog_overlay)")] = None,
    max_rate: Annotated[float | None, typer.Option(min=10, max=10_000, help="highest request rate to measure at "
                                                    "(default: what the load client's 64 connections can send, at "
                                                    "most 800/s, or where the server falls behind)")] = None,
    requests: Annotated[int, typer.Option(min=80, max=100_000, help="requests per rate (fewer where they would "
                                                                    "take over 45 s, more where under 8 s)")] = 600,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Serve the plan here (Ray Serve or Triton, or its running local deployment), measure the runtime's
    per-request overhead (median and p99) and CPU time under open-loop loads from 10 req/s up, and write them into
    the catalog overlay as this host's `serving_calibrations` row; plans made afterwards are sized with them.
    Takes two to three minutes."""
    from stacks.deploy.calibrate import calibrate

    say = (lambda s: None) if json_out else (lambda s: print(s, flush=True))
    report = calibrate(folder, overlay=overlay, top_rps=max_rate, requests=requests, say=say)
    if json_out:
        print(json.dumps(report, indent=2))
