"""The thin ``mlplan`` CLI. Each command group lives in its own module with a ``register(app)`` function.

Heavy libraries (ray, pulumi, boto3, kubernetes, tritonclient) are imported inside the command that needs them,
so ``mlplan --help`` stays fast. Every :class:`~planner.errors.MlplanError` becomes one line on stderr and the
exit code of its class (see :data:`planner.errors.EXIT_CODES`); nothing prints a traceback unless
``MLPLAN_DEBUG=1``.
"""

from __future__ import annotations

import os
import sys

import typer

from planner.errors import EXIT_CODES, MlplanError

app = typer.Typer(
    name="mlplan",
    help="Where and how should this model run, and what infrastructure does that take?\n\n"
    "Exit codes: " + "; ".join(f"{k} {v}" for k, v in EXIT_CODES.items()),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    from mlplan.cli import calibrate, catalog, deploy, estimate, explain, loadtest, plan, recommend

    for mod in (estimate, recommend, catalog, plan, deploy, explain, loadtest, calibrate):
        mod.register(app)


_register()


def fail(err: MlplanError) -> None:
    """Print one clear line for an mlplan error and exit with its code."""
    print(f"mlplan: error: {err.one_line()}", file=sys.stderr)
    raise SystemExit(err.exit_code)


def main(argv: list[str] | None = None) -> None:
    try:
        app(args=argv, prog_name="mlplan", standalone_mode=True)
    except MlplanError as err:
        if os.environ.get("MLPLAN_DEBUG"):
            raise
        fail(err)
    except KeyboardInterrupt:
        print("mlplan: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except SystemExit:
        raise
    except Exception as err:
        if os.environ.get("MLPLAN_DEBUG"):
            raise
        from pydantic import ValidationError

        if isinstance(err, OSError):  # a path the OS refuses (too long, read-only, not a directory ...)
            from planner.errors import InputError

            fail(InputError(f"{err.strerror or err}: {str(err.filename or '')[:120]}", fix="check the path"))
        if isinstance(err, ValidationError):  # a value from the command line that a spec type refuses
            from planner.errors import SpecError
            from planner.specs import format_validation_error

            fail(SpecError(format_validation_error(err, "argument"), fix="see `mlplan COMMAND --help`"))
        # a bug: still one line, with a way to see more
        text = " ".join(f"{type(err).__name__}: {err}".split())
        print(f"mlplan: internal error: {text[:400]} (rerun with MLPLAN_DEBUG=1 for a traceback)", file=sys.stderr)
        raise SystemExit(1) from None
