"""What is said, when no transcript comes with the video: offline recognition with
pocketsphinx's bundled en-us acoustic and language models; the words are then
force-aligned like any transcript (stages/align)."""

from __future__ import annotations

import numpy as np

from talkedit.errors import TalkeditError

MIN_WORDS = 2  # fewer recognised words than this: no speech to judge


def recognize(samples: np.ndarray, rate: int, source: str) -> str:
    """The words pocketsphinx hears in 16 kHz mono float samples ([-1, 1])."""
    import pocketsphinx

    if rate != 16000:
        raise ValueError(f"recognition needs 16 kHz audio, got {rate} Hz")
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    decoder = pocketsphinx.Decoder(loglevel="FATAL")
    decoder.start_utt()
    decoder.process_raw(pcm.tobytes(), full_utt=True)
    decoder.end_utt()
    words = [seg.word.split("(")[0] for seg in decoder.seg()
             if not seg.word.startswith(("<", "[")) and seg.word.lower() != "sil"]
    if len(words) < MIN_WORDS:
        raise TalkeditError(source, f"has no recognisable speech ({len(words)} word(s) heard), "
                            "so lip sync cannot be judged",
                            "give a video of someone speaking (with --transcript FILE if the "
                            "recogniser misses the words), or one with no audio track for the "
                            "visual checks alone")
    return " ".join(words)
