"""MixMinus: each receiver hears every other speaker, never its own voice."""

from __future__ import annotations

import asyncio
import contextlib

import av
import numpy as np

from server.media import FrameTrack
from server.media.mixminus import MixMinus
from tests.peers import wait_for
from tests.synthetic import ToneTrack

VOICES = {"customer": 440.0, "technician": 660.0, "expert": 1000.0}


def _levels(frames: list[av.AudioFrame]) -> dict[str, float]:
    samples = np.concatenate([f.to_ndarray().reshape(-1) for f in frames])
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    freqs = np.fft.rfftfreq(len(samples), 1 / 48_000)
    peaks = {
        name: float(spectrum[(freqs > hz - 8) & (freqs < hz + 8)].max())
        for name, hz in VOICES.items()
    }
    loudest = max(peaks.values())
    return {name: peak / loudest for name, peak in peaks.items()}


async def test_each_receiver_hears_the_others_and_not_itself() -> None:
    mix = MixMinus("test")
    outlets = {name: FrameTrack("audio", name) for name in VOICES}
    heard: dict[str, list[av.AudioFrame]] = {name: [] for name in VOICES}
    for name, outlet in outlets.items():
        mix.attach(name, outlet)

    async def speak(name: str) -> None:
        tone = ToneTrack(VOICES[name])  # paced to real time, 20 ms frames
        while True:
            frame = await tone.recv()
            mix.push(name, frame)

    async def listen(name: str) -> None:
        while True:
            frame = await outlets[name].recv()
            assert isinstance(frame, av.AudioFrame)
            heard[name].append(frame)

    tasks = [asyncio.create_task(speak(name)) for name in VOICES]
    tasks += [asyncio.create_task(listen(name)) for name in VOICES]
    try:
        await wait_for(lambda: all(len(f) >= 60 for f in heard.values()), 10, "mix")
        for name, frames in heard.items():
            levels = _levels(frames[10:60])
            assert levels[name] < 0.01, (name, levels)
            assert min(v for n, v in levels.items() if n != name) > 0.5, levels
            assert frames[0].sample_rate == 48_000
            pts = [f.pts or 0 for f in frames[:60]]
            assert pts == list(range(pts[0], pts[0] + 960 * 60, 960)), "gaps"

        # The expert stops hearing (detached): the others still hear them.
        mix.detach("expert", outlets["expert"])
        count = len(heard["expert"])
        heard["customer"].clear()
        await wait_for(lambda: len(heard["customer"]) >= 30, 5, "more mix")
        assert len(heard["expert"]) <= count + 8  # what was already queued
        assert _levels(heard["customer"][5:])["expert"] > 0.5
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await mix.close()
