"""The ``rtqa`` command line: a thin click group whose commands live in sibling modules.

Commands are imported only when they run, so ``rtqa check`` does not pay for ``rtqa batch``.
Every command reports through exit codes (see :mod:`rtqa.errors`); an unexpected exception is
one line on standard error and exit 5, never a bare traceback; Ctrl-C is exit 130.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import warnings

import click

from rtqa import __version__
from rtqa.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, RtqaError

# command name -> "module:attribute"
COMMANDS: dict[str, str] = {
    "info": "rtqa.cli.info:info",
    "dvh": "rtqa.cli.dvh:dvh",
    "check": "rtqa.cli.check:check",
    "protocols": "rtqa.cli.protocols:protocols",
    "batch": "rtqa.cli.batch:batch",
}

ISSUE_URL = "https://github.com/rtqa/rtqa/issues"


class RtqaGroup(click.Group):
    """A group that loads its commands lazily and turns failures into exit codes."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | {n for n in COMMANDS if _available(n)})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS and _available(name):
            module_name, attr = COMMANDS[name].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context):
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except RtqaError as exc:
            click.echo(f"rtqa: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("rtqa: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except Exception as exc:
            if os.environ.get("RTQA_DEBUG"):
                raise
            where = _innermost_frame(exc)
            click.echo(
                f"rtqa: internal error: {type(exc).__name__}: {exc}{where} "
                f"(rtqa {__version__}; set RTQA_DEBUG=1 for the traceback and report it at "
                f"{ISSUE_URL})",
                err=True,
            )
            ctx.exit(EXIT_INTERNAL)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A library's warning (pydicom reading an invalid value late, on first use) as one line on
    standard error naming the library, not its source file."""
    where = str(filename)
    module = next(
        (name for name, m in list(sys.modules.items()) if getattr(m, "__file__", None) == where),
        "python",
    )
    click.echo(f"rtqa: warning: {module.split('.')[0]}: {message}", err=True)


def _available(name: str) -> bool:
    """True when the command's module exists in this installation."""
    module_name = COMMANDS[name].split(":")[0]
    return importlib.util.find_spec(module_name) is not None


def _innermost_frame(exc: BaseException) -> str:
    tb = exc.__traceback__
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    return f" at {os.path.basename(code.co_filename)}:{tb.tb_lineno} in {code.co_name}"


@click.group(cls=RtqaGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rtqa")
def cli() -> None:
    """Radiotherapy plan QA for SBRT plans exported as DICOM-RT."""


def main() -> None:
    """Console entry point: run the group and exit with its code."""
    try:
        code = cli.main(prog_name="rtqa", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("rtqa: interrupted", err=True)
        code = EXIT_INTERRUPTED
    except KeyboardInterrupt:
        click.echo("rtqa: interrupted", err=True)
        code = EXIT_INTERRUPTED
    except click.exceptions.ClickException as exc:
        exc.show()
        code = exc.exit_code
    sys.exit(code if isinstance(code, int) else 0)
