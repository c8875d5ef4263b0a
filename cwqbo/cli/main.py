"""The `cwqbo` command: global options, command registration, and how errors reach the user.

A `CwqboError` becomes one red line (+ hint) and its exit code; anything unexpected becomes one line
naming the log file that holds the traceback (exit 70). Heavy libraries are imported inside commands
so `cwqbo --help` stays fast.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

# Typer's rich help pulls in rich.markdown and friends (~100 ms); plain click help keeps `cwqbo --help` within
# 3x of a bare interpreter start. Our own output still uses rich. Must be set before typer is imported.
os.environ.setdefault("TYPER_USE_RICH", "0")

import typer  # noqa: E402
from typer.core import TyperGroup  # noqa: E402

from cwqbo import __version__  # noqa: E402
from cwqbo.settings.paths import Paths  # noqa: E402
from cwqbo.errors import CwqboError  # noqa: E402

if TYPE_CHECKING:
    from cwqbo.context import AppContext

EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70
COMMAND_MODULES = ["connect", "permissions", "invoices", "sync", "history", "demo", "prefs", "sandbox"]
LOG_NAME = "cwqbo.log"

# -- logging with secrets redacted ---------------------------------------------------------------------

_REDACTIONS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 <redacted>"),
    (re.compile(r"(?i)([\"']?\b(?:access_token|refresh_token|client_secret|id_token|private_key|password)\b[\"']?"
                r"\s*[:=]\s*[\"']?)[^\"'&\s,;}]+"), r"\1<redacted>"),
    (re.compile(r"(?i)\b(https?://)[^/@\s:]+:[^/@\s]+@"), r"\1<redacted>@"),
]


def redact(text: str) -> str:
    """Remove Authorization credentials, token/secret values and URL passwords from a log line."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call must not break the command
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        return True


class RedactingFormatter(logging.Formatter):
    """Also redacts tracebacks: exception messages can quote a request."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


_handlers: list[logging.Handler] = []


class LazyFileHandler(logging.FileHandler):
    """A log file whose directory is made on the first record: read-only commands on an empty home create nothing.

    A log that cannot be written must never break the command: it is then dropped without a word.
    """

    def __init__(self, filename: Path) -> None:
        super().__init__(filename, encoding="utf-8", delay=True)
        self._broken = False

    def emit(self, record: logging.LogRecord) -> None:
        if self._broken:
            return
        if self.stream is None:
            try:
                Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
                self.stream = self._open()
            except OSError:
                self._broken = True
                return
        super().emit(record)


def setup_logging(log_dir: Path, verbose: int) -> Path:
    """Log to log_dir/cwqbo.log (and stderr with -v); returns the log file path."""
    logger = logging.getLogger("cwqbo")
    for handler in _handlers:
        logger.removeHandler(handler)
        handler.close()
    _handlers.clear()
    log_file = log_dir / LOG_NAME
    logger.setLevel(logging.DEBUG)
    file_handler: logging.Handler = LazyFileHandler(log_file)
    file_handler.setLevel(logging.DEBUG if verbose else logging.INFO)
    file_handler.setFormatter(RedactingFormatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    file_handler.addFilter(RedactingFilter())
    _handlers.append(file_handler)
    if verbose:
        stream = logging.StreamHandler(sys.stderr)
        stream.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
        stream.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
        stream.addFilter(RedactingFilter())
        _handlers.append(stream)
    for handler in _handlers:
        logger.addHandler(handler)
    logger.propagate = False
    return log_file


# -- global state --------------------------------------------------------------------------------------


@dataclass
class CliState:
    config_path: Path | None = None
    profile: str | None = None
    verbose: int = 0
    json_command: str | None = None  # set by commands run with --json, so errors come as an envelope too
    fresh_database: bool = False
    _paths: Paths | None = None
    _context: AppContext | None = field(default=None, repr=False)

    @property
    def paths(self) -> Paths:
        if self._paths is None:
            self._paths = Paths.from_env(config_file=self.config_path)
        return self._paths

    @property
    def log_file(self) -> Path:
        return self.paths.log_dir / LOG_NAME


def cli_state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


def get_app_context(ctx: typer.Context) -> AppContext:
    """The AppContext for this invocation (config loaded once). Commands call this, not AppContext directly."""
    state = cli_state(ctx)
    if state._context is None:
        from cwqbo.context import AppContext

        state._context = AppContext.load(state.paths, state.profile)
        state._context.fresh_database = state.fresh_database
    return state._context


def use_json(ctx: typer.Context, command: str, enabled: bool) -> bool:
    """Commands with --json call this first so a later error is rendered as a JSON envelope."""
    if enabled:
        cli_state(ctx).json_command = command
    return enabled


# -- error handling ------------------------------------------------------------------------------------


def _render_error(state: CliState | None, message: str, hint: str | None, code: int, kind: str) -> None:
    from cwqbo.cli import render

    if state is not None and state.json_command:
        render.emit_json(state.json_command, "error", code, None, [{"code": kind, "message": message, "hint": hint}])
    render.error_line(message, hint)


def _as_cwqbo_error(e: Exception) -> Exception:
    """A SQLite "locked"/"busy" error can surface from any command's writes: it is the store's error, not a bug.
    A network failure no client turned into a RemoteError is still "a service kept failing" (exit 4), with its host."""
    import sqlite3

    httpx = sys.modules.get("httpx")
    if httpx is not None and isinstance(e, httpx.TransportError):
        from cwqbo.errors import RemoteError

        try:
            host = e.request.url.host
        except RuntimeError:  # no request attached
            host = "a remote service"
        return RemoteError(f"{host} is unreachable: {type(e).__name__}: {e}",
                           hint="check the network and the service's status, then run the command again")

    if isinstance(e, sqlite3.OperationalError) and ("locked" in str(e) or "busy" in str(e)):
        from cwqbo.errors import StoreError

        return StoreError(f"the local database is locked by another process ({e})",
                          hint="another cwqbo command may be running; wait for it and try again")
    return e


class CwqboGroup(TyperGroup):
    """Turns exceptions from any command into the documented exit codes."""

    def invoke(self, ctx: Any) -> Any:
        try:
            try:
                return super().invoke(ctx)
            except Exception as e:
                converted = _as_cwqbo_error(e)
                if converted is e:
                    raise
                raise converted from e
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except CwqboError as e:
            state = ctx.obj if isinstance(ctx.obj, CliState) else None
            logging.getLogger("cwqbo").info("%s: %s", type(e).__name__, e)
            _render_error(state, str(e), e.hint, e.exit_code, type(e).__name__)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            from cwqbo.cli import render

            render.err.print("interrupted (Ctrl-C): stopped; the next run picks up where this one left off",
                             highlight=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as e:
            state = ctx.obj if isinstance(ctx.obj, CliState) else CliState()
            log_file = state.log_file
            try:
                if not _handlers:
                    setup_logging(state.paths.log_dir, state.verbose)
                logging.getLogger("cwqbo").error("unexpected error", exc_info=e)
                if not log_file.exists():
                    raise OSError(log_file)
                where = f"traceback written to {log_file}"
            except Exception:  # the log dir itself may be the problem
                where = "no log file could be written"
            _render_error(state, f"unexpected internal error ({type(e).__name__}); {where}",
                          "please report this with the log file", EXIT_INTERNAL, "internal")
            raise typer.Exit(EXIT_INTERNAL) from None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cwqbo {__version__}")
        raise typer.Exit()


app = typer.Typer(cls=CwqboGroup, name="cwqbo", no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Sync Closed ConnectWise PSA invoices into QuickBooks Online, exactly once.")


@app.callback()
def main(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, "--config", envvar="CWQBO_CONFIG", show_envvar=True,
                                          help="Config file (default: the user config dir, or $CWQBO_HOME)."),
    profile: Optional[str] = typer.Option(None, "--profile", "-p", envvar="CWQBO_PROFILE", show_envvar=True,
                                          help="Profile to use (default: default_profile in the config)."),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More detail on stderr (-vv for debug)."),
    fresh_database: bool = typer.Option(False, "--fresh-database", envvar="CWQBO_FRESH_DATABASE", show_envvar=True,
                                        help="Accept an empty (0-byte) database file and start a new history in "
                                             "it (cwqbo refuses one otherwise: exit 5)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Show the version and exit."),
) -> None:
    """Sync Closed ConnectWise PSA invoices into QuickBooks Online, exactly once."""
    state = cli_state(ctx)
    state.config_path, state.profile, state.verbose = config, profile, verbose
    state.fresh_database = fresh_database
    setup_logging(state.paths.log_dir, verbose)


def _register_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(f"cwqbo.cli.{name}").register(app)


_register_commands()


def run() -> None:
    """Console-script entry point."""
    try:
        app(prog_name="cwqbo")
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
