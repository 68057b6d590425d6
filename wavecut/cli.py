"""The `wavecut` command: subcommands are registered here and import their heavy modules lazily."""

from __future__ import annotations

import sys

import typer

from gpusim.errors import WavecutError
from wavecut import lut_cmd, plan_cmd, predict_cmd, specs_cmd, staircase_cmd, sweep_cmd, validate_cmd

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Wave-aware GPU latency prediction and channel planning.",
)
app.add_typer(specs_cmd.app, name="specs")
app.add_typer(validate_cmd.app, name="validate")
app.command("staircase")(staircase_cmd.staircase)
app.command("quickstart")(plan_cmd.quickstart)
app.command("predict")(predict_cmd.predict)
app.command("plan")(plan_cmd.plan)
app.command("snap")(plan_cmd.snap)
app.command("apply")(plan_cmd.apply)
app.command("sweep")(sweep_cmd.sweep)
app.command("lut")(lut_cmd.lut)


def main() -> None:
    """Entry point: user mistakes print one line on stderr and exit with code 2, no traceback.

    Typer's own standalone mode reports usage errors (exit 2) and Ctrl-C; only wavecut's own
    errors are caught here, so no click import is needed (typer >= 0.2x vendors its own click).
    """
    try:
        app()
    except WavecutError as exc:
        print(f"wavecut: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except ModuleNotFoundError as exc:  # an optional extra is missing (the core install has no torch)
        print(
            f"wavecut: error: this command needs the Python module '{exc.name}', which is not installed; "
            "commands that trace or measure PyTorch models need the torch extra: pip install 'wavecut[torch]'",
            file=sys.stderr,
        )
        sys.exit(2)


if __name__ == "__main__":
    main()
