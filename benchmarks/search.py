"""Viseme index and search speed on a one-hour synthetic corpus (about 40,000 phones).

The corpus is random text over a few thousand CMUdict words (Zipf-distributed, as word
use is), pronounced with the aligner's lexicon, with phone durations drawn around
typical values and a pause every few words. Prints the index build time (table +
suffix array + Parquet write + load) and the search latency for 1-, 5- and 20-word
queries (targets: build <= 5 s; p95 <= 50 ms for 5 words).

    .venv/bin/python benchmarks/search.py [--minutes 60] [--queries 40] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.align.lexicon import _cmudict, pronounce  # noqa: E402
from stages.index import VisemeIndex, build_viseme_table  # noqa: E402
from stages.plan.search import Query, SearchWeights, search, tables  # noqa: E402
from talkedit.artifacts import VISEMES, read_parquet, write_parquet  # noqa: E402
from talkedit.phonemes import SILENCE, VOWELS  # noqa: E402

FPS = 25.0


def vocabulary(rng: np.random.Generator, size: int) -> list[str]:
    words = sorted(w for w in _cmudict() if w.isalpha() and 2 <= len(w) <= 9)
    return list(rng.choice(words, size=size, replace=False))


def corpus(rng: np.random.Generator, vocab: list[str], seconds: float) -> pd.DataFrame:
    """Aligned-phone rows (PHONES columns) of random speech lasting ``seconds``."""
    zipf = 1.0 / np.arange(1, len(vocab) + 1)
    zipf /= zipf.sum()
    prons = {}
    rows = []
    t = 0.5
    rows.append((-1, SILENCE, -1, 0.0, t))
    word = 0
    while t < seconds:
        w = vocab[rng.choice(len(vocab), p=zipf)]
        if w not in prons:
            prons[w] = pronounce(w)
        for phone, stress in prons[w]:
            d = float(rng.lognormal(np.log(0.095 if phone in VOWELS else 0.065), 0.35))
            rows.append((word, phone, stress, t, t + d))
            t += d
        word += 1
        if rng.random() < 0.12:
            d = float(rng.uniform(0.15, 0.6))
            rows.append((-1, SILENCE, -1, t, t + d))
            t += d
    cols = list(zip(*rows, strict=True))
    return pd.DataFrame({"word_index": cols[0], "phone": cols[1], "stress": cols[2],
                         "start_s": cols[3], "end_s": cols[4]})


def query_for(rng: np.random.Generator, vocab: list[str], n_words: int) -> Query:
    # Mostly corpus vocabulary, one word in five never seen in the corpus.
    words = [vocab[rng.integers(len(vocab))] if rng.random() < 0.8 else "xylophonist"
             for _ in range(n_words)]
    phones = [p for w in words for p, _ in pronounce(w)]
    durations = np.array([0.095 if p in VOWELS else 0.065 for p in phones])
    return Query(tuple(phones), durations * rng.uniform(0.8, 1.25, len(phones)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--queries", type=int, default=40, help="queries per size")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    vocab = vocabulary(rng, 5000)
    phones = corpus(rng, vocab, args.minutes * 60)
    print(f"corpus: {args.minutes:g} min, {len(phones)} phone rows "
          f"({int((phones['phone'] != SILENCE).sum())} phones)")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "visemes.parquet"
        t0 = time.perf_counter()
        table = build_viseme_table(phones, None, FPS)
        t1 = time.perf_counter()
        write_parquet(table, VISEMES, path)
        t2 = time.perf_counter()
        index = VisemeIndex(read_parquet(path, VISEMES))
        tables(index)  # the per-clip search tables, built on first use
        t3 = time.perf_counter()
    print(f"index build: {t3 - t0:.2f} s (table + suffix array {t1 - t0:.2f} s, "
          f"parquet write {t2 - t1:.2f} s, load + search tables {t3 - t2:.2f} s)")

    weights = SearchWeights()
    for n_words in (1, 5, 20):
        times, pieces, lengths = [], [], []
        for _ in range(args.queries):
            q = query_for(rng, vocab, n_words)
            t0 = time.perf_counter()
            found = search(index, q, weights)
            times.append((time.perf_counter() - t0) * 1000)
            pieces.append(len(found))
            lengths.append(len(q.phones))
        ms = np.array(times)
        print(f"search {n_words:2d} words ({np.mean(lengths):.0f} phones): p50 "
              f"{np.median(ms):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms, max {ms.max():.1f} ms"
              f" ({np.mean(pieces):.1f} pieces)")


if __name__ == "__main__":
    main()
