"""Audio-driven lip sync ("Synthesizing Obama", Suwajanakorn et al. 2017) for a clip's person.

- ``lipmodel@<clip>`` (train.py): a per-person sequence model from audio features
  (features.py: MFCCs with deltas) to the clip's fitted expression coefficients,
  trained on the clip's own frames except a held-out tail; an LSTM with a short time
  delay and a temporal convolution net are both trained and the better on a
  validation stretch is kept (model.py). Writes data/models/<clip>/lipsync/.
- ``lipplan@<job>`` (job.py): a lip-sync job (data/lipsync/<job>/job.yaml) names a
  clip and new speech; the model predicts the expression sequence from it, the
  clip's background frames are re-timed to its length, and the result is written as
  the edit path's plan and soundtrack (PLAN, audio.wav under data/plans/<job>/), so
  ``liprender`` and ``lipcomposite`` run the renderer and compositor unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from talkedit.params import Section, bad_param


@dataclass(frozen=True)
class LipModelParams(Section):
    """The ``lipmodel:`` section of params.yaml: the per-clip audio-to-expression model."""

    SECTION = "lipmodel"

    seed: int = 0
    holdout_share: float = 0.35  # the clip's last share is never trained on (= train.holdout_share)
    validation_share: float = 0.15  # the end of the rest picks the network and its step
    components: int = 8  # leading expression components predicted (97% of the demo's variance;
    # the rest stay at the mean)
    n_mfcc: int = 13  # MFCCs per 10 ms (c0 = level re. the speech level), with their deltas
    fmax_hz: float = 4000.0  # mel bank top: 8 kHz telephone audio keeps every band
    context: int = 5  # 10 ms steps either side of a frame stacked into its features
    # > 0: the MFCCs of the spectrum's envelope, its log cepstrum kept below this quefrency
    # (features.envelope: pitch harmonics removed, a higher voice reads as a lower one). 0: off.
    lifter_ms: float = 0.0
    # > 0: each MFCC normalised by the mean and spread of the speech within this many seconds
    # around it (sliding CMVN: training audio and a short new recording alike); 0: over the
    # whole recording.
    cmvn_window_s: float = 0.0
    # + speaker-independent phonetic input: per frame, the viseme class of the phone a
    # pretrained recogniser (pocketsphinx, many voices, no transcript; phones.py) hears
    # there, a one-hot smoothed by a Gaussian of phone_smooth_ms. false: MFCCs only.
    phones: bool = False
    phone_smooth_ms: float = 30.0
    # > 0: a linear map (ridge) from the recognised classes around each frame to the
    # expression is fitted on the training frames too, and the model's output is this share
    # of the map's and the rest the network's (phones.py fit_map). 0: the network alone.
    phone_map_share: float = 0.0
    hidden: int = 64  # width of both networks
    dropout: float = 0.2  # on the input features
    lstm_delay: int = 5  # frames of future audio the LSTM hears (200 ms at 25 fps, as in the paper)
    tcn_kernel: int = 3
    tcn_dilations: tuple[int, ...] = (1, 2, 4)
    # Speed perturbation: the training audio also stretched to these durations (1.15: 15%
    # slower, pitch and formants 15% lower; each copy warped back to the voice by VTLN as new
    # audio is), expressions re-timed to it, so the model hears other rates and voices.
    speed_factors: tuple[float, ...] = (0.85, 1.0, 1.15)
    # Other voices: the training frames' words also said by these espeak-ng voices at these
    # rates (respeak.py), the fitted expressions re-timed to each reading through the phones.
    voices: tuple[str, ...] = ()
    # VTLN augmentation: the clip's own training audio also analysed with its mel filter
    # bank's frequencies scaled by each of these (a vocal tract that much shorter or longer,
    # as a residual of the warp new audio gets), the expressions unchanged. Empty: none.
    train_warps: tuple[float, ...] = ()
    voice_rates_wpm: tuple[int, ...] = (150,)
    # The loss: the expression error weighted by the variance each component explains (the
    # shape error), plus this weight times the error along the direction in which the
    # mouth opens (model.py openings), in units of the training opening's spread.
    opening_weight: float = 10.0
    # + this weight times the same loss on the error's change from frame to frame (the
    # motion's timing: a late or early opening errs in velocity). 0: off.
    velocity_weight: float = 0.0
    ensemble: int = 3  # networks of each kind trained (seeds seed, seed + 1, ...), outputs averaged
    # Once validation has picked the kind and each member's step count, train the kept kind
    # again from the same start for that many steps on the training and validation frames
    # (off: cross-validation +0.023 own / +0.016 other voice, all of it from one block; the
    # held-out sentences then 0.007-0.026 lower; benchmarks/results/lipsync.md, session 7).
    refit: bool = False
    # Start each network from a trunk pretrained on other speakers (the generated corpus of
    # stages/demo/corpus.py; stages/lipsync/trunk.py, trunk.safetensors), its output layer
    # fitted afresh (least squares) to the clip's own expression basis. false: from random
    # weights.
    pretrained: bool = True
    # Optimiser steps per network. 1100: every demo network's best step of 1500 was at or
    # before 1050, so the same model in 27% less training (cross-validation: own audio r
    # -0.001, other voice -0.002; benchmarks/results/lipsync.md, session 9).
    steps: int = 1100
    # Processes training networks at once (each on one thread: the same bytes for any
    # number; 2 uses both cores of a 2-core machine).
    workers: int = 1
    batch: int = 16  # windows per step...
    window: int = 64  # ...of this many frames
    lr: float = 2.0e-3
    weight_decay: float = 1.0e-3
    eval_every: int = 50  # steps between validation scores (a row of losses.tsv)
    min_train_frames: int = 150  # fewer frames to train on: error
    # Less speech than this to train on: a warning. The model is short of footage (held-out
    # expression error -0.05..-0.11 per doubling, still falling at 84.5 s); with 17 s its
    # lips trailed the viseme search's on three clips, with 84.5 s they drew level
    # (benchmarks/results/lipsync.md, session 19).
    advise_train_s: float = 80.0

    def check(self, where: str) -> None:
        for name in ("holdout_share", "validation_share"):
            if not 0 < getattr(self, name) < 1:
                raise bad_param(where, name, f"is {getattr(self, name)}, not a share in (0, 1)")
        if not 1 <= self.components <= 64:
            raise bad_param(where, "components", f"is {self.components}, not in 1..64", "use 8")
        if not 2 <= self.n_mfcc <= 26:
            raise bad_param(where, "n_mfcc", f"is {self.n_mfcc}, not in 2..26", "use 13")
        if not 1000 <= self.fmax_hz <= 8000:
            raise bad_param(where, "fmax_hz", f"is {self.fmax_hz}, not in 1000..8000 Hz", "use 4000")
        if not self.speed_factors or not all(0.5 <= f <= 2.0 for f in self.speed_factors):
            raise bad_param(where, "speed_factors", "must be a non-empty list of factors in "
                            "[0.5, 2] (1.0 = the clip as it is)")
        if not 0 <= self.lifter_ms <= 16:
            raise bad_param(where, "lifter_ms", f"is {self.lifter_ms}, not in 0..16 ms",
                            "use 0 (off) or 2.5")
        if not (self.cmvn_window_s == 0 or 0.5 <= self.cmvn_window_s <= 60):
            raise bad_param(where, "cmvn_window_s", f"is {self.cmvn_window_s}, neither 0 (the "
                            "whole recording) nor in 0.5..60 s", "use 0 or 3")
        if not 0 <= self.phone_smooth_ms <= 200:
            raise bad_param(where, "phone_smooth_ms", f"is {self.phone_smooth_ms}, not in "
                            "0..200 ms", "use 30")
        if not 0 <= self.phone_map_share <= 1:
            raise bad_param(where, "phone_map_share", f"is {self.phone_map_share}, not a "
                            "share in [0, 1]", "use 0 (off)")
        if self.velocity_weight < 0:
            raise bad_param(where, "velocity_weight", f"is {self.velocity_weight}, below 0",
                            "use 0 (off)")
        if not all(0.7 <= w <= 1.4 for w in self.train_warps):
            raise bad_param(where, "train_warps", f"is {list(self.train_warps)}, warps must be "
                            "in [0.7, 1.4]", "use [] (none) or e.g. [0.92, 1.08]")
        if self.voices and not all(80 <= r <= 450 for r in self.voice_rates_wpm):
            raise bad_param(where, "voice_rates_wpm", f"is {list(self.voice_rates_wpm)}, "
                            "rates must be in 80..450 words a minute", "use [150]")
        if not 1 <= self.workers <= 16:
            raise bad_param(where, "workers", f"is {self.workers}, not in 1..16", "use 2")
        if not 1 <= self.ensemble <= 10:
            raise bad_param(where, "ensemble", f"is {self.ensemble}, not in 1..10", "use 3")
        if self.opening_weight < 0:
            raise bad_param(where, "opening_weight", f"is {self.opening_weight}, below 0", "use 10")
        if self.lstm_delay < 0 or self.context < 0:
            raise bad_param(where, "lstm_delay", "and context must be >= 0")
        if self.advise_train_s < 0:
            raise bad_param(where, "advise_train_s", f"is {self.advise_train_s}, below 0",
                            "use 80 (0: never warn)")
        if self.steps < self.eval_every or self.eval_every < 1:
            raise bad_param(where, "steps", f"({self.steps}) must be at least eval_every "
                            f"({self.eval_every}) >= 1")


@dataclass(frozen=True)
class LipsyncParams(Section):
    """The ``lipsync:`` section of params.yaml: lip-sync jobs (data/lipsync/<job>/job.yaml)."""

    SECTION = "lipsync"

    tts_voice: str = "en-us"  # espeak-ng voice of a job whose audio is text...
    tts_rate_wpm: int = 150  # ...and its rate (a job's audio: {voice:, rate_wpm:} override them)
    normalize_voice: bool = True  # warp the new voice's spectrum to the person's (VTLN) first
    silence_dbfs: float = -55.0  # new audio whose speech level is below this is refused as silent
    min_pause_share: float = 0.05  # ...and audio with fewer 10 ms pauses (20 dB under its level;
    # speech: 20-30%, sustained music: 0) as not speech
    max_loops: float = 4.0  # new audio may last this many times the span (the background plays
    # forward, backward, forward...); longer is refused
    speech_cost: float = 1.0  # re-timing: per frame whose speech activity differs (0..1) from
    # the background frame's...
    repeat_cost: float = 1.0  # ...per repeated background frame (a frozen head shows)...
    skip_cost: float = 0.3  # ...and per skipped one
    band_frames: int = 50  # the re-timing searches this many frames either side of the diagonal
    # Retrieval (job.py): each new frame shows a real footage frame's whole expression, found
    # near the prediction's leading components along a Viterbi path over this many nearest
    # frames, where a jump other than to the next footage frame costs ``switch_cost`` (in
    # typical match distances); ``share`` of the real expression, the rest the prediction's.
    # Off: on the held-out sentences mouth PSNR +0.31 / -0.12 dB, landmark distance worse on
    # both (benchmarks/results/lipsync.md, session 9); the settings below were chosen on the
    # lip model's validation frames (+0.4 dB there).
    retrieval: bool = False
    retrieval_candidates: int = 12
    retrieval_switch_cost: float = 0.5
    retrieval_share: float = 0.75
    # Where the new speech's words are known (audio: {text:}, or a transcript: beside a WAV),
    # the share of the way each new frame's expression moves from the lip model's prediction
    # to the clip's co-articulation model's for those phones (stages/lipsync/transcript.py).
    phone_share: float = 0.5
    # ...and then the share of the way to the edit path's expression for them: the viseme
    # search's pieces of the footage timed by the phones (the plan: settings), corrected
    # towards the same model (stages/plan ``span_frames``).
    search_share: float = 0.5

    def check(self, where: str) -> None:
        if not 0 <= self.phone_share <= 1:
            raise bad_param(where, "phone_share", f"is {self.phone_share}, not a share in "
                            "[0, 1]", "use 0.5 (0 = the lip model alone)")
        if not 0 <= self.search_share <= 1:
            raise bad_param(where, "search_share", f"is {self.search_share}, not a share in "
                            "[0, 1]", "use 0.5 (0 = no search)")
        if self.retrieval_candidates < 1:
            raise bad_param(where, "retrieval_candidates", f"is {self.retrieval_candidates}, "
                            "fewer than 1", "use 12")
        if self.retrieval_switch_cost < 0:
            raise bad_param(where, "retrieval_switch_cost", "must be >= 0", "use 0.5")
        if not 0 <= self.retrieval_share <= 1:
            raise bad_param(where, "retrieval_share", f"is {self.retrieval_share}, not a share "
                            "in [0, 1]", "use 1")
        if not 0 <= self.min_pause_share < 1:
            raise bad_param(where, "min_pause_share", f"is {self.min_pause_share}, not in [0, 1)")
        if self.max_loops < 1:
            raise bad_param(where, "max_loops", f"is {self.max_loops}, less than 1", "use 4")
        if min(self.speech_cost, self.repeat_cost, self.skip_cost) < 0:
            raise bad_param(where, "speech_cost", "and the repeat/skip costs must be >= 0")
        if self.band_frames < 2:
            raise bad_param(where, "band_frames", f"is {self.band_frames}, fewer than 2", "use 50")
        if not 40 <= self.tts_rate_wpm <= 500:
            raise bad_param(where, "tts_rate_wpm", f"is {self.tts_rate_wpm}, not in 40..500")
