"""Session files: types from their bytes, exact refusals, names that cannot escape."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.errors import FileRefused, NotFound
from server.files import FileKind, SessionFiles, check_upload, file_path, sniff

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 20
JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 20
WEBP = b"RIFF\x10\0\0\0WEBPVP8 " + b"\0" * 8
PDF = b"%PDF-1.7\n%%EOF\n"
IMAGES = frozenset({"image/png", "image/jpeg", "image/webp"})


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (WEBP, "image/webp"),
        (PDF, "application/pdf"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", None),
        (b"GIF89a", None),
        (b"MZ\x90\0", None),
    ],
)
def test_type_comes_from_the_first_bytes(data: bytes, mime: str | None) -> None:
    assert sniff(data) == mime


def test_refusals_say_exactly_why() -> None:
    with pytest.raises(FileRefused) as caught:
        check_upload(PDF, IMAGES, 1000)
    assert caught.value.code == "unsupported_type"
    assert caught.value.http_status == 415
    assert caught.value.reason == (
        "Only JPG, PNG, WEBP files are accepted; this file is application/pdf."
    )
    with pytest.raises(FileRefused) as caught:
        check_upload(PNG + b"\0" * 100, IMAGES, 50)
    assert (caught.value.code, caught.value.http_status) == ("too_large", 413)
    assert caught.value.reason == "The file is 128 bytes; the limit is 50 bytes."
    with pytest.raises(FileRefused, match="empty"):
        check_upload(b"", IMAGES, 50)
    assert check_upload(JPEG, IMAGES, 50) == "image/jpeg"


def test_files_get_unguessable_names_and_a_limit(tmp_path: Path) -> None:
    files = SessionFiles("abc123", tmp_path / "abc123", max_files=2)
    first = files.add(FileKind.SNAPSHOT, PNG, "image/png", "technician:t")
    second = files.add(FileKind.PUSHED, PDF, "application/pdf", "technician:t")
    assert first.name.startswith("snapshot-1-") and first.name.endswith(".png")
    assert second.name.startswith("pushed-2-") and second.name.endswith(".pdf")
    path, kind, mime = file_path(tmp_path, "abc123", second.name)
    assert path.read_bytes() == PDF
    assert (kind, mime) == (FileKind.PUSHED, "application/pdf")
    with pytest.raises(FileRefused) as caught:
        files.add(FileKind.SNAPSHOT, PNG, "image/png", "technician:t")
    assert caught.value.code == "too_many_files"


@pytest.mark.parametrize(
    ("session", "name"),
    [
        ("abc123", "../abc123/files/x.png"),
        ("abc123", "snapshot-1-0123456789abcdef.png"),  # well formed, not there
        ("..", "snapshot-1-0123456789abcdef.png"),
        ("abc123", "secret.key"),
    ],
)
def test_bad_names_are_not_found(tmp_path: Path, session: str, name: str) -> None:
    with pytest.raises(NotFound):
        file_path(tmp_path, session, name)
