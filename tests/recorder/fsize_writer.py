"""Records under a file-size limit, as on a full disk, and reports in JSON.

Usage: ``python fsize_writer.py DIRECTORY LIMIT_BYTES {freed|full}``. The limit
(RLIMIT_FSIZE, with SIGXFSZ ignored so writes fail with EFBIG) is set once the
imports are done. After the failure more media is put; then the limit is lifted
("freed": space came back before close) or tightened ("full": close cannot
write its faststart copy either) and the recording is closed.
"""

from __future__ import annotations

import json
import logging
import resource
import signal
import sys
import time
from pathlib import Path

from recorder import Recording
from tests.recorder.synth_media import (
    HEIGHT,
    WIDTH,
    audio_frames,
    feed,
    h264_packets,
    tone,
)

POLL_LIMIT_S = 10.0
FULL_LIMIT_BYTES = 4096


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def main() -> None:
    directory, limit, mode = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    collect = Collect()
    logger = logging.getLogger("recorder")
    logger.addHandler(collect)
    logger.setLevel(logging.DEBUG)
    packets = h264_packets(6.0)
    frames = audio_frames(tone(0.0, 6.0), 0.0)

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))

    recording = Recording(directory, width=WIDTH, height=HEIGHT, max_queue_items=4096)
    feed(recording, packets, frames)
    deadline = time.monotonic() + POLL_LIMIT_S
    while recording.error is None and time.monotonic() < deadline:
        time.sleep(0.01)  # bounded poll for the writer thread
    error = recording.error

    feed(recording, packets[:60], frames[:100])  # after the failure: ignored
    queued_after_failure = recording.queued

    new_limit = hard if mode == "freed" else FULL_LIMIT_BYTES
    resource.setrlimit(resource.RLIMIT_FSIZE, (new_limit, hard))
    meta = recording.close("disk test")

    report = {
        "error": error,
        "queued_after_failure": queued_after_failure,
        "meta": meta,
        "errors_logged": [
            r.getMessage() for r in collect.records if r.levelno >= logging.ERROR
        ],
        "closed_lines": [
            r.getMessage() for r in collect.records if "recording closed" in r.msg
        ],
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
