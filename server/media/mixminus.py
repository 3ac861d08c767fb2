"""Mix-minus: every participant hears all the others, never their own voice.

A support session with an added expert has three voices. Relaying each voice's
frames into another participant's outbound track works for two (one voice per
receiver) but not for three: two voices pushed into one track would interleave.
`MixMinus` keeps one `AudioMixer` per receiver whose inputs are every other speaker,
and a task that pulls each mix every `_PULL_EVERY_S` and pushes the mixed frames to
that receiver's `FrameTrack` (aiortc encodes Opus per receiver, as before).

The clock is its own (seconds since creation), not the recording's: the recording's
clock starts later and would jump back under the mixers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import av

from recorder.mixer import AudioMixer
from server.media.tracks import FrameTrack

__all__ = ["MixMinus"]

logger = logging.getLogger(__name__)

_PULL_EVERY_S = 0.02
"""How often each receiver's mix is handed out, seconds (one Opus frame)."""
_LATENCY_S = 0.06
"""Time a speaker's frames are given to arrive before their slot is mixed, seconds."""


class MixMinus:
    """Named speakers and receivers; a receiver's mix leaves out its own name."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._t0 = time.monotonic()
        self._receivers: dict[str, tuple[FrameTrack, AudioMixer]] = {}
        self._task: asyncio.Task[None] | None = None

    def clock(self) -> float:
        return time.monotonic() - self._t0

    def attach(self, name: str, outlet: FrameTrack) -> None:
        """`name` now hears the others through `outlet` (replacing an older one)."""
        mixer = AudioMixer(latency_s=_LATENCY_S, start_s=self.clock())
        self._receivers[name] = (outlet, mixer)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"mix-minus {self.label}"
            )

    def detach(self, name: str, outlet: FrameTrack | None = None) -> None:
        """`name` no longer hears anything (only if `outlet` is still theirs)."""
        held = self._receivers.get(name)
        if held is not None and (outlet is None or held[0] is outlet):
            del self._receivers[name]

    def push(self, name: str, frame: av.AudioFrame) -> None:
        """One frame of `name`'s voice, for everyone else."""
        now = self.clock()
        for receiver, (_, mixer) in self._receivers.items():
            if receiver != name:
                mixer.push(name, frame, now)

    def forget(self, name: str) -> None:
        """`name` stopped speaking: the next frame starts afresh in every mix."""
        for _, mixer in self._receivers.values():
            mixer.remove(name)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(_PULL_EVERY_S)
            now = self.clock()
            for outlet, mixer in list(self._receivers.values()):
                try:
                    frames = mixer.pull(now)
                except ValueError:
                    logger.exception("mix-minus %s: pull failed", self.label)
                    continue
                for frame in frames:
                    outlet.push(frame)

    async def close(self) -> None:
        self._receivers.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
