"""align: WAV reading and conversion, TextGrid parsing, backend registry and the MFA backend."""

from __future__ import annotations

import logging
import os
import stat
import struct
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import resample_poly

from stages.align import AlignParams, get_backend
from stages.align.audio import StreamResampler, open_wav, read_wav_info
from stages.align.backends import WordSpec
from stages.align.backends.mfa import MfaBackend
from stages.align.lexicon import pronunciations
from stages.align.textgrid import parse_textgrid, read_textgrid
from talkedit.errors import TalkeditError

FIXTURES = Path(__file__).parent / "fixtures"


def write_wav(path: Path, x: np.ndarray, rate: int, kind: str = "int16") -> Path:
    """x: float in [-1, 1], shape (n,) or (n, channels). Writes PCM or IEEE-float WAV."""
    x = x.reshape(len(x), -1)
    channels = x.shape[1]
    if kind == "float32":
        data, tag, bits = x.astype("<f4").tobytes(), 3, 32
    elif kind == "int24":
        v = np.round(x * (2**23 - 1)).astype("<i4")
        data, tag, bits = v.view(np.uint8).reshape(-1, 4)[:, :3].tobytes(), 1, 24
    else:
        data, tag, bits = np.round(x * 32767).astype("<i2").tobytes(), 1, 16
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def read_all(path: Path) -> np.ndarray:
    with open_wav(path) as (audio, _):
        return audio.read(0, audio.n_samples)


@pytest.fixture
def tone() -> np.ndarray:
    t = np.arange(16000) / 16000
    return 0.5 * np.sin(2 * np.pi * 220 * t) * np.hanning(len(t))


def test_16bit_and_float_wavs_read_the_same(tmp_path: Path, tone: np.ndarray) -> None:
    a = read_all(write_wav(tmp_path / "a.wav", tone, 16000, "int16"))
    b = read_all(write_wav(tmp_path / "b.wav", tone, 16000, "float32"))
    c = read_all(write_wav(tmp_path / "c.wav", tone, 16000, "int24"))
    assert len(a) == len(b) == len(c) == 16000
    assert np.abs(a.astype(int) - b).max() <= 1 and np.abs(a.astype(int) - c).max() <= 1
    assert read_wav_info(tmp_path / "a.wav").is_native  # read in place, no conversion


def test_stereo_is_mixed_down(tmp_path: Path, tone: np.ndarray) -> None:
    stereo = np.stack([tone, np.zeros_like(tone)], axis=1)
    x = read_all(write_wav(tmp_path / "s.wav", stereo, 16000))
    assert np.abs(x.astype(int) - np.round(tone / 2 * 32767)).max() <= 1


@pytest.mark.parametrize("rate", [44100, 22050, 8000])
def test_other_rates_are_resampled_and_logged(tmp_path: Path, tone: np.ndarray, rate: int,
                                              caplog: pytest.LogCaptureFixture) -> None:
    src = resample_poly(tone, rate, 16000)  # the same tone at the other rate
    with caplog.at_level(logging.WARNING, logger="stages.align.audio"):
        x = read_all(write_wav(tmp_path / "r.wav", src, rate))
    assert f"resampled from {rate} Hz to 16000 Hz" in caplog.text
    assert abs(len(x) - 16000) <= 1
    err = np.abs(x[200:-200].astype(float) - tone[200:len(x) - 200] * 32767)
    assert err.max() < 0.01 * 32767  # the tone survives the round trip within 1%


def test_stream_resampler_equals_whole_signal_resampling() -> None:
    x = np.random.default_rng(0).standard_normal(44100 * 2 + 77)
    whole = resample_poly(x, 160, 441)
    for block in (1000, 44100, 100_000):
        parts = StreamResampler(44100).run(x[i:i + block] for i in range(0, len(x), block))
        out = np.concatenate(list(parts))
        assert len(out) == len(whole) and np.abs(out - whole).max() < 1e-9


def test_loud_float_wav_is_scaled_not_clipped(tmp_path: Path, tone: np.ndarray) -> None:
    x = read_all(write_wav(tmp_path / "loud.wav", tone * 4, 16000, "float32"))
    assert np.abs(x).max() == 32767
    assert np.abs(x.astype(float) - tone / np.abs(tone).max() * 32767).max() <= 1


@pytest.mark.parametrize(("content", "problem"), [
    (b"not a wav at all", "not a WAV"),
    (b"RIFF\x04\x00\x00\x00WAVE", "no audio data"),
])
def test_unreadable_wavs_fail_clearly(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(TalkeditError, match=problem):
        read_wav_info(path)


def test_nan_float_wav_fails(tmp_path: Path, tone: np.ndarray) -> None:
    tone[100] = np.nan
    with pytest.raises(TalkeditError, match="NaN"):
        read_all(write_wav(tmp_path / "nan.wav", tone, 22050, "float32"))


def test_compressed_wav_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ulaw.wav"
    with wave.open(str(path), "wb") as w:  # write PCM, then patch the format tag to mu-law
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 100)
    raw = bytearray(path.read_bytes())
    raw[20:22] = struct.pack("<H", 7)
    path.write_bytes(bytes(raw))
    with pytest.raises(TalkeditError, match="ffmpeg"):
        read_wav_info(path)


# --- TextGrid ----------------------------------------------------------------------------


def test_long_textgrid_fixture_parses() -> None:
    tiers = read_textgrid(FIXTURES / "mfa_hello_world.TextGrid")
    assert set(tiers) == {"words", "phones"}
    assert [iv.text for iv in tiers["words"]] == ["", "hello", "world", ""]
    phones = tiers["phones"]
    assert len(phones) == 10 and phones[4].text == "OW1"
    assert (phones[4].start_s, phones[4].end_s) == (0.36, 0.53)
    assert all(a.end_s == b.start_s for a, b in zip(phones, phones[1:], strict=False))


def test_short_textgrid_with_point_tier_and_quotes() -> None:
    text = '''File type = "ooTextFile"
Object class = "TextGrid"

0
1
<exists>
2
"TextTier"
"events"
0
1
1
0.5
"click"
"IntervalTier"
"words"
0
1
2
0
0.4
"say ""hi"""
0.4
1
""
'''
    tiers = parse_textgrid(text)
    assert list(tiers) == ["words"]
    assert tiers["words"][0].text == 'say "hi"' and tiers["words"][1].start_s == 0.4


def test_truncated_textgrid_fails_clearly() -> None:
    text = (FIXTURES / "mfa_hello_world.TextGrid").read_text()
    with pytest.raises(TalkeditError, match="not a readable TextGrid"):
        parse_textgrid(text[: len(text) // 2], "cut.TextGrid")


# --- backends ----------------------------------------------------------------------------


def test_unknown_backend_is_named() -> None:
    with pytest.raises(TalkeditError) as err:
        get_backend(AlignParams.from_dict({"backend": "whisper"}))
    assert "whisper" in err.value.what and "pocketsphinx" in err.value.fix


def test_mfa_missing_from_path_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(TalkeditError) as err:
        get_backend(AlignParams.from_dict({"backend": "mfa"}))
    assert "not on PATH" in err.value.problem and "align.backend: pocketsphinx" in err.value.fix


def fake_mfa(bin_dir: Path, grid: Path | None, exit_code: int = 0) -> Path:
    """An `mfa` that records its arguments and writes ``grid`` as the chunk's TextGrid."""
    script = bin_dir / "mfa"
    copy = f"shutil.copy({str(grid)!r}, out / 'chunk.TextGrid')" if grid else "pass"
    script.write_text(f"""#!{sys.executable}
import json, shutil, sys
from pathlib import Path
args = sys.argv[1:]
Path({str(bin_dir / 'args.json')!r}).write_text(json.dumps(args))
corpus, dictionary, out = Path(args[1]), Path(args[2]), Path(args[4])
Path({str(bin_dir / 'inputs.json')!r}).write_text(json.dumps({{
    "lab": (corpus / "chunk.lab").read_text(), "dict": dictionary.read_text(),
    "wav": (corpus / "chunk.wav").stat().st_size}}))
out.mkdir(parents=True, exist_ok=True)
{copy}
sys.exit({exit_code})
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def hello_world() -> list[WordSpec]:
    return [WordSpec(w, tuple(pronunciations(w))) for w in ("hello", "world")]


def test_mfa_backend_runs_mfa_and_reads_its_textgrid(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    fake_mfa(tmp_path, FIXTURES / "mfa_hello_world.TextGrid")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    backend = get_backend(AlignParams.from_dict({"backend": "mfa"}))
    assert isinstance(backend, MfaBackend) and not backend.parallel
    samples = np.zeros(int(1.2 * 16000), np.int16)
    out = backend.align_chunk(samples, hello_world(), attempt=1)

    args = json.loads((tmp_path / "args.json").read_text())
    assert args[0] == "align" and args[3] == "english_us_arpa"
    assert args[args.index("--beam") + 1] == "40"  # wider on the retry
    inputs = json.loads((tmp_path / "inputs.json").read_text())
    assert inputs["lab"].split() == ["hello", "world"]
    assert "hello\tHH AH0 L OW1" in inputs["dict"].splitlines()
    assert inputs["wav"] == 44 + 2 * len(samples)

    labels = [(p.word_pos, p.phone) for p in out.phones]
    assert labels == [(-1, "sil"), (0, "HH"), (0, "AH"), (0, "L"), (0, "OW"), (1, "W"), (1, "ER"),
                      (1, "L"), (1, "D"), (-1, "sil")]
    assert (out.phones[4].start_s, out.phones[4].end_s) == (0.36, 0.53)
    assert out.phones[-1].end_s == pytest.approx(1.2)
    assert out.variants == [0, 0]
    assert all(np.isnan(p.score) for p in out.phones)  # MFA gives no acoustic scores


def test_mfa_failure_is_retryable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stages.align.backends import AlignmentFailed

    fake_mfa(tmp_path, None, exit_code=1)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    backend = get_backend(AlignParams.from_dict({"backend": "mfa"}))
    with pytest.raises(AlignmentFailed, match="exited 1"):
        backend.align_chunk(np.zeros(16000, np.int16), hello_world())
