"""Hidden-truth check of the audio stage's sources on a project's clip: each held-out
sentence said by the speaker's own units and by espeak-ng, against the real recording (MCD).

    .venv/bin/python benchmarks/audio_heldout.py demo --sentence 3 --tts-voice en-us+m3
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stages.audio.config import SPEAKER, SYNTHETIC, AudioParams  # noqa: E402
from stages.audio.evaluate import heldout_check, sentence_words  # noqa: E402
from talkedit.artifacts import ClipPaths  # noqa: E402
from talkedit.params import load_section  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("clip")
    ap.add_argument("--sentence", type=int, action="append",
                    help="sentence index (0-based); repeat for several; default all")
    ap.add_argument("--root", type=Path, default=REPO, help="project root (default: this repo)")
    ap.add_argument("--tts-voice", default=None, help="espeak-ng voice of the synthetic source")
    args = ap.parse_args()
    params = load_section(AudioParams, args.root)
    if args.tts_voice:
        params = replace(params, tts_voice=args.tts_voice)
    transcript = ClipPaths.of(args.clip, args.root).transcript.read_text(encoding="utf-8")
    rows = []
    for k in args.sentence or range(len(sentence_words(transcript))):
        rows.append(heldout_check(args.clip, k, params, args.root))
        print(json.dumps(rows[-1]))
    means = {f"{source}_{key}": round(float(np.mean([r[source][key] for r in rows])), 3)
             for source in (SPEAKER, SYNTHETIC) for key in ("mcd_db", "speaker_share")}
    print(json.dumps({"sentences": len(rows), "tts_voice": params.tts_voice, **means}))


if __name__ == "__main__":
    main()
