"""Fault injection shared by both simulators.

Knobs are plain counters and rates so a test can say exactly what goes wrong and when:
"the next 5 requests get 429", "the next create commits but the connection drops", etc.
They can be set in-process or, for a loopback server, with `POST /_sandbox/faults` (JSON of these fields).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field, fields
from typing import Any


class DropConnection(Exception):
    """Raised by a simulator after committing a change: the client never sees the response.

    In-process (`bridge.in_process_transport`) this surfaces as httpx.ReadError; over loopback the server
    closes the socket and httpx raises RemoteProtocolError.
    """


@dataclass
class Faults:
    throttle_next: int = 0  # the next N API requests get HTTP 429
    error_next: int = 0  # the next N API requests get HTTP 503
    error_rate: float = 0.0  # probability of a 500 on any API request
    timeout_next: int = 0  # the next N API requests hang `timeout_seconds` then drop
    timeout_seconds: float = 0.0
    drop_after_commit_next: int = 0  # the next N creates commit, then the connection drops
    latency_seconds: float = 0.0  # added to every API request (real seconds)
    paths: list[str] = field(default_factory=list)  # limit faults to paths containing any of these
    seed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def applies(self, path: str) -> bool:
        return not self.paths or any(p in path for p in self.paths)

    def take(self, knob: str) -> bool:
        """Consume one unit of a counter knob; True if the fault fires."""
        with self._lock:
            n = getattr(self, knob)
            if n > 0:
                setattr(self, knob, n - 1)
                return True
            return False

    def roll_error(self) -> bool:
        with self._lock:
            return self.error_rate > 0 and self._rng.random() < self.error_rate

    def update(self, values: dict[str, Any]) -> None:
        names = {f.name for f in fields(self) if not f.name.startswith("_")}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown fault knob(s): {', '.join(sorted(unknown))}")
        with self._lock:
            for k, v in values.items():
                setattr(self, k, v)
            if "seed" in values:
                self._rng.seed(self.seed)

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
