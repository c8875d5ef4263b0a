"""Text that reaches QuickBooks or the operator: names made QBO-safe, free text stripped of control characters,
truncation that never splits a character, and messages kept on one line.

Pure: ConnectWise text can hold anything (':' hierarchy separators, NUL, escapes, emoji), and QuickBooks or a
terminal would misread it.
"""

from __future__ import annotations

import re
import unicodedata

ELLIPSIS = "…"


def one_line(text: str) -> str:
    """`text` with control characters (newlines, tabs, escapes) shown as escapes, so a message stays one line."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii")
                   for ch in text)


def truncate(text: str, limit: int) -> str:
    """Cut to at most `limit` characters, ending in '…', without leaving a dangling combining mark or surrogate."""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    cut = limit - len(ELLIPSIS)
    # back off so the kept text does not end inside a grapheme: never keep half a surrogate pair, never
    # separate a base character from the combining marks / joiners / variation selectors that follow it
    while cut > 0 and (_joins_previous(text[cut]) or "\ud800" <= text[cut - 1] <= "\udbff" or text[cut - 1] == "\u200d"):
        cut -= 1
    return text[:cut].rstrip() + ELLIPSIS


def _joins_previous(ch: str) -> bool:
    """Whether `ch` belongs to the character before it (combining mark, low surrogate, joiner, selector, skin tone)."""
    return (unicodedata.combining(ch) != 0 or "\udc00" <= ch <= "\udfff" or ch == "\u200d"
            or "\ufe00" <= ch <= "\ufe0f" or unicodedata.category(ch) in ("Mn", "Me", "Mc")
            or "\U0001f3fb" <= ch <= "\U0001f3ff")


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch) == "Cc"


def clean_name(name: str) -> str:
    """QBO names: ':' is the hierarchy separator, so it becomes ' - '; whitespace collapsed and trimmed.

    Control characters (NUL, escapes, DEL, C1 controls) are whitespace here like tabs and newlines: each becomes a
    space before the run of spaces collapses, so 'Acme\x00Dental' is 'Acme Dental' and nothing invisible reaches
    QuickBooks.
    """
    if not name.isprintable():
        name = "".join(" " if _is_control(ch) else ch for ch in name)
    return re.sub(r"\s+", " ", name.replace(":", " - ")).strip()


def clean_text(text: str) -> str:
    """Free text QBO shows the customer (descriptions, memo, notes): line breaks kept (CR LF / CR → LF), tabs
    kept, every other control character (NUL, escapes, DEL, C1) stripped."""
    if text.isprintable():
        return text
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(ch for ch in text if ch in "\n\t" or not _is_control(ch))
