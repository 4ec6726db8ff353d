"""The lip model's speaker-independent phonetic input (stages/lipsync/phones.py)."""

from __future__ import annotations

import numpy as np

from stages.lipsync.features import HOP, RATE, FeatureConfig, frame_features
from stages.lipsync.phones import N_CLASSES, class_steps, recognized_phones
from stages.lipsync.respeak import synthesized
from stages.visemes import VISEME_ID, viseme_of

TEXT = "We measured every step, from the sound of each word to the shape of the mouth."


def _agreement(samples: np.ndarray, phones: list) -> tuple[float, float, float, np.ndarray]:
    """Shares of 10 ms steps whose recognised class (unsmoothed) is the synthesiser's own:
    as heard, and the same classes 300 ms late (right sequence, wrong time); the share of
    the commonest class said; the heard one-hots."""
    n = len(samples) // HOP
    heard = class_steps(samples, n, 0.0)
    said = np.full(n, VISEME_ID["SIL"])
    for p in phones:
        said[int(round(p.start_s * 100)):int(round(p.end_s * 100))] = VISEME_ID[viseme_of(p.phone)]
    best = heard.argmax(axis=1)
    return (float((best == said).mean()), float((np.roll(best, 30) == said).mean()),
            float(np.bincount(said).max() / n), heard)


def test_recognised_classes_follow_what_two_voices_say() -> None:
    """A male and a female espeak voice, no transcript: the class heard is the class said
    on 39 % / 51 % of the steps (14 classes; the commonest covers 16-17 %; the same decode
    300 ms late agrees on 4-6 %); each step is one class; a second decode is the same."""
    for voice, rate in (("en-us", 150), ("en-us+f3", 130)):
        samples, phones = synthesized(TEXT, voice, rate)
        agreement, late, commonest, heard = _agreement(samples, phones)
        assert agreement > max(0.33, 2 * commonest, 3 * late), (voice, agreement, late)
        np.testing.assert_allclose(heard.sum(axis=1), 1.0, atol=1e-6)
        assert recognized_phones(samples) == recognized_phones(samples.copy())


def test_phone_features_extend_the_mfccs_and_are_smoothed() -> None:
    """With ``phones`` on, each frame's features are its MFCC stack as before, then the
    smoothed classes at its time (still summing to 1); off, the features are unchanged."""
    samples, _ = synthesized(TEXT, "en-us", 150)
    n, fps = int(len(samples) / RATE * 25), 25.0
    plain = frame_features(samples, n, fps, FeatureConfig(context=5))
    cfg = FeatureConfig(context=5, phones=True, phone_smooth_ms=30.0)
    both = frame_features(samples, n, fps, cfg)
    assert both.shape == (n, plain.shape[1] + N_CLASSES) == (n, cfg.dim)
    np.testing.assert_array_equal(both[:, :plain.shape[1]], plain)
    classes = both[:, plain.shape[1]:]
    np.testing.assert_allclose(classes.sum(axis=1), 1.0, atol=1e-5)
    sharp = frame_features(samples, n, fps, FeatureConfig(context=5, phones=True,
                                                          phone_smooth_ms=0.0))[:, -N_CLASSES:]
    # smoothing spreads a class into its neighbours: fewer frames wholly one class
    assert (classes.max(axis=1) > 0.99).sum() < (sharp.max(axis=1) > 0.99).sum()


def test_the_phone_map_recovers_a_linear_rule_and_blends_into_the_model(tmp_path) -> None:
    """fit_map finds targets made linearly from the classes around each frame (a class's
    effect one frame early included: co-articulation); a LipModel with the map outputs the
    network's standardised prediction and the map's mixed by its share (0: the network, 1:
    the map), and saves and loads it; without a map the file holds no trace of it."""
    import torch

    from stages.lipsync.model import LipModel, NetConfig, make_net, predict
    from stages.lipsync.phones import MAP_OFFSETS, fit_map, map_design

    rng = np.random.default_rng(0)
    classes = [np.eye(N_CLASSES)[rng.integers(0, N_CLASSES, 300)] for _ in range(3)]
    rule = rng.normal(size=(len(MAP_OFFSETS) * N_CLASSES + 1, 2))
    targets = [map_design(c) @ rule for c in classes]
    weights = fit_map(classes, targets)
    test = np.eye(N_CLASSES)[rng.integers(0, N_CLASSES, 200)]
    truth = map_design(test) @ rule
    assert np.abs(map_design(test) @ weights - truth).max() < 0.05 * np.abs(truth).max()

    torch.manual_seed(0)
    cfg = FeatureConfig(context=1, phones=True)
    net_cfg = NetConfig("tcn", cfg.dim - N_CLASSES, 2, 8, 0.0)
    net = make_net(net_cfg)
    feats = np.hstack([rng.normal(size=(200, cfg.dim - N_CLASSES)), test]).astype(np.float32)
    mean, std = np.array([0.5, -1.0]), np.array([2.0, 3.0])
    alone = predict(net, feats[:, :-N_CLASSES])
    mapped = map_design(test) @ weights
    for share in (0.0, 0.3, 1.0):
        model = LipModel(net, net_cfg, cfg, mean, std, 64, {}, np.zeros(26), weights, share)
        expected = ((1 - share) * alone + share * mapped) * std + mean
        np.testing.assert_allclose(model.expression(feats)[:, :2], expected, atol=1e-5)
        assert not model.expression(feats)[:, 2:].any()
    model.save(tmp_path / "map.safetensors")
    loaded = LipModel.load(tmp_path / "map.safetensors", "lipmodel")
    assert loaded.phone_map_share == 1.0 and loaded.features.phones
    np.testing.assert_allclose(loaded.expression(feats), model.expression(feats), atol=1e-5)
    plain = LipModel(net, net_cfg, FeatureConfig(context=1), mean, std, 64, {}, np.zeros(26))
    plain.save(tmp_path / "plain.safetensors")
    raw = (tmp_path / "plain.safetensors").read_bytes()
    assert b"phone" not in raw
    assert LipModel.load(tmp_path / "plain.safetensors", "lipmodel").phone_map is None
