"""The in-process sandbox `world` of tests/unit/test_sync.py, shared with the other sync test modules."""

from .test_sync import world  # noqa: F401 - a fixture, found by pytest by name
