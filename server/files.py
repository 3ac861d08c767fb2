"""A session's files: frozen stills, snapshots, phone photos and pushed documents.

They live beside the recording, in ``<recordings>/<session>/files/``, under names
that cannot be guessed (``<kind>-<n>-<16 hex>.<ext>``), and are served only to the
session's technician (and supervisors) or, for stills and pushed files, to the
session's customer (`server/gallery.py` checks who asks).

What a file is comes from its first bytes, never from its name or the type a
browser claims: `sniff` knows PNG, JPEG, WebP and PDF.
"""

from __future__ import annotations

import enum
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.errors import FileRefused, NotFound

__all__ = ["FileKind", "SessionFile", "SessionFiles", "check_upload", "sniff"]

FILES_DIR = "files"

_EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "application/pdf": "pdf",
}
_NAME = re.compile(
    r"^(still|annotated|snapshot|photo|pushed)-\d{1,6}-[0-9a-f]{16}\.(png|jpg|webp|pdf)$"
)


class FileKind(enum.StrEnum):
    STILL = "still"
    """The frame a freeze showed both sides, as received (PNG)."""
    ANNOTATED = "annotated"
    """A still with the strokes drawn on it when it was unfrozen (PNG)."""
    SNAPSHOT = "snapshot"
    """A decoded frame kept by the technician, lossless (PNG)."""
    PHOTO = "photo"
    """A full-resolution photo the customer's phone took (JPEG or PNG)."""
    PUSHED = "pushed"
    """An image or PDF the technician sent to the customer."""


CUSTOMER_KINDS = frozenset({FileKind.STILL, FileKind.PUSHED})
"""Files the customer may fetch: what was shown or sent to them."""


def sniff(data: bytes) -> str | None:
    """The MIME type the bytes' signature says, or None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def check_upload(data: bytes, allowed: frozenset[str], max_bytes: int) -> str:
    """The upload's MIME type, or `FileRefused` saying exactly why not."""
    if len(data) > max_bytes:
        raise FileRefused(
            f"The file is {len(data)} bytes; the limit is {max_bytes} bytes.",
            code="too_large",
        )
    if not data:
        raise FileRefused("The file is empty.", code="unsupported_type")
    mime = sniff(data)
    if mime not in allowed:
        names = ", ".join(sorted(_EXTENSIONS[m].upper() for m in allowed))
        raise FileRefused(
            f"Only {names} files are accepted; this file is "
            f"{'not one of them' if mime is None else mime}.",
            code="unsupported_type",
        )
    return mime


@dataclass(frozen=True)
class SessionFile:
    name: str
    kind: FileKind
    mime: str
    size: int
    by: str
    created: float
    width: int = 0
    height: int = 0

    def wire(self, session: str) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": str(self.kind),
            "mime": self.mime,
            "size": self.size,
            "by": self.by,
            "created": round(self.created, 3),
            "width": self.width,
            "height": self.height,
            "url": f"/api/sessions/{session}/files/{self.name}",
        }


class SessionFiles:
    """The files of one session; `add` writes (call it off the event loop)."""

    def __init__(self, session: str, directory: Path, max_files: int) -> None:
        self.session = session
        self.directory = directory / FILES_DIR
        self.max_files = max_files
        self.files: list[SessionFile] = []
        self._lock = threading.Lock()
        self._count = 0

    def add(
        self,
        kind: FileKind,
        data: bytes,
        mime: str,
        by: str,
        width: int = 0,
        height: int = 0,
    ) -> SessionFile:
        with self._lock:
            if len(self.files) >= self.max_files:
                raise FileRefused(
                    f"This session already holds {self.max_files} files.",
                    code="too_many_files",
                )
            self._count += 1
            number = self._count
        name = f"{kind}-{number}-{secrets.token_hex(8)}.{_EXTENSIONS[mime]}"
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / name
        temp = path.with_suffix(".part")
        temp.write_bytes(data)
        temp.replace(path)
        item = SessionFile(name, kind, mime, len(data), by, time.time(), width, height)
        with self._lock:
            self.files.append(item)
        return item


def file_path(recordings: Path, session: str, name: str) -> tuple[Path, FileKind, str]:
    """Where a session's file lives, its kind and type; `NotFound` for a bad name."""
    match = _NAME.match(name)
    path = recordings / session / FILES_DIR / name
    if match is None or not session.isalnum() or not path.is_file():
        raise NotFound("There is no such file.")
    ext = match.group(2)
    mime = next(m for m, e in _EXTENSIONS.items() if e == ext)
    return path, FileKind(match.group(1)), mime
