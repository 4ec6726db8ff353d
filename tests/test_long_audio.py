"""The edit's soundtrack and its watermark in bounded memory (issue 15: long inputs).

The audio stage keeps what an edit wrote over the clip (``Soundtrack``) and writes the
track block by block; the composite marks and encodes the soundtrack block by block
(``embed_audio_blocks``). Both give the bytes the whole-array code gave."""

from __future__ import annotations

import dataclasses
import tracemalloc
import wave
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import signal
from scipy.ndimage import uniform_filter1d

from stages.align import AlignParams
from stages.audio.build import EditAudio, EditInputs, build_audio
from stages.audio.config import SYNTHETIC, AudioParams
from stages.audio.dsp import read_clip_audio, write_wav
from stages.audio.soundtrack import Soundtrack
from stages.audio.stage import _kept_exact, load_inputs
from stages.composite import audio_watermark as aw
from stages.composite.compose import PlanAudio
from stages.plan import PlanParams, run_plan
from talkedit.video import VideoWriter
from tests.conftest import REPO, repo_section, write_edit

KEY = b"test-key"


def one_pass_mark(pcm: np.ndarray, rate: int, depth: float = 0.2) -> np.ndarray:
    """The mark as made before blocks: the whole soundtrack's STFT, gains, inverse STFT."""
    n = 2 * round(aw.FRAME_S * rate / 2)
    freqs, times, spec = signal.stft(pcm.astype(np.float64), rate, window="hann", nperseg=n,
                                     noverlap=n // 2, boundary="even")
    band = aw._band_of_bins(freqs)
    chips = aw.audio_chips(KEY)[np.floor(times / aw.BLOCK_S).astype(np.int64) % aw.PERIOD_BLOCKS]
    gain = np.ones(spec.shape)
    gain[band >= 0] = 1.0 + depth * chips[:, band[band >= 0]].T
    _, y = signal.istft(spec * gain, rate, window="hann", nperseg=n, noverlap=n // 2)
    return np.clip(np.round(y[:len(pcm)]), -32768, 32767).astype(np.int16)


@pytest.mark.parametrize("rate", [16000, 22050, 48000])
def test_block_joins_are_exact(rate: int) -> None:
    rng = np.random.default_rng(rate)
    n = 2 * round(aw.FRAME_S * rate / 2)
    for length in (n, n + 1, 3 * n // 2 + 7, rate, 5 * rate + 3):
        pcm = (rng.standard_normal(length) * 4000).astype(np.int16)
        whole = one_pass_mark(pcm, rate)
        assert np.abs(whole.astype(int) - pcm).max() > 100  # the mark changes the samples
        def read(a: int, b: int, x: np.ndarray = pcm) -> np.ndarray:
            return x[a:b]

        for block_frames in (2, 3, 7, 100, aw.BLOCK_FRAMES):
            blocks = list(aw.embed_audio_blocks(read, length, rate, KEY,
                                                block_frames=block_frames))
            if block_frames < 10 and length > 4 * n:
                assert len(blocks) > 2  # joins to check
            assert np.array_equal(np.concatenate(blocks), whole), (length, block_frames)
        assert np.array_equal(aw.embed_audio(pcm, rate, KEY), whole)


def test_audio_shorter_than_a_frame_is_marked_or_kept_not_refused() -> None:
    pcm = np.arange(-100, 100, dtype=np.int16)  # 200 samples: under half a 512-sample frame
    assert np.array_equal(aw.embed_audio(pcm, 16000, KEY), pcm)
    pcm = np.arange(300, dtype=np.int16)  # more than half a frame, less than one
    assert len(aw.embed_audio(pcm, 16000, KEY)) == 300


def _write_long_wav(path: Path, seconds: float, rate: int = 16000) -> np.ndarray:
    rng = np.random.default_rng(3)
    pcm = (rng.standard_normal(int(seconds * rate)) * 3000).astype(np.int16)
    write_wav(path, pcm, rate)
    return pcm


def test_composite_marks_and_muxes_a_long_soundtrack_in_bounded_memory(tmp_path: Path) -> None:
    """The composite's audio path on 10 minutes: the one-pass mark held its STFT, gains and
    inverse (about 1 GB here); blocks hold about 20 MB, whatever the length."""
    rate, seconds = 16000, 600.0
    pcm = _write_long_wav(tmp_path / "audio.wav", seconds, rate)
    track_mb = len(pcm) * 8 / 1e6  # the soundtrack as float64: 77 MB
    audio = PlanAudio.open(tmp_path / "audio.wav")
    assert (audio.length, audio.rate) == (len(pcm), rate)
    del pcm
    tracemalloc.start()
    try:
        with VideoWriter(tmp_path / "out.mp4", 64, 64, 25, preset="ultrafast",
                         audio_rate=rate) as out:
            out.write(np.zeros((64, 64, 3), np.uint8))
            out.write_audio_blocks(aw.embed_audio_blocks(audio.read, audio.length, rate, KEY))
        peak_mb = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    assert peak_mb < 0.5 * track_mb, peak_mb  # 14 MB of 77
    from stages.composite.audio_watermark import read_audio

    heard, heard_rate = read_audio(tmp_path / "out.mp4")
    assert abs(len(heard) - audio.length) < 2048  # AAC priming and padding
    found = aw.detect_audio(heard[:60 * heard_rate], heard_rate, KEY)  # a minute is plenty
    assert found.detected and found.z > found.z_needed + 2.0


def one_pass_z(x: np.ndarray, key: bytes) -> float:
    """The detection statistic of 16 kHz audio as computed before streaming: the whole
    signal's band energies, envelope, spreads and weights at once, each (phase, shift) tried."""
    n = 2 * round(aw.FRAME_S * aw.ANALYSIS_RATE / 2)
    hop = n // 2
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(x.astype(float), (hop, n)), n)[::hop]
    band = aw._band_of_bins(np.fft.rfftfreq(n, 1 / aw.ANALYSIS_RATE))
    power = np.abs(np.fft.rfft(frames * signal.get_window("hann", n), axis=1)) ** 2
    energy = np.stack([power[:, band == b].sum(1) for b in range(band.max() + 1)], axis=1)
    total = energy.sum(1)
    loud = total > total.max() * 10 ** (aw.SILENCE_DB / 10)
    logs = np.log(energy + 1e-9 * total.max())
    logs -= uniform_filter1d(logs, aw.SPECTRAL_SMOOTH_BANDS, axis=1, mode="nearest")
    hops_per_block = round(aw.BLOCK_S / (aw.FRAME_S / 2))
    logs -= uniform_filter1d(logs, aw.ENVELOPE_BLOCKS * hops_per_block, axis=0, mode="nearest")
    weights = np.where(loud[:, None], logs / logs[loud].std(0), 0.0)
    chips = aw.audio_chips(key)
    best = -np.inf
    for phase in range(hops_per_block):
        folded = np.zeros_like(chips)
        block = ((np.arange(len(weights)) + phase) // hops_per_block) % aw.PERIOD_BLOCKS
        np.add.at(folded, block, weights)
        for shift in range(aw.PERIOD_BLOCKS):
            best = max(best, float((np.roll(chips, -shift, axis=0) * folded).sum()
                                   / np.linalg.norm(folded)))
    return best


def _bursts(seconds: float, seed: int) -> np.ndarray:
    """Noise in bursts (0.4-0.9 s on, as long off): loud and silent frames, at 16 kHz."""
    rng = np.random.default_rng(seed)
    n = int(seconds * aw.ANALYSIS_RATE)
    edges = np.cumsum(rng.uniform(0.4, 0.9, int(seconds) + 2) * aw.ANALYSIS_RATE).astype(int)
    on = np.searchsorted(edges, np.arange(n)) % 2 == 0
    return (rng.standard_normal(n) * np.where(on, 3000.0, 1.0)).astype(np.int16)  # 1: a floor


def test_streamed_detection_is_the_whole_signal_statistic() -> None:
    """Detection folds the weights chunk by chunk; the spreads are pooled and the time
    envelope crosses the chunk joins: the same z as the one-pass statistic, at any chunk."""
    pcm = _bursts(21.0, 7)
    cases = {"marked": aw.embed_audio(pcm, aw.ANALYSIS_RATE, KEY), "unmarked": pcm,
             "marked, other key": aw.embed_audio(pcm, aw.ANALYSIS_RATE, b"other")}
    for name, x in cases.items():
        reference = one_pass_z(x, KEY)
        for chunk_frames in (1, 2, 5, 13, 100, aw.ANALYSIS_CHUNK_FRAMES):
            found = aw._detect(aw.array_source(x), KEY, 1e-6, chunk_frames=chunk_frames)
            assert found.z == pytest.approx(reference, abs=1e-9), (name, chunk_frames)
        assert found.detected == (name == "marked"), (name, found.z)
        assert aw.detect_audio(x, aw.ANALYSIS_RATE, KEY).z == pytest.approx(reference, abs=1e-9)


def test_verify_reads_a_long_soundtrack_in_bounded_memory(tmp_path: Path) -> None:
    """verify's audio check decodes the file as it analyses it (twice: the loudest frame
    sets the silence threshold). It held the whole track at 16 kHz as float64 three
    times over (one 31-minute soundtrack: 241 MB each)."""
    seconds = 600.0
    pcm = _bursts(seconds, 11)
    length = len(pcm)
    marked = aw.embed_audio(pcm, aw.ANALYSIS_RATE, KEY)
    write_wav(tmp_path / "long.wav", marked, aw.ANALYSIS_RATE)
    reference = aw.detect_audio(marked, aw.ANALYSIS_RATE, KEY)  # the array in memory
    del pcm, marked
    track_mb = length * 8 / 1e6  # 77 MB as float64
    tracemalloc.start()
    try:
        found = aw.detect_audio_file(tmp_path / "long.wav", KEY)
        peak_mb = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    assert found is not None and found.detected and found.seconds == seconds
    assert found.z == pytest.approx(reference.z, abs=1e-9)
    assert peak_mb < 0.1 * track_mb, peak_mb  # 4.4 MB of 77


def test_write_audio_blocks_encodes_as_one_array(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    pcm = (rng.standard_normal(16000 * 3 + 517) * 3000).astype(np.int16)
    cuts = [0, 1000, 1024, 5000, 5001, 40000, len(pcm)]
    for name, write in (("whole", lambda w: w.write_audio(pcm)),
                        ("blocks", lambda w: w.write_audio_blocks(
                            pcm[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)))):
        with VideoWriter(tmp_path / f"{name}.mp4", 64, 64, 25, preset="ultrafast",
                         audio_rate=16000) as out:
            out.write(np.zeros((64, 64, 3), np.uint8))
            write(out)
    assert (tmp_path / "whole.mp4").read_bytes() == (tmp_path / "blocks.mp4").read_bytes()


def test_soundtrack_reads_and_writes_as_an_array(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    clip_pcm = _write_long_wav(tmp_path / "clip.wav", 2.0)
    clip = read_clip_audio(tmp_path / "clip.wav")
    n = 40000
    track, array = Soundtrack(clip, n), np.zeros(n, np.int16)
    for start, stop, src in ((0, 9000, 100), (9000, 20000, 25000), (30000, 45000, 20000)):
        track.keep(start, stop, src)
        piece = np.zeros(max(0, min(stop, n) - start), np.int16)  # zeros past the clip's end
        have = clip_pcm[src:src + len(piece)]
        piece[:len(have)] = have
        array[start:min(stop, n)] = piece
    for _ in range(40):  # overlapping, adjacent and disjoint writes
        a = int(rng.integers(0, n - 10))
        b = min(n, a + int(rng.integers(1, 3000)))
        values = rng.integers(-30000, 30000, b - a).astype(np.int16)
        track[a:b] = values
        array[a:b] = values
        lo, hi = sorted(int(x) for x in rng.integers(0, n, 2))
        assert np.array_equal(track[lo:hi], array[lo:hi])
    assert np.array_equal(track.array(), array)
    assert np.array_equal(np.concatenate([b for _, b in track.blocks(4096)]), array)
    assert np.array_equal(track.kept(0, n), np.r_[np.ones(20000, bool), np.zeros(10000, bool),
                                                 np.ones(10000, bool)])


@pytest.fixture(scope="module")
def demo_edit(audio_demo_root: Path) -> str:
    spec = yaml.safe_load((REPO / "data" / "edits" / "demo" / "edit.yaml").read_text())
    write_edit(audio_demo_root, "long_audio", spec)
    run_plan("long_audio", audio_demo_root, repo_section(PlanParams), repo_section(AlignParams),
             repo_section(AudioParams))
    return "long_audio"


def test_an_edit_of_a_long_clip_holds_a_few_seconds_of_audio(audio_demo_root: Path,
                                                             demo_edit: str,
                                                             tmp_path: Path) -> None:
    """The demo edit moved to the end of the demo clip looped to 20 minutes: the same new
    audio, sample for sample, built and written in the memory the short edit takes."""
    opts = dataclasses.replace(repo_section(AudioParams), source=SYNTHETIC)
    short = load_inputs(demo_edit, opts, audio_demo_root)
    short = dataclasses.replace(short, source=SYNTHETIC)
    clip_pcm = np.asarray(short.clip.samples)
    sr = short.clip.sample_rate
    copies = int(np.ceil(20 * 60 * sr / len(clip_pcm)))
    write_wav(tmp_path / "long_clip.wav", (clip_pcm for _ in range(copies)), sr)
    shift = (copies - 1) * len(clip_pcm)  # the edit sits in the last copy
    segments = short.segments.copy()
    for col in ("out_start_s", "out_end_s", "source_start_s", "source_end_s"):
        segments[col] = (np.rint(segments[col] * sr) + shift) / sr
    first = segments["out_start_s"].idxmin()
    segments.loc[first, ["out_start_s", "source_start_s"]] = 0.0
    new_phones = short.new_phones.copy()
    for col in ("out_start_s", "out_end_s"):
        new_phones[col] = (np.rint(new_phones[col] * sr) + shift) / sr
    short_segments = short.segments.copy()
    new_short_phones = short.new_phones.copy()
    for frame, cols in ((short_segments, ("out_start_s", "out_end_s", "source_start_s",
                                          "source_end_s")),
                        (new_short_phones, ("out_start_s", "out_end_s"))):
        for col in cols:  # the same sample grid as the long one
            frame[col] = np.rint(frame[col] * sr) / sr
    short = dataclasses.replace(short, segments=short_segments, new_phones=new_short_phones)
    long = dataclasses.replace(short, clip=read_clip_audio(tmp_path / "long_clip.wav"),
                               segments=segments, new_phones=new_phones,
                               n_out=short.n_out + shift)
    track_mb = long.n_out * 2 / 1e6  # as int16: 38 MB

    def build_and_write(inputs: EditInputs, name: str) -> tuple[EditAudio, float]:
        tracemalloc.start()
        try:
            built = build_audio(inputs, opts)
            assert _kept_exact(built, inputs)
            write_wav(tmp_path / name, (b for _, b in built.samples.blocks()), sr)
            return built, tracemalloc.get_traced_memory()[1] / 1e6
        finally:
            tracemalloc.stop()

    reference, short_peak = build_and_write(short, "short_edit.wav")
    built, long_peak = build_and_write(long, "long_edit.wav")
    # flat in the clip's length (the new speech's work: 15 MB); the whole-array code held
    # the 20-minute track as int16, a kept mask, float64 and float64 steps (> 8x track_mb)
    assert long_peak < 1.1 * short_peak + 1.0, (long_peak, short_peak)
    assert long_peak < track_mb, long_peak
    with wave.open(str(tmp_path / "long_edit.wav"), "rb") as w:
        assert w.getnframes() == long.n_out
        w.setpos(shift - sr)
        tail = np.frombuffer(w.readframes(long.n_out), "<i2")
    assert np.array_equal(tail[sr:], reference.samples.array())  # the edit, sample for sample
    assert np.array_equal(tail[:sr], clip_pcm[-sr:])  # the copy before it, untouched
    assert len(built.spans) == len(reference.spans) > 0
