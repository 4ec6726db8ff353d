"""Held-out sentences: which, the edit that re-creates one, and its time map to the real one.

A held-out sentence is re-created through the normal edit path as if it had been
typed: its edit spec keeps the transcript as it is, lists the sentence under
``resynthesize`` (stages/plan/spec.py) so the plan says it anew, and excludes its
footage (and a margin) with ``exclude_s``, so neither the viseme search nor the
audio's unit selection can take anything from it.

The re-created sentence is timed by the plan (espeak-ng durations rescaled to the
speaker), not by the real one, so frames are paired through the phones: each
output time maps to real time piecewise linearly, phone by phone where the plan's
phones and the clip's aligned phones of the same word agree, word by word elsewhere.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from stages.audio.evaluate import sentence_words
from stages.render.checkpoint import Stamp
from stages.render.data import ReferencePool
from talkedit.artifacts import (
    PHONES,
    WORDS,
    ClipPaths,
    EditPaths,
    LipModelPaths,
    ModelPaths,
    read_parquet,
)
from talkedit.errors import TalkeditError


@dataclass(frozen=True)
class HeldOut:
    sentence: int  # index among the clip's sentences
    first_word: int  # spoken words [first_word, end_word)
    end_word: int
    first_written: int  # written tokens [first_written, last_written] (the spec's target)
    last_written: int
    start_s: float  # first word's start .. last word's end in the clip
    end_s: float
    text: str
    margin_s: float

    @property
    def exclude(self) -> tuple[float, float]:
        return (self.start_s - self.margin_s, self.end_s + self.margin_s)

    def edit_name(self, clip: str) -> str:
        return f"evaluate-{clip}-{self.sentence}"


def clip_sentences(clip: str, root: Path | None, margin_s: float) -> list[HeldOut]:
    """Every sentence of the clip's transcript with its aligned time span."""
    paths = ClipPaths.of(clip, root)
    words = read_parquet(paths.words, WORDS, stage_hint=f"align@{clip}").sort_values("word_index")
    tokens = paths.transcript.read_text(encoding="utf-8").split()
    out = []
    for k, (a, b) in enumerate(sentence_words(paths.transcript.read_text(encoding="utf-8"))):
        rows = words.iloc[a:b]
        first, last = int(rows["written_index"].min()), int(rows["written_index"].max())
        out.append(HeldOut(k, a, b, first, last, float(rows["start_s"].min()),
                           float(rows["end_s"].max()), " ".join(tokens[first:last + 1]),
                           margin_s))
    return out


def pick_sentences(sentences: list[HeldOut], count: int, seed: int, heldout_from_s: float
                   ) -> list[HeldOut]:
    """``count`` sentences (all that fit, if fewer) chosen at random (seeded), in clip order,
    among those whose footage (and margin) the renderer never trained on: it holds out the
    clip from ``heldout_from_s`` on. The clip needs another sentence for the naive cut."""
    if len(sentences) < 2:
        raise TalkeditError("evaluate", f"the clip has {len(sentences)} sentence(s); holding "
                            "one out needs at least two", "use a clip with more sentences")
    unseen = [h for h in sentences if h.exclude[0] >= heldout_from_s]
    if not unseen:
        raise TalkeditError("evaluate", f"no sentence lies wholly in the renderer's held-out "
                            f"footage (from {heldout_from_s:.2f} s on), so none can be scored "
                            "honestly", "raise train.holdout_share in params.yaml")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(unseen), size=min(count, len(unseen)), replace=False)
    return [unseen[k] for k in sorted(pick.tolist())]


def write_spec(held: HeldOut, clip: str, root: Path) -> str:
    """The edit spec that re-creates ``held`` in place; returns the edit's name."""
    name = held.edit_name(clip)
    paths, clip_paths = EditPaths.of(name, root), ClipPaths.of(clip, root)
    spec = {
        "clip": clip,
        "description": f"evaluate: sentence {held.sentence} said anew from the rest of the clip",
        "text": clip_paths.transcript.read_text(encoding="utf-8"),
        "resynthesize": [[held.first_written, held.last_written]],
        "exclude_s": [[round(held.exclude[0], 4), round(held.exclude[1], 4)]],
    }
    paths.spec.parent.mkdir(parents=True, exist_ok=True)
    paths.spec.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return name


def time_map(held: HeldOut, new_phones: pd.DataFrame, clip_phones: pd.DataFrame
             ) -> tuple[np.ndarray, np.ndarray]:
    """Knots (output s, real s), increasing, over the re-created sentence's spoken words."""
    knots_out: list[float] = []
    knots_real: list[float] = []
    spoken = new_phones[new_phones["word_position"] >= 0]
    for pos, new in spoken.groupby("word_position"):
        new = new.sort_values("out_start_s")
        real = clip_phones[clip_phones["word_index"] == pos].sort_values("start_s")
        if not len(real):
            continue
        knots_out += [float(new["out_start_s"].min()), float(new["out_end_s"].max())]
        knots_real += [float(real["start_s"].min()), float(real["end_s"].max())]
        matcher = difflib.SequenceMatcher(None, list(new["phone"]), list(real["phone"]),
                                          autojunk=False)
        for i, j, size in matcher.get_matching_blocks():
            for q in range(size):
                knots_out += [float(new["out_start_s"].iloc[i + q]),
                              float(new["out_end_s"].iloc[i + q])]
                knots_real += [float(real["start_s"].iloc[j + q]),
                               float(real["end_s"].iloc[j + q])]
    if len(knots_out) < 2:
        raise TalkeditError(f"sentence {held.sentence}", "has no re-created word to compare",
                            "check the plan's new_phones.parquet")
    order = np.argsort(knots_out, kind="stable")
    return (np.asarray(knots_out)[order],
            np.maximum.accumulate(np.asarray(knots_real)[order]))


def clip_phones(clip: str, root: Path | None) -> pd.DataFrame:
    return read_parquet(ClipPaths.of(clip, root).phones, PHONES, stage_hint=f"align@{clip}")


@contextlib.contextmanager
def scratch_project(clip: str, root: Path | None, held: list[HeldOut], fps: float,
                    keep: Path | None = None) -> Iterator[Path]:
    """A project root of its own for the evaluation's edits (removed afterwards unless
    ``keep``): the clip's inputs, fit and generator linked in, nothing of data/ touched.

    The generator's appearance exemplars (references.safetensors) are copied without
    the held-out frames: the renderer would otherwise be shown the very frames it
    is asked to re-create.
    """
    src = ClipPaths.of(clip, root)
    folder = keep or Path(tempfile.mkdtemp(prefix=f"talkedit-evaluate-{clip}-"))
    try:
        dst = ClipPaths.of(clip, folder)
        dst.video.parent.mkdir(parents=True, exist_ok=True)
        for a, b in ((src.video, dst.video), (src.transcript, dst.transcript)):
            _link(a, b)
        _link(src.interim, dst.interim)
        models, mine = ModelPaths.of(clip, root), ModelPaths.of(clip, folder)
        mine.dir.mkdir(parents=True, exist_ok=True)
        _link(models.generator, mine.generator)
        # The clip's audio model (plan.audio_share > 0 reads it): trained on the clip's head
        # only (lipmodel.holdout_share = train.holdout_share), never on a held-out sentence.
        lip = LipModelPaths.of(clip, root)
        if lip.model.is_file():
            _link(lip.dir, LipModelPaths.of(clip, folder).dir)
        if models.references.is_file():
            stamp, meta = Stamp.read(models.references)
            pool = ReferencePool.load(models.references, clip, stamp.config.config_hash,
                                      stamp.face_model_sha)
            t = pool.frames / fps
            seen = np.zeros(len(pool.frames), bool)
            for h in held:
                seen |= (t >= h.exclude[0]) & (t <= h.exclude[1])
            ReferencePool(pool.frames[~seen], pool.expression[~seen],
                          pool.crops[~seen]).save(mine.references, meta)
        yield folder
    finally:
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)


def _link(src: Path, dst: Path) -> None:
    if not src.exists():
        raise TalkeditError(src, "not found", "run the stages before evaluate (dvc repro)")
    if dst.is_symlink() or dst.exists():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(src.resolve(), dst, target_is_directory=src.is_dir())
