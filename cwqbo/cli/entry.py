"""The console-script entry point: serves `cwqbo [COMMAND ...] --help` from a cache so it needs no Typer import.

Importing Typer alone takes about twice a bare interpreter's start-up, so help (what people run most to
discover the tool) is rendered once by the real app, stored under the user cache dir keyed by the command, the
code it came from and the terminal width, and printed directly after that. `history` is served by
`cli/fast_path.py` when it can be; anything else goes straight to `cwqbo.cli.main.run`.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

# Everything else is imported where it is used: start-up time is what this module is for.
_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")
_WORD_CHARS = _LOWER | frozenset("0123456789-")


def _help_request(argv: list[str]) -> bool:
    """`--help` after nothing but command words (`cwqbo history show --help`): same answer every time."""
    return bool(argv) and argv[-1] == "--help" and all(_is_word(a) for a in argv[:-1])


def _is_word(arg: str) -> bool:
    return bool(arg) and arg[0] in _LOWER and all(ch in _WORD_CHARS for ch in arg)


def _cache_file(argv: list[str]) -> Path | None:
    """Where this exact build's help text for this terminal width lives (None: caching disabled)."""
    if os.environ.get("CWQBO_NO_HELP_CACHE"):
        return None
    import hashlib
    import shutil
    from pathlib import Path

    package = Path(__file__).resolve().parent.parent
    stamp = hashlib.sha256()
    for source in sorted(package.rglob("*.py")):
        st = source.stat()
        stamp.update(f"{source.relative_to(package)}:{st.st_mtime_ns}:{st.st_size};".encode())
    stamp.update(f"{shutil.get_terminal_size().columns}:{os.environ.get('TYPER_USE_RICH', '')}".encode())
    stamp.update(" ".join(argv).encode())
    base = Path(os.environ["XDG_CACHE_HOME"]) if os.environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "cwqbo" / f"help-{stamp.hexdigest()[:20]}.txt"


def _render_help(argv: list[str]) -> str:
    import io
    from contextlib import redirect_stdout

    from cwqbo.cli.main import app

    buffer = io.StringIO()
    with redirect_stdout(buffer):
        try:
            app(argv, prog_name="cwqbo", standalone_mode=True)
        except SystemExit:
            pass
    return buffer.getvalue()


def run() -> None:
    argv = sys.argv[1:]
    if _help_request(argv):
        cache = _cache_file(argv)
        try:
            if cache is not None and cache.is_file():
                sys.stdout.write(cache.read_text(encoding="utf-8"))
                return
        except OSError:
            pass  # an unreadable cache is just a miss
        text = _render_help(argv)
        sys.stdout.write(text)
        if cache is not None and text:
            try:
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(text, encoding="utf-8")
                os.replace(tmp, cache)
            except OSError:
                pass  # a read-only home must not break --help
        return
    if "history" in argv:
        from cwqbo.cli.fast_path import serve

        code = serve(argv)
        if code is not None:
            sys.exit(code)
    from cwqbo.cli.main import run as main_run

    main_run()


if __name__ == "__main__":
    run()
