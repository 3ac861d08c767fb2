"""AudioMixer: inputs placed on the session clock, summed, clipped, pulled."""

from __future__ import annotations

import av
import numpy as np
import numpy.typing as npt
import pytest

from recorder import AudioMixer
from tests.recorder.synth_media import (
    AUDIO_RATE,
    FRAME_SAMPLES,
    audio_frames,
    band_energy,
    tone,
)

FRAME_S = FRAME_SAMPLES / AUDIO_RATE


def push_tone(
    mixer: AudioMixer,
    name: str,
    start_s: float,
    seconds: float,
    *,
    freq: float = 440.0,
    amplitude: int = 8000,
    jitter_s: float = 0.0,
) -> None:
    """Push a tone frame by frame, each arriving at its own time (+/- jitter).

    The first frame arrives on time: it sets where the input starts.
    """
    samples = tone(start_s, seconds, freq=freq, amplitude=amplitude)
    rng = np.random.default_rng(7)
    for index, frame in enumerate(audio_frames(samples, start_s)):
        jitter = float(rng.uniform(-jitter_s, jitter_s)) if index else 0.0
        mixer.push(name, frame, start_s + index * FRAME_S + jitter)


def pulled(mixer: AudioMixer, until_s: float) -> npt.NDArray[np.int16]:
    """Everything the mixer hands out up to ``until_s``, as one mono array."""
    frames = mixer.pull(until_s + mixer.latency_s)
    return np.concatenate([frame.to_ndarray()[0] for frame in frames])


def seconds(start_s: float, end_s: float) -> slice:
    return slice(round(start_s * AUDIO_RATE), round(end_s * AUDIO_RATE))


def test_pull_gives_consecutive_s16_frames_up_to_the_latency() -> None:
    mixer = AudioMixer(latency_s=0.2)
    frames = mixer.pull(1.0)

    assert len(frames) == 40  # 0.8 s of 20 ms frames
    for index, frame in enumerate(frames):
        assert (frame.format.name, frame.layout.name) == ("s16", "mono")
        assert (frame.sample_rate, frame.samples) == (AUDIO_RATE, FRAME_SAMPLES)
        assert frame.pts == index * FRAME_SAMPLES
        assert frame.time_base == pytest.approx(1 / AUDIO_RATE)
    assert mixer.pulled_s == pytest.approx(0.8)
    assert mixer.pull(1.01) == []  # less than a frame more
    assert [f.pts for f in mixer.pull(1.05)] == [38400, 39360]


def test_nobody_speaking_is_silence() -> None:
    mixer = AudioMixer()
    assert not pulled(mixer, 1.0).any()


def test_two_speakers_at_different_times_are_both_heard() -> None:
    mixer = AudioMixer()
    push_tone(mixer, "agent", 0.0, 2.0, freq=440)
    push_tone(mixer, "caller", 0.5, 1.0, freq=1000)
    mixed = pulled(mixer, 2.0).astype(np.float64)

    alone = mixed[seconds(0.0, 0.5)]
    both = mixed[seconds(0.5, 1.5)]
    after = mixed[seconds(1.5, 2.0)]
    assert band_energy(alone, 440) > 0.95
    assert band_energy(both, 440) == pytest.approx(0.5, abs=0.05)
    assert band_energy(both, 1000) == pytest.approx(0.5, abs=0.05)
    assert band_energy(after, 1000) < 0.01


def test_jittery_arrivals_stay_continuous() -> None:
    mixer = AudioMixer()
    push_tone(mixer, "caller", 0.1, 1.0, jitter_s=0.03)
    mixed = pulled(mixer, 1.2)

    # Placed back to back from the first arrival: exactly the tone, no clicks.
    expected = tone(0.1, 1.0)
    first = round(0.1 * AUDIO_RATE)
    assert np.array_equal(mixed[first : first + len(expected)], expected)


def test_a_gap_in_the_input_becomes_silence() -> None:
    mixer = AudioMixer()
    push_tone(mixer, "caller", 0.0, 0.4)
    push_tone(mixer, "caller", 1.0, 0.4)
    mixed = pulled(mixer, 1.6)

    assert mixed[seconds(0.0, 0.4)].any()
    assert not mixed[seconds(0.4, 1.0)].any()
    assert np.array_equal(mixed[seconds(1.0, 1.4)], tone(1.0, 0.4))


def test_an_arrival_jump_resyncs_the_input() -> None:
    mixer = AudioMixer(resync_s=0.08)
    samples = tone(0.0, 1.0)
    for index, frame in enumerate(audio_frames(samples, 0.0)):
        late = 0.2 if index >= 25 else 0.0  # from 0.5 s on, 200 ms late
        mixer.push("caller", frame, index * FRAME_S + late)
    mixed = pulled(mixer, 1.4)

    assert np.array_equal(mixed[seconds(0.0, 0.5)], samples[seconds(0.0, 0.5)])
    assert not mixed[seconds(0.5, 0.7)].any()
    assert np.array_equal(mixed[seconds(0.7, 1.2)], samples[seconds(0.5, 1.0)])


def test_a_burst_that_arrives_early_loses_the_overlap() -> None:
    # A second of audio arriving all at once is kept only within the tolerance.
    mixer = AudioMixer(resync_s=0.08)
    for frame in audio_frames(tone(0.0, 1.0), 0.0):
        mixer.push("caller", frame, 0.5)
    mixed = pulled(mixer, 2.0)

    assert not mixed[seconds(0.0, 0.5)].any()
    heard = np.flatnonzero(mixed)
    assert heard[-1] / AUDIO_RATE == pytest.approx(0.5 + 0.08 + FRAME_S, abs=FRAME_S)


def test_loud_speakers_together_clip_instead_of_wrapping() -> None:
    mixer = AudioMixer()
    push_tone(mixer, "a", 0.0, 0.5, amplitude=30000)
    push_tone(mixer, "b", 0.0, 0.5, amplitude=30000)
    mixed = pulled(mixer, 0.5)

    assert mixed.max() == 32767
    assert mixed.min() == -32768
    one = tone(0.0, 0.5, amplitude=30000).astype(np.int32)
    assert np.array_equal(mixed, np.clip(2 * one, -32768, 32767))


def test_audio_arriving_after_it_was_pulled_is_dropped() -> None:
    mixer = AudioMixer()
    assert not pulled(mixer, 1.0).any()
    push_tone(mixer, "slow", 0.5, 0.7)
    mixed = pulled(mixer, 1.4)

    assert np.array_equal(mixed[seconds(0.0, 0.2)], tone(1.0, 0.2))
    assert not mixed[seconds(0.2, 0.4)].any()


def test_other_formats_are_resampled_to_s16_mono_48k() -> None:
    mixer = AudioMixer()
    samples = tone(0.0, 1.0, freq=1000, rate=44100)
    for index, frame in enumerate(
        audio_frames(samples, 0.0, frame_samples=441, rate=44100, layout="stereo")
    ):
        mixer.push("browser", frame, index * 0.01)
    mixed = pulled(mixer, 1.0).astype(np.float64)

    assert band_energy(mixed[seconds(0.1, 0.9)], 1000) > 0.95


def test_memory_stays_bounded_by_max_ahead() -> None:
    mixer = AudioMixer(max_ahead_s=2.0)
    push_tone(mixer, "far", 100.0, 0.1)  # a bogus arrival time, far ahead
    assert mixer.buffered_s <= 2.0
    for step in range(1, 101):
        push_tone(mixer, "caller", (step - 1) * 0.1, 0.1)
        mixer.pull(step * 0.1)
        assert mixer.buffered_s <= 2.0

    mixer.remove("caller")
    assert mixer.inputs == ["far"]


def test_same_calls_give_the_same_output() -> None:
    def run() -> list[bytes]:
        mixer = AudioMixer()
        push_tone(mixer, "a", 0.0, 1.0, jitter_s=0.05)
        push_tone(mixer, "b", 0.3, 0.5, freq=700, jitter_s=0.05)
        return [bytes(frame.planes[0]) for frame in mixer.pull(1.5)]

    assert run() == run()


def test_frames_can_be_encoded_as_they_come() -> None:
    mixer = AudioMixer()
    push_tone(mixer, "a", 0.0, 0.5)
    encoder = av.CodecContext.create("aac", "w")
    assert isinstance(encoder, av.AudioCodecContext)
    encoder.sample_rate, encoder.layout, encoder.format = AUDIO_RATE, "mono", "fltp"
    packets = [p for frame in mixer.pull(0.7) for p in encoder.encode(frame)]
    assert packets
