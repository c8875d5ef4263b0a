"""Tables as plain text lines, laid out as `render.table` lays them out through rich, without importing rich.

`history` prints with these so it starts in a few tens of milliseconds (`cli/fast_path.py`); every other command
prints rich tables built with the same column widths (`column_widths`). A test holds the two layouts equal.
"""

from __future__ import annotations

import os
import re
import sys
import unicodedata
from collections.abc import Iterable, Sequence

# Columns whose text may wrap onto several lines; every other column (numbers, dates, amounts, types, ids) is
# sized to its widest cell and never cut. Long free text (reasons, errors) goes below a table, not into it.
WRAPPING_COLUMNS = frozenset({"company", "detail", "details", "description", "reason", "error", "what to change",
                              "value", "problem", "by", "name", "message", "title", "service"})
RIGHT_ALIGNED = frozenset({"amount", "total", "qbo total", "cw total", "lines", "cw id"})
GAP = "  "
_WORD = re.compile(r"\S+")


def cell_len(text: str) -> int:
    """Terminal cells `text` takes: wide (East Asian) characters take two, combining marks none."""
    if text.isascii():
        return len(text)
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
               for ch in text)


def column_widths(columns: Sequence[str], cells: Sequence[Sequence[str]], avail: int) -> list[int]:
    """Each column's width in `avail` cells (gaps excluded): fixed columns keep their widest cell (never
    `2026-09-…`), only the WRAPPING_COLUMNS wrap (folding long words instead of cutting them)."""
    natural = [max([cell_len(column)] + [cell_len(line) for row in cells if i < len(row)
                                         for line in (row[i].splitlines() or [""])])
               for i, column in enumerate(columns)]
    flex = [i for i, c in enumerate(columns) if c.lower() in WRAPPING_COLUMNS]
    width = list(natural)
    for i in flex:
        width[i] = min(natural[i], 16)
    # An outsized fixed value (a 30-character invoice number) wraps onto a second line, whole, before dates and
    # amounts would have to: shrink the widest fixed column while the table does not fit, never below 13.
    while sum(width) > avail:
        fixed = [i for i in range(len(columns)) if i not in flex and width[i] > 13]
        if not fixed:
            break
        width[max(fixed, key=lambda i: width[i])] -= 1
    while sum(width) > avail:  # then the wrapping columns, down to 8
        squeezable = [i for i in flex if width[i] > 8]
        if not squeezable:
            break
        width[max(squeezable, key=lambda i: width[i])] -= 1
    # Share what is left among the wrapping columns, up to what each needs.
    spare = avail - sum(width)
    while spare > 0:
        hungry = [i for i in flex if width[i] < natural[i]]
        if not hungry:
            break
        width[min(hungry, key=lambda i: width[i])] += 1
        spare -= 1
    return width


def right_aligned(column: str) -> bool:
    return column.lower() in RIGHT_ALIGNED


def wrap(text: str, width: int) -> list[str]:
    """`text` in lines of at most `width` cells: greedy by words, a word longer than a line folded."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in _WORD.findall(paragraph):
            joined = f"{line} {word}" if line else word
            if cell_len(joined) <= width:
                line = joined
                continue
            if line:
                lines.append(line)
            while cell_len(word) > width:
                cut = _fit(word, width)
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        lines.append(line)
    return lines or [""]


def _fit(word: str, width: int) -> int:
    """How many leading characters of `word` fit in `width` cells (at least one)."""
    used = 0
    for n, ch in enumerate(word):
        used += cell_len(ch)
        if used > width:
            return max(n, 1)
    return len(word)


def lines(columns: Sequence[str], rows: Iterable[Sequence[str]], title: str | None = None, *,
          width: int | None = None, styled: bool | None = None) -> list[str]:
    """The table's lines: title, bold header, a rule, then each row (cells wrapped within their column)."""
    cells = [list(row) for row in rows]
    total = terminal_width() if width is None else width
    styled = stdout_styled() if styled is None else styled
    widths = column_widths(columns, cells, total - len(GAP) * (len(columns) - 1))
    right = [right_aligned(c) for c in columns]
    out: list[str] = []
    if title:
        out.append(f"\x1b[3m{title}\x1b[0m" if styled else title)
    header = _row(list(columns), widths, right)
    out.extend(f"\x1b[1m{h}\x1b[0m" if styled else h for h in header)
    out.append("─" * (sum(widths) + len(GAP) * (len(columns) - 1)))
    for row in cells:
        out.extend(_row(row, widths, right))
    return out


def _row(cells: Sequence[str], widths: Sequence[int], right: Sequence[bool]) -> list[str]:
    wrapped = [wrap(cells[i] if i < len(cells) else "", w) for i, w in enumerate(widths)]
    height = max(len(w) for w in wrapped)
    out = []
    for n in range(height):
        parts = []
        for i, w in enumerate(widths):
            text = wrapped[i][n] if n < len(wrapped[i]) else ""
            pad = " " * max(0, w - cell_len(text))
            parts.append(pad + text if right[i] else text + pad)
        out.append(GAP.join(parts))
    return out


def terminal_width() -> int:
    """The width rich's Console would use: the first terminal among stdin/stdout/stderr, `COLUMNS` over it, 80."""
    if _dumb_terminal():
        return 80
    width = 0
    for fd in (0, 1, 2):
        try:
            width = os.get_terminal_size(fd).columns
            break
        except (AttributeError, ValueError, OSError):
            continue
    columns = os.environ.get("COLUMNS")
    if columns is not None and columns.isdigit():
        width = int(columns)
    return width or 80


def stdout_styled() -> bool:
    """Bold headers only on a terminal that can show them (as rich decides)."""
    return _is_terminal() and not _dumb_terminal()


def _is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def _dumb_terminal() -> bool:
    return _is_terminal() and os.environ.get("TERM", "").lower() in ("dumb", "unknown")


def note_lines(title: str, notes: Sequence[tuple[str, str]], width: int) -> list[str]:
    """Long per-row text (failure reasons) as `key  text` lines under a table, wrapped with a hanging indent;
    nothing at all when there are no notes."""
    if not notes:
        return []
    import textwrap

    key_width = min(max(cell_len(k) for k, _ in notes), 24)
    out = [title]
    for key, text in notes:
        head = f"  {key}{' ' * max(0, key_width - cell_len(key))}  "
        out.extend(textwrap.wrap(text, width=max(40, width), initial_indent=head,
                                 subsequent_indent=" " * (key_width + 4), break_long_words=True,
                                 break_on_hyphens=False) or [head.rstrip()])
    return out
