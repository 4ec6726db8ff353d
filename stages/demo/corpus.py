"""The phone-opening corpus: generated clips of other people, for a prior the edit path reads.

A clip of 12-30 s says each of the rarer phones a few times at most, and a phone the clip
says for two frames gets the opening of those frames' context as its own. On the
development pairs, dev-astronaut's UW was learnt from one reduced "to" (+0.52 in its
openness units; the truth about 0), dev-carphone2's from three frames (+0.98), and
dev-lfw4's ER from two (+0.58 against +0.06). How far each phone opens the mouth, relative
to a speaker's own range, is largely shared between speakers. ``stages.phone_prior`` pools
these clips' per-phone targets into the table stages/plan/prior.py reads
(``PHONE_OPENINGS``), and each clip's model is held towards it where its own frames are
few.

``CORPUS_CASES`` share no face, voice, seed or text with the scored and development pairs
(stages/demo/pairs.py) or the demo (tested): no edit scored against truth sees a clip of
the same person or text through the prior. They were written once, before any was built
(session 22). Five faces first picked were refused by the rig and replaced before any clip
was made: lfw:30, 105, 130 and 150 hold no face the landmarker finds, and carphone:120's
mouth is open. Like every pair case, they are made by the project's own generator, whose
speakers share one phone table more closely than real speakers do: the prior likely fits
a new generated face better than it would a real one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2

from stages.demo import DemoParams, generate_demo
from stages.demo.pairs import face_photo
from talkedit.atomic import write_text
from talkedit.errors import TalkeditError


@dataclass(frozen=True)
class CorpusCase:
    """One generated clip of the corpus: a face, a voice at a rate, a seed and a text."""

    name: str
    face: str  # as stages.demo.pairs.face_photo reads it
    voice: str
    rate_wpm: int
    seed: int
    text: str


CORPUS_CASES: tuple[CorpusCase, ...] = (
    CorpusCase("corpus-lfw33", "lfw:33", "en-us+m4", 150, 101,
               "The boy found a shiny toy in the wet sand near the bridge. He showed it to "
               "his mother, who said it was an old coin. They took it to the museum in town, "
               "and the curator measured it with great care."),
    CorpusCase("corpus-lfw44", "lfw:44", "en+m5", 145, 102,
               "Good cooks usually join the market early to choose the best fruit. A bright "
               "orange pumpkin or a bag of juicy plums can change the whole meal. At noon "
               "they push their carts back through the crowded streets."),
    CorpusCase("corpus-carphone20", "carphone:20", "en-us+f1", 160, 103,
               "Three young birds learned to fly above the quiet river this week. Their "
               "father watched from a thick branch while a loud truck rumbled over the "
               "bridge. By Thursday all of them could reach the tall oak tree."),
    CorpusCase("corpus-lfw61", "lfw:61", "en+f5", 140, 104,
               "We should measure the room before we buy a new blue couch. The old one is "
               "too big and the cushions are torn. Maybe a smaller sofa would leave space "
               "for a desk and a lamp by the window."),
    CorpusCase("corpus-lfw47", "lfw:47", "en-us+m6", 155, 105,
               "Every June the village holds a noisy festival with music and food. Children "
               "join a parade, and their parents cook soup in huge pots. When the moon "
               "rises, everyone gathers around the fire to sing old songs."),
    CorpusCase("corpus-carphone5", "carphone:5", "en+m8", 150, 106,
               "Her brother works at a shop that repairs broken bicycles. He enjoys the job "
               "because each wheel has its own puzzle. On rainy afternoons he reads a book "
               "about famous journeys across the ocean."),
    CorpusCase("corpus-lfw66", "lfw:66", "en-us+f5", 145, 107,
               "The teacher asked us to write a short story about a treasure hidden under a "
               "house. My hero was a curious girl with a vision of gold coins. She dug "
               "through the cellar and found a box of rusty tools."),
    CorpusCase("corpus-lfw88", "lfw:88", "en+m6", 160, 108,
               "Fresh bread smells wonderful when it comes out of the oven. My aunt usually "
               "bakes two loaves on Sunday and gives one to the neighbours. They thank her "
               "with a jar of cherry jam or a bunch of flowers."),
    CorpusCase("corpus-lfw95", "lfw:95", "en-us+m5", 150, 109,
               "A quiet engineer checked the engine of the old yellow plane. She found a "
               "loose wire behind the panel and fixed it with a small tool. The pilot thanked "
               "her and climbed back into the narrow cockpit."),
    CorpusCase("corpus-lfw8", "lfw:8", "en+m4", 145, 110,
               "On cold mornings the fishermen pull their boats onto the beach. They sort the "
               "catch into wooden boxes and carry them up the hill. By lunch the market smells "
               "of salt, smoke and lemons."),
    CorpusCase("corpus-lfw25", "lfw:25", "en-us+m8", 155, 111,
               "My grandfather kept a journal of every storm he saw as a young sailor. The "
               "pages describe huge waves, torn sails and long nights without sleep. He "
               "usually ended each entry with a joke about the cook."),
    CorpusCase("corpus-lfw1", "lfw:1", "en+f1", 140, 112,
               "The choir practised a new song in the church hall on Thursday evening. The "
               "youngest singer was nervous, but her voice was clear and strong. Afterwards "
               "everyone shared tea and ginger biscuits."),
    CorpusCase("corpus-lfw27", "lfw:27", "en-us+m5", 165, 113,
               "Our neighbour is building a wooden shed at the bottom of his garden. He "
               "measured each board twice and cut them with a sharp saw. His daughter painted "
               "the door a cheerful shade of purple."),
    CorpusCase("corpus-lfw38", "lfw:38", "en+m8", 150, 114,
               "In the museum there is a huge skeleton of a whale hanging from the ceiling. "
               "Visitors often stop beneath it and stare in silence. A guide explains how the "
               "bones were found on a frozen beach."),
    CorpusCase("corpus-carphone25", "carphone:25", "en-us+f1", 145, 115,
               "The recipe calls for three eggs, a cup of sugar and a little butter. Mix them "
               "slowly, then pour the batter into a round tin. Bake it until the top is golden "
               "and smells of vanilla."),
    CorpusCase("corpus-carphone80", "carphone:80", "en+f5", 160, 116,
               "A young fox appeared at the edge of the field just after sunrise. It sniffed "
               "the cool air, looked around and trotted toward the hedge. Two rabbits froze in "
               "the grass until it was gone."),
)


def find_corpus_case(name: str) -> CorpusCase:
    for case in CORPUS_CASES:
        if case.name == name:
            return case
    raise TalkeditError(f"corpus case {name!r}", "is not a case of stages/demo/corpus.py",
                        "list one of " + ", ".join(c.name for c in CORPUS_CASES)
                        + " under prior_cases: in params.yaml")


def make_corpus_clip(case: CorpusCase, root: Path, size: int = 256) -> Path:
    """Write the case's clip into ``root``/data/raw (as ``talkedit demo`` does), its face
    photo and text under ``root``/corpus/<case>/; the clip's path."""
    inputs = root / "corpus" / case.name
    inputs.mkdir(parents=True, exist_ok=True)
    face = inputs / "face.png"
    if not face.is_file():
        cv2.imwrite(str(face), cv2.cvtColor(face_photo(case.face), cv2.COLOR_RGB2BGR))
    text = inputs / "text.txt"
    write_text(text, case.text + "\n")
    clip = root / "data" / "raw" / f"{case.name}.mp4"
    if not clip.is_file():
        generate_demo(root, DemoParams(name=case.name, text=str(text), face=str(face),
                                       voice=case.voice, rate_wpm=case.rate_wpm,
                                       seed=case.seed, size=size))
    return clip
