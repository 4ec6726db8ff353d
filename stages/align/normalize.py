"""Transcript text -> the sequence of words a speaker actually says.

Real transcripts hold numbers, currency, abbreviations and punctuation; the
aligner needs spoken words. Every spoken word keeps the index of the written
token (whitespace-separated) it came from, so an edit expressed on the written
transcript can be mapped onto aligned words. Edit planning calls
``normalize_text`` on edited text too, so one function serves both.

Conventions: spoken words are lower case; a spelled-out letter is written with
a trailing period ("u." for the letter U), as CMUdict does; hyphenated and
slashed compounds become separate words.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from talkedit.errors import TalkeditError

# break_after: how strongly the text pauses after a word. Chunking prefers
# sentence ends when it has to cut a long recording.
NO_BREAK, CLAUSE_BREAK, SENTENCE_BREAK = 0, 1, 2


@dataclass(frozen=True)
class SpokenWord:
    text: str  # spoken form, lower case ("hundred", "u.")
    written: str  # the written token it came from ("$150")
    written_index: int  # index of that token in text.split()
    break_after: int = NO_BREAK


# --- numbers ---------------------------------------------------------------------------

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (10**3, "thousand"))
_SCALE_WORDS = {"thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}
_ORDINAL_IRREGULAR = {"one": "first", "two": "second", "three": "third", "five": "fifth",
                      "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10])
        n %= 10
        if n:
            words.append(_ONES[n])
    elif n or not words:
        words.append(_ONES[n])
    return words


def cardinal(n: int) -> list[str]:
    """123456 -> one hundred twenty three thousand four hundred fifty six."""
    if n < 0:
        return ["minus", *cardinal(-n)]
    if n < 1000:
        return _below_thousand(n)
    words: list[str] = []
    for value, name in _SCALES:
        if n >= value:
            words += [*cardinal(n // value), name]
            n %= value
    if n:
        words += _below_thousand(n)
    return words


def ordinal(n: int) -> list[str]:
    words = cardinal(n)
    last = words[-1]
    if last in _ORDINAL_IRREGULAR:
        words[-1] = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return words


def year(n: int) -> list[str]:
    """How years are read: 1999 nineteen ninety nine, 2005 two thousand five, 1905 nineteen oh five."""
    if 2000 <= n < 2010 or n % 1000 == 0:
        return cardinal(n)
    hi, lo = divmod(n, 100)
    if lo == 0:
        return [*cardinal(hi), "hundred"]
    return [*cardinal(hi), *(["oh", _ONES[lo]] if lo < 10 else cardinal(lo))]


def _digits(s: str) -> list[str]:
    return [_ONES[int(c)] for c in s]


def _number(s: str) -> list[str]:
    """A plain number token: '2,300', '3.14', '0.5', '1999' (read as a year)."""
    whole, _, frac = s.replace(",", "").partition(".")
    if not frac and "," not in s and len(whole) == 4 and 1100 <= int(whole) < 2100:
        return year(int(whole))
    words = cardinal(int(whole)) if whole else ["zero"]
    return words + (["point", *_digits(frac)] if frac else [])


def _plural(unit: str, amount: str) -> str:
    return unit if amount.replace(",", "") in ("1", "1.0") else unit + "s"


# --- abbreviations ---------------------------------------------------------------------

# Written with their period; matched case-sensitively first, then lower-cased.
_ABBREVIATIONS = {
    "Dr.": "doctor", "Mr.": "mister", "Mrs.": "misses", "Ms.": "miz", "Jr.": "junior",
    "Sr.": "senior", "Prof.": "professor", "Gov.": "governor", "Sen.": "senator",
    "Rep.": "representative", "Gen.": "general", "Capt.": "captain", "Lt.": "lieutenant",
    "Col.": "colonel", "Sgt.": "sergeant", "Mt.": "mount", "Ave.": "avenue", "Blvd.": "boulevard",
    "Rd.": "road", "vs.": "versus", "etc.": "et cetera", "e.g.": "for example", "i.e.": "that is",
    "approx.": "approximately", "dept.": "department", "Inc.": "incorporated",
    "Ltd.": "limited", "Co.": "company", "Corp.": "corporation", "Fig.": "figure",
    "vol.": "volume", "no.": "number", "Jan.": "january", "Feb.": "february", "Mar.": "march",
    "Apr.": "april", "Aug.": "august", "Sep.": "september", "Sept.": "september",
    "Oct.": "october", "Nov.": "november", "Dec.": "december", "min.": "minutes",
    "sec.": "seconds", "hr.": "hour", "hrs.": "hours", "lb.": "pounds", "lbs.": "pounds",
    "oz.": "ounces", "ft.": "feet", "a.m.": "a. m.", "p.m.": "p. m.",
}
_ABBREVIATIONS_LOWER = {k.lower(): v for k, v in _ABBREVIATIONS.items()}
# Abbreviations whose period never ends a sentence.
_NON_FINAL = {k.lower() for k in _ABBREVIATIONS} - {"etc.", "a.m.", "p.m."}
# Units read after a number ("5 km" -> five kilometers, "9am" -> nine a. m.).
_UNITS = {"km": "kilometers", "kg": "kilograms", "cm": "centimeters", "mm": "millimeters",
          "mph": "miles per hour", "kph": "kilometers per hour", "ms": "milliseconds",
          "ft": "feet", "lb": "pounds", "lbs": "pounds", "oz": "ounces", "hz": "hertz",
          "khz": "kilohertz", "mb": "megabytes", "gb": "gigabytes", "tb": "terabytes",
          "am": "a. m.", "pm": "p. m."}
_CURRENCY = {"$": ("dollar", "cent"), "£": ("pound", "penny"), "€": ("euro", "cent"),
             "¥": ("yen", "sen")}
_SYMBOLS = {"&": "and", "+": "plus", "=": "equals", "@": "at", "%": "percent", "#": "number"}
_SCALE_SUFFIX = {"k": "thousand", "m": "million", "mn": "million", "bn": "billion", "b": "billion"}

# --- token patterns ------------------------------------------------------------------------

_NUM = r"\d+(?:,\d{3})*(?:\.\d+)?|\.\d+"
_RE_CURRENCY = re.compile(rf"^([$£€¥])({_NUM})(k|m|mn|bn|b)?$", re.I)
_RE_PERCENT = re.compile(rf"^({_NUM})%$")
_RE_ORDINAL = re.compile(r"^(\d+)(st|nd|rd|th)$", re.I)
_RE_DECADE = re.compile(r"^(?:(\d\d)|')?(\d)0'?s$")
_RE_TIME = re.compile(r"^(\d{1,2}):(\d\d)$")
_RE_NUMBER = re.compile(rf"^[-−]?(?:{_NUM})$")
_RE_RANGE = re.compile(rf"^({_NUM})[-–]({_NUM})$")
_RE_NUM_UNIT = re.compile(rf"^({_NUM})([a-z]+)$", re.I)
_RE_FRACTION = re.compile(r"^(\d+)/(\d+)$")
_RE_DOTTED = re.compile(r"^(?:[A-Za-z]\.){2,}$")  # U.S., U.S.A., p.m.
_RE_DOMAIN = re.compile(r"^[a-z0-9]+(?:\.[a-z0-9]+)+$", re.I)
# Split what is left into letter runs, digit runs and symbols.
_RE_PIECES = re.compile(r"[a-z]+(?:'[a-z]+)*|\d+|[&+=@%#]", re.I)

_QUOTES = str.maketrans({"‘": "'", "’": "'", "ʼ": "'", "`": "'", "“": '"', "”": '"',
                         "−": "-", "‐": "-", "‑": "-"})
_OPENING = "\"'([{«<*_"
_CLOSING = "\"')]}»>*_"
_SENTENCE_END = ".!?…"
_CLAUSE_END = ",;:—–"


def _fraction(num: str, den: str) -> list[str]:
    n, d = int(num), int(den)
    if d == 2:
        name = ["half"] if n == 1 else ["halves"]
    elif d == 4:
        name = ["quarter"] if n == 1 else ["quarters"]
    else:
        name = ordinal(d)
        if n != 1:
            name[-1] += "s"
    return [*cardinal(n), *name]


def _time(h: str, m: str) -> list[str]:
    minutes = int(m)
    if minutes == 0:
        return [*cardinal(int(h)), "o'clock"]
    return [*cardinal(int(h)), *(["oh", _ONES[minutes]] if minutes < 10 else cardinal(minutes))]


def _spell(letters: str) -> list[str]:
    return [c.lower() + "." for c in letters]


def _is_latin_letter(ch: str) -> bool:
    return unicodedata.name(ch, "").startswith("LATIN")


# Latin letters NFKD does not decompose: spelled out as English readers say them
# ("Grüße" -> "grusse", not "gru e").
_LIGATURES = str.maketrans({"ß": "ss", "ẞ": "SS", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE",
                            "ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D",
                            "þ": "th", "Þ": "Th", "ð": "d", "Ð": "D"})


def _strip_accents(s: str) -> str:
    # café -> cafe: CMUdict has the unaccented spelling; the letters stay Latin.
    s = s.translate(_LIGATURES)
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


def check_script(text: str, source: str = "transcript") -> None:
    """Refuse text in a non-Latin script: the acoustic model and lexicon are English."""
    tokens = text.split()
    bad = [(i, tok) for i, tok in enumerate(tokens)
           if any(ch.isalpha() and not _is_latin_letter(ch) for ch in tok)]
    if bad:
        script = next(unicodedata.name(ch, "?").split()[0] for ch in bad[0][1]
                      if ch.isalpha() and not _is_latin_letter(ch))
        shown = ", ".join(f"{tok!r} (word {i + 1})" for i, tok in bad[:3])
        raise TalkeditError(
            source, f"contains {len(bad)} word(s) in a non-Latin script ({script}): {shown}",
            "the aligner handles English only: transliterate those words into Latin letters "
            "or remove them")


class _Expander:
    """Turns one written token (punctuation already stripped) into spoken words."""

    def __init__(self, in_lexicon: Callable[[str], bool]) -> None:
        self.in_lexicon = in_lexicon

    def expand(self, core: str, next_token: str | None,
               after_number: bool) -> tuple[list[str], str | None]:
        """Spoken words for ``core``, and a unit word to say after the next (scale) token."""
        if after_number and core.lower() in _UNITS:
            return _UNITS[core.lower()].split(), None  # "10-20 mph"
        if core in _ABBREVIATIONS or core.lower() in _ABBREVIATIONS_LOWER:
            return (_ABBREVIATIONS.get(core) or _ABBREVIATIONS_LOWER[core.lower()]).split(), None
        if m := _RE_CURRENCY.match(core):
            return self._currency(m.group(1), m.group(2), m.group(3), next_token)
        if m := _RE_PERCENT.match(core):
            return [*_number(m.group(1)), "percent"], None
        if m := _RE_ORDINAL.match(core):
            return ordinal(int(m.group(1))), None
        if m := _RE_DECADE.match(core):
            decade = int(m.group(2)) * 10
            words = (year(int(m.group(1)) * 100 + decade) if m.group(1) else cardinal(decade))
            last = words[-1]
            words[-1] = (last[:-1] + "ies") if last.endswith("y") else last + "s"
            return words, None
        if m := _RE_TIME.match(core):
            return _time(m.group(1), m.group(2)), None
        if _RE_NUMBER.match(core):
            negative = core[0] in "-−"
            return (["minus"] if negative else []) + _number(core.lstrip("-−")), None
        if m := _RE_RANGE.match(core):
            return [*_number(m.group(1)), "to", *_number(m.group(2))], None
        if m := _RE_FRACTION.match(core):
            return _fraction(m.group(1), m.group(2)), None
        if (m := _RE_NUM_UNIT.match(core)) and m.group(2).lower() in _UNITS:
            return [*_number(m.group(1)), *_UNITS[m.group(2).lower()].split()], None
        if _RE_DOTTED.match(core):
            return _spell(core.replace(".", "")), None
        if "://" in core:  # a URL is read without its scheme: "example dot com slash docs"
            words = []
            for k, part in enumerate(core.split("://", 1)[1].strip("/").split("/")):
                words += (["slash"] if k else []) + self._domain(part)
            return words, None
        if _RE_DOMAIN.match(core) and not core.replace(".", "").isdigit():
            return self._domain(core), None
        return self._pieces(core), None

    def _domain(self, core: str) -> list[str]:
        words: list[str] = []
        for k, part in enumerate(core.split(".")):
            words += (["dot"] if k else []) + self._pieces(part)
        return words

    def _currency(self, symbol: str, amount: str, suffix: str | None,
                  next_token: str | None) -> tuple[list[str], str | None]:
        unit, sub = _CURRENCY[symbol]
        scale = _SCALE_SUFFIX.get((suffix or "").lower())
        nxt = (next_token or "").strip(_CLOSING + _SENTENCE_END + _CLAUSE_END).lower()
        if scale or nxt in _SCALE_WORDS:
            # "$5 million" / "$5m" -> five million dollars: the unit follows the scale.
            words = _number(amount) + ([scale] if scale else [])
            units = unit + "s" if unit != "yen" else unit
            return (words + [units], None) if scale else (words, units)
        whole, _, cents = amount.replace(",", "").partition(".")
        words = []
        if whole and int(whole) or not cents:
            units = _plural(unit, whole or "0") if unit != "yen" else unit
            words += [*cardinal(int(whole or 0)), units]
        if cents and int(cents):
            cents = (cents + "0")[:2]
            sub_word = ("pence" if sub == "penny" else sub + "s") if int(cents) != 1 else sub
            words += [*cardinal(int(cents)), sub_word]
        return words, None

    def _pieces(self, core: str) -> list[str]:
        words: list[str] = []
        for piece in _RE_PIECES.findall(core):
            if piece in _SYMBOLS:
                words.append(_SYMBOLS[piece])
            elif piece.isdigit():
                words += _number(piece)
            elif (piece.isupper() and 2 <= len(piece) <= 5 and not self.in_lexicon(piece.lower())):
                words += _spell(piece)  # an acronym nobody can pronounce as a word: FBI-style
            else:
                words.append(piece.lower())
        return words


def _split_punct(token: str) -> tuple[str, str]:
    """('"Hello,"') -> ('Hello', ',"'): the core and its trailing punctuation."""
    start, end = 0, len(token)
    while start < end and token[start] in _OPENING:
        start += 1
    while end > start and (token[end - 1] in _CLOSING or token[end - 1] in _SENTENCE_END
                           or token[end - 1] in _CLAUSE_END):
        end -= 1
    core, trailing = token[start:end], token[end:]
    # Keep the period of an abbreviation or a dotted acronym ("Dr.", "U.S.").
    if trailing.startswith(".") and (
        (core + ".") in _ABBREVIATIONS or (core + ".").lower() in _ABBREVIATIONS_LOWER
        or _RE_DOTTED.match(core + ".")
    ):
        core, trailing = core + ".", trailing[1:]
    return core, trailing


def _break_strength(core: str, trailing: str, next_token: str | None) -> int:
    if any(c in _SENTENCE_END for c in trailing):
        return SENTENCE_BREAK
    if core.lower() in _NON_FINAL:
        return NO_BREAK
    if core.endswith(".") and (next_token is None or next_token[:1].isupper()):
        return SENTENCE_BREAK  # "... in the U.S. Then" / "etc." at the end
    if any(c in _CLAUSE_END for c in trailing):
        return CLAUSE_BREAK
    return NO_BREAK


def normalize_text(text: str, source: str = "transcript",
                   in_lexicon: Callable[[str], bool] | None = None) -> list[SpokenWord]:
    """The spoken words of ``text``, each tied to its written token.

    ``source`` names the text in errors. ``in_lexicon`` decides whether an
    all-caps token is a word ("NASA") or spelled ("FBI" when unknown); it
    defaults to the pronunciation lexicon. Returns an empty list for text
    with nothing to say; raises TalkeditError for non-Latin scripts.
    """
    if in_lexicon is None:
        from stages.align.lexicon import in_cmudict

        in_lexicon = in_cmudict
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    check_script(text, source)
    tokens = text.split()
    expander = _Expander(in_lexicon)
    out: list[SpokenWord] = []
    pending_unit: str | None = None
    for i, token in enumerate(tokens):
        next_token = tokens[i + 1] if i + 1 < len(tokens) else None
        core, trailing = _split_punct(token)
        after_number = i > 0 and any(c.isdigit() for c in tokens[i - 1])
        words, unit_after_next = expander.expand(_strip_accents(core), next_token, after_number)
        if pending_unit:
            words.append(pending_unit)
        pending_unit = unit_after_next
        if not words:
            # A punctuation-only token ("—", "...") still marks a pause after the previous word.
            strength = _break_strength("", token, next_token)
            if out and strength > out[-1].break_after:
                out[-1] = SpokenWord(out[-1].text, out[-1].written, out[-1].written_index, strength)
            continue
        strength = _break_strength(core, trailing, next_token)
        for k, word in enumerate(words):
            out.append(SpokenWord(word, token, i, strength if k == len(words) - 1 else NO_BREAK))
    if pending_unit and out:
        last = out[-1]
        out.append(SpokenWord(pending_unit, last.written, last.written_index, last.break_after))
    return out


def spoken_text(text: str) -> str:
    """The normalized transcript as one string of spoken words (for TTS or display)."""
    return " ".join(w.text for w in normalize_text(text))


def speakable(words: Sequence[SpokenWord]) -> str:
    """Spoken words as text for espeak, one token per word, with the breaks as punctuation."""
    out = []
    for w in words:
        token = w.text.rstrip(".") or w.text  # "u." (the letter) -> "u"
        out.append(token + {SENTENCE_BREAK: ".", CLAUSE_BREAK: ","}.get(w.break_after, ""))
    return " ".join(out)
