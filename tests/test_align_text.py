"""align: transcript normalization, pronunciations and params (no audio)."""

from __future__ import annotations

import pytest

from stages.align import AlignParams, normalize_text, pronounce, pronunciations, spoken_text
from stages.align.normalize import CLAUSE_BREAK, NO_BREAK, SENTENCE_BREAK
from talkedit.errors import TalkeditError


def words(text: str) -> list[str]:
    return [w.text for w in normalize_text(text)]


@pytest.mark.parametrize(("text", "spoken"), [
    ("$150", "one hundred fifty dollars"),
    ("$1", "one dollar"),
    ("$3.50", "three dollars fifty cents"),
    ("$0.99", "ninety nine cents"),
    ("$5 million", "five million dollars"),
    ("$2.5bn", "two point five billion dollars"),
    ("£20", "twenty pounds"),
    ("50%", "fifty percent"),
    ("3.5%", "three point five percent"),
    ("1999", "nineteen ninety nine"),
    ("2005", "two thousand five"),
    ("2021", "twenty twenty one"),
    ("1905", "nineteen oh five"),
    ("1900", "nineteen hundred"),
    ("2,300", "two thousand three hundred"),
    ("12345", "twelve thousand three hundred forty five"),
    ("3.14", "three point one four"),
    ("-5", "minus five"),
    ("3rd", "third"),
    ("21st", "twenty first"),
    ("the 1990s", "the nineteen nineties"),
    ("'80s", "eighties"),
    ("10:30", "ten thirty"),
    ("9:05 am", "nine oh five a. m."),
    ("7:00", "seven o'clock"),
    ("3/4", "three quarters"),
    ("10-20 mph", "ten to twenty miles per hour"),
    ("5km", "five kilometers"),
    ("Dr. Smith", "doctor smith"),
    ("Mr. and Mrs. Jones", "mister and misses jones"),
    ("cats vs. dogs, etc.", "cats versus dogs et cetera"),
    ("e.g. this", "for example this"),
    ("the U.S. team", "the u. s. team"),
    ("the FBI and NASA", "the fbi and nasa"),
    ("XQZ", "x. q. z."),
    ("well-known e-mail", "well known e mail"),
    ("rock & roll", "rock and roll"),
    ("and/or", "and or"),
    ("\u201cQuoted,\u201d she said\u2014twice.", "quoted she said twice"),
    ("Don\u2019t stop", "don't stop"),
    ("students' pets", "students pets"),
    ("caf\u00e9 na\u00efve", "cafe naive"),
    ("example.com", "example dot com"),
    ("#1", "number one"),
])
def test_normalize_spells_out_what_is_said(text: str, spoken: str) -> None:
    assert " ".join(words(text)) == spoken


def test_every_spoken_word_keeps_its_written_token() -> None:
    text = "Dr. Lee paid $150 in 1999."
    out = normalize_text(text)
    tokens = text.split()
    assert [(w.text, w.written_index) for w in out] == [
        ("doctor", 0), ("lee", 1), ("paid", 2), ("one", 3), ("hundred", 3), ("fifty", 3),
        ("dollars", 3), ("in", 4), ("nineteen", 5), ("ninety", 5), ("nine", 5)]
    assert all(w.written == tokens[w.written_index] for w in out)
    # A unit said after a scale word belongs to the later token: indices never go back.
    idx = [w.written_index for w in normalize_text("it cost $5 million today")]
    assert idx == sorted(idx)


def test_breaks_mark_sentence_and_clause_ends() -> None:
    out = normalize_text("Hello, Dr. Who. Yes \u2014 no!")
    assert [(w.text, w.break_after) for w in out] == [
        ("hello", CLAUSE_BREAK), ("doctor", NO_BREAK), ("who", SENTENCE_BREAK),
        ("yes", CLAUSE_BREAK), ("no", SENTENCE_BREAK)]


def test_nothing_to_say_gives_no_words() -> None:
    assert normalize_text("") == []
    assert normalize_text("  ... \u2014 !? ") == []
    assert spoken_text("Hi there!") == "hi there"


@pytest.mark.parametrize("text", ["\u3053\u3093\u306b\u3061\u306f \u4e16\u754c",
                                  "Hello \u043f\u0440\u0438\u0432\u0435\u0442 world",
                                  "\u0645\u0631\u062d\u0628\u0627"])
def test_non_latin_script_is_refused_naming_the_word(text: str) -> None:
    with pytest.raises(TalkeditError) as err:
        normalize_text(text, source="my.txt")
    assert err.value.what == "my.txt"
    assert "non-Latin" in err.value.problem
    non_latin = [tok for tok in text.split() if tok not in ("Hello", "world")]
    assert all(repr(tok) in err.value.problem for tok in non_latin)
    assert "transliterate" in err.value.fix


def test_pronounce_prefers_cmudict_with_stress() -> None:
    assert pronounce("hello") == [("HH", -1), ("AH", 0), ("L", -1), ("OW", 1)]
    prons = pronunciations("and")
    assert len(prons) >= 2 and {p.source for p in prons} == {"cmudict"}
    assert pronounce("u.") == [("Y", -1), ("UW", 1)]  # the letter U


def test_pronounce_falls_back_to_espeak_for_unknown_words() -> None:
    from talkedit.espeak import phonemize
    from talkedit.phonemes import ARPABET

    (pron,) = pronunciations("kubernetesque")
    assert pron.source == "espeak"
    assert pron.pairs() == phonemize("kubernetesque")
    assert len(pron.phones) >= 8 and all(p in ARPABET for p, _ in pron.pairs())
    assert any(s == 1 for _, s in pron.pairs())  # a primary stress on some vowel


def test_user_lexicon_wins_and_is_validated() -> None:
    (pron,) = pronunciations("hello", user={"hello": "HH EH1 L OW0"})
    assert pron.source == "user" and pron.pairs()[1] == ("EH", 1)
    with pytest.raises(TalkeditError) as err:
        pronunciations("hello", user={"hello": "HH XX L OW"})
    assert "ARPAbet" in err.value.problem


def test_a_word_nobody_can_pronounce_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import stages.align.lexicon as lexicon

    lexicon._g2p.cache_clear()
    monkeypatch.setattr(lexicon, "phonemize", lambda word, voice: [])
    with pytest.raises(TalkeditError) as err:
        pronunciations("zzqxv")
    assert "zzqxv" in err.value.what and "align.lexicon" in err.value.fix
    lexicon._g2p.cache_clear()


def test_params_are_checked() -> None:
    p = AlignParams.from_dict({"lexicon": {"Foo": "F UW1"}, "beams": [1e-60]})
    assert p.user_lexicon == {"foo": "F UW1"} and p.beams == (1e-60,)
    hash(p)  # workers cache their backend by params
    with pytest.raises(TalkeditError, match="align.beam_width"):
        AlignParams.from_dict({"beam_width": 3})
    with pytest.raises(TalkeditError, match="on_mismatch"):
        AlignParams.from_dict({"on_mismatch": "ignore"})
    with pytest.raises(TalkeditError, match="beams"):
        AlignParams.from_dict({"beams": [2.0]})
