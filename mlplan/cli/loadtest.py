"""``mlplan loadtest DIR --rate R --duration S``: an open-loop Poisson load against a deployed plan, measured
percentiles next to the plan's prediction. Thin: the load generator is ``stacks.deploy.loadtest``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer


def register(app: typer.Typer) -> None:
    app.command("loadtest")(loadtest_cmd)


def loadtest_cmd(
    folder: Annotated[Path, typer.Argument(help="plan folder of a deployed plan (`mlplan deploy DIR`)")],
    rate: Annotated[float, typer.Option("--rate", min=0.001, max=100_000, help="requests/s (Poisson)")],
    duration: Annotated[float, typer.Option("--duration", min=0.1, max=86_400, help="seconds of load")] = 30.0,
    concurrency: Annotated[int, typer.Option(min=1, max=4096, help="most requests in flight")] = 64,
    max_requests: Annotated[int, typer.Option(min=1, max=100_000, help="most requests in all")] = 10_000,
    endpoint: Annotated[str | None, typer.Option(help="URL to load (default: the one the deploy recorded)")]
    = None,
    timeout: Annotated[float, typer.Option(min=0.1, max=3600, help="seconds per request")] = 30.0,
    seed: Annotated[int, typer.Option(min=0, help="seed of the arrival times")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Drive a deployed plan with an open-loop Poisson load in its request shape; print measured p50/p90/p99
    next to the plan's prediction at that rate (simulated) and its planned figures."""
    from stacks.deploy import loadtest

    if json_out:
        report = loadtest.run(folder, rate_rps=rate, duration_s=duration, max_requests=max_requests,
                              concurrency=concurrency, endpoint=endpoint, timeout_s=timeout, seed=seed)
        print(json.dumps(report, indent=2))
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    console = Console()
    with Progress(TextColumn("loadtest"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("requests", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        report = loadtest.run(folder, rate_rps=rate, duration_s=duration, max_requests=max_requests,
                              concurrency=concurrency, endpoint=endpoint, timeout_s=timeout, seed=seed,
                              on_progress=progress)
    _print(console, Table, report)


def _print(console: Any, table_cls: Any, report: dict[str, Any]) -> None:
    from stacks.deploy.loadtest import report_rows

    m = report["measured"]
    console.print(f"[bold]{report['plan_id']}[/bold]: {m['completed']} of {m['planned']} requests at "
                  f"{m['rate_rps']:g} req/s (open loop, Poisson) to {report['url']}: {m['errors']} errors, "
                  f"{m['throughput_rps']:.3g} req/s served, at most {m['max_in_flight']} in flight")
    t = table_cls(title_justify="left")
    for col in ("metric", "", "measured", "predicted at this rate", "plan"):
        t.add_column(col)
    for row in report_rows(report):
        t.add_row(*row)
    console.print(t)
    note = report["predicted"].get("simulated_note")
    if note:
        console.print(f"[dim]prediction: {note}[/dim]")
    if m["first_error"]:
        console.print(f"[red]first error:[/red] {m['first_error']}")
