"""The node's secrets: the link-signing secret and the admin API key.

Either comes from Config (TAPLINE_SECRET, TAPLINE_ADMIN_KEY) or is generated once
into the data dir with mode 600 and read back on later starts.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["load_or_create"]


def load_or_create(path: Path, given: str = "") -> tuple[str, bool]:
    """The secret at `path` (or `given`); True when it was created just now."""
    if given:
        return given, False
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        value = ""
    if value:
        return value, False
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value, True
