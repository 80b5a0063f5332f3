"""Waiting for a condition, never for a fixed time: poll until it holds or a deadline passes."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(condition: Callable[[], object], timeout: float = 60, interval: float = 0.02) -> bool:
    """Poll CONDITION until it holds (truthy) or TIMEOUT seconds pass; whether it held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True
