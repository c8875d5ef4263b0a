"""Named points where the crash tests kill the process (SIGKILL), to prove exactly-once recovery.

`CWQBO_CRASH_AT=name` kills at the first hit of `name`; `name:N` at the N-th hit. Unset in normal
use, where a crashpoint costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

_hits: Counter[str] = Counter()


def crashpoint(name: str) -> None:
    spec = os.environ.get("CWQBO_CRASH_AT")
    if not spec:
        return
    target, _, nth = spec.partition(":")
    if target != name:
        return
    _hits[name] += 1
    if _hits[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
