"""Provenance manifest: round trip through an MP4, binding to the streams, tampering,
corruption, and the verify report that puts manifest and watermark together."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import av
import pytest

import talkedit
from benchmarks.watermark import carphone, decode_frames, encode_h264, talking_photo
from stages.composite import provenance as pv
from stages.composite.verify import verify_video
from stages.composite.watermark import WatermarkEmbedder, WatermarkParams
from talkedit.errors import TalkeditError

SETTINGS = WatermarkParams(key="test-key")


def remux(src: Path, dst: Path, metadata: Mapping[str, str], audio_from: Path | None = None) -> Path:
    """Copy the packets of ``src`` (audio from ``audio_from`` if given) under new metadata."""
    sources = [(av.open(str(src)), ("video",) if audio_from else ("video", "audio"))]
    if audio_from:
        sources.append((av.open(str(audio_from)), ("audio",)))
    try:
        with av.open(str(dst), "w", format="mp4") as out:
            out.metadata.update(metadata)
            # Every output stream must exist before the first packet is muxed.
            plan = [(c, [s for s in c.streams if s.type in kinds]) for c, kinds in sources]
            mapping = {(id(c), s.index): out.add_stream_from_template(s)
                       for c, streams in plan for s in streams}
            for container, streams in plan:
                for packet in container.demux(streams):
                    if packet.dts is not None:
                        packet.stream = mapping[(id(container), packet.stream.index)]
                        out.mux(packet)
    finally:
        for container, _ in sources:
            container.close()
    return dst


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("provenance")
    source = root / "talk.mp4"
    encode_h264(carphone(n=10), 18, path=source)
    transcript = root / "talk.txt"
    transcript.write_text("the quick brown fox jumps over the lazy dog\n")
    spec = root / "edit1.yaml"
    spec.write_text("clip: talk\nreplace:\n  - {from: quick brown, to: slow red}\n")
    models = root / "models"
    models.mkdir()
    (models / "generator.safetensors").write_bytes(b"\x01" * 64)
    (models / "config.json").write_text("{}")
    plan = root / "plan.parquet"
    plan.write_bytes(b"PAR1 plan")
    return {"root": root, "source": source, "transcript": transcript, "spec": spec,
            "models": models, "plan": plan}


def manifest_for(inputs: dict[str, Path], **overrides: object) -> dict:
    args = {"source_video": inputs["source"], "transcript": inputs["transcript"],
            "edit_spec": inputs["spec"], "model_files": [inputs["models"]],
            "plan_files": [inputs["plan"]], **overrides}
    return pv.build_manifest(**args)


@pytest.fixture(scope="module")
def published(inputs: dict[str, Path]) -> tuple[dict, Path]:
    """What the renderer does: mark frames with the manifest's id, encode, publish."""
    manifest = manifest_for(inputs)
    embedder = WatermarkEmbedder(SETTINGS.key_bytes, manifest["watermark"]["payload_id"])
    frames = [embedder.embed(f, i) for i, f in enumerate(talking_photo(30, size=256, seed=2))]
    encoded = inputs["root"] / "encoded.mp4"
    encode_h264(frames, 18, path=encoded, audio_seconds=1.2)
    out = inputs["root"] / "outputs" / "edit1.mp4"
    return pv.publish(encoded, manifest, out), out


def test_manifest_round_trip_through_mp4(inputs: dict[str, Path], published: tuple[dict, Path]) -> None:
    final, out = published
    assert pv.read_manifest(out) == final
    assert pv.read_sidecar(out) == final
    assert pv.sidecar_path(out).name == "edit1.provenance.json"
    assert final["claim_generator"] == f"talkedit {talkedit.__version__}"
    assert final["title"] == "edit1.mp4"
    action = final["actions"][0]
    assert action["action"] == "c2pa.edited"
    assert action["parameters"]["edit_spec"] == {
        "clip": "talk", "replace": [{"from": "quick brown", "to": "slow red"}]}
    assert action["parameters"]["edit_spec_sha256"] == pv.sha256_file(inputs["spec"])
    hashes = {i["role"]: i["hash"]["value"] for i in final["ingredients"]}
    assert hashes == {"source_video": pv.sha256_file(inputs["source"]),
                      "transcript": pv.sha256_file(inputs["transcript"])}
    assert sorted(Path(m["path"]).name for m in final["models"]) == [
        "config.json", "generator.safetensors"]
    assert final["plan"][0]["sha256"] == pv.sha256_file(inputs["plan"])
    assert final["stream_hash"]["value"] == pv.stream_digest(out)
    assert pv.manifest_problems(final) == []
    with av.open(str(out)) as container:
        assert "talkedit" in container.metadata[pv.NOTICE_KEY]
        assert json.loads(container.metadata[pv.METADATA_KEY]) == final
        assert {s.type for s in container.streams} == {"video", "audio"}


def test_verify_reports_an_intact_edit(published: tuple[dict, Path]) -> None:
    final, out = published
    report = verify_video(out, SETTINGS)
    assert report.edited and report.has_manifest and report.manifest_valid
    assert report.manifest_source == "embedded"
    assert report.manifest_matches_file
    assert report.watermark_found and report.watermark_share >= 0.9
    assert report.payload_id == final["watermark"]["payload_id"]
    assert report.payload_matches_manifest
    text = report.render()
    assert "EDITED" in text and "matches this file" in text
    assert f"{report.payload_id:08x} (matches the manifest)" in text


def test_reencoded_copy_keeps_watermark_but_loses_binding(
        published: tuple[dict, Path], tmp_path: Path) -> None:
    """ffmpeg copies global metadata on a re-encode: the manifest comes along, stale."""
    final, out = published
    plain = tmp_path / "plain.mp4"
    encode_h264(decode_frames(out), 28, path=plain)
    copy = remux(plain, tmp_path / "reencoded.mp4",
                 {pv.METADATA_KEY: json.dumps(final)})
    report = verify_video(copy, SETTINGS)
    assert report.manifest_valid and not report.manifest_matches_file
    assert report.watermark_found and report.payload_matches_manifest
    assert report.edited
    assert "DOES NOT match" in report.render()


def test_tampered_frames_or_audio_break_the_binding(
        published: tuple[dict, Path], tmp_path: Path) -> None:
    final, out = published
    meta = {pv.METADATA_KEY: json.dumps(final)}
    frames = decode_frames(out)
    frames[12] = frames[12].copy()
    frames[12][100:160, 90:170] = 0  # blank out the mouth in one frame
    edited = tmp_path / "edited_frames.mp4"
    encode_h264(frames, 18, path=edited, audio_seconds=1.2)
    assert not pv.matches_file(final, remux(edited, tmp_path / "a.mp4", meta))
    other_audio = tmp_path / "other_audio.mp4"
    encode_h264(frames[:5], 30, path=other_audio, audio_seconds=0.6)
    swapped = remux(out, tmp_path / "swapped_audio.mp4", meta, audio_from=other_audio)
    assert not pv.matches_file(final, swapped)
    # Same packets, new container: still the file the manifest was made for.
    assert pv.matches_file(final, remux(out, tmp_path / "same.mp4", meta))


def test_stripped_metadata_falls_back_to_the_sidecar(
        published: tuple[dict, Path], tmp_path: Path) -> None:
    final, out = published
    stripped = remux(out, tmp_path / "edit1.mp4", {})
    assert pv.read_manifest(stripped) is None
    pv.write_sidecar(stripped, final)
    report = verify_video(stripped, SETTINGS)
    assert report.manifest_source == "sidecar" and report.manifest_valid
    assert report.manifest_matches_file and report.payload_matches_manifest


@pytest.mark.parametrize(("comment", "problem"), [
    ('{"format": "talkedit-provenance/1", "claim_gen', "not JSON"),
    (json.dumps({"format": "talkedit-provenance/1", "claim_generator": "talkedit 0.1.0"}),
     "watermark.payload_id"),
])
def test_corrupted_manifest_is_reported_not_raised(
        published: tuple[dict, Path], tmp_path: Path, comment: str, problem: str) -> None:
    _, out = published
    broken = remux(out, tmp_path / "broken.mp4", {pv.METADATA_KEY: comment})
    with pytest.raises(TalkeditError, match=problem):
        pv.read_manifest(broken)
    report = verify_video(broken, SETTINGS)
    assert report.has_manifest and not report.manifest_valid
    assert problem in (report.manifest_problem or "")
    assert not report.manifest_matches_file and not report.payload_matches_manifest
    assert report.watermark_found and report.edited  # the frames still say so
    assert "INVALID" in report.render()


def test_corrupted_sidecar_is_reported(published: tuple[dict, Path], tmp_path: Path) -> None:
    _, out = published
    stripped = remux(out, tmp_path / "edit2.mp4", {})
    pv.sidecar_path(stripped).write_text("{ truncated")
    report = verify_video(stripped, SETTINGS)
    assert report.manifest_source == "sidecar" and not report.manifest_valid
    assert "not JSON" in (report.manifest_problem or "")


def test_unedited_video_is_not_flagged(inputs: dict[str, Path], tmp_path: Path) -> None:
    foreign = remux(inputs["source"], tmp_path / "holiday.mp4", {"comment": "our holiday"})
    assert pv.read_manifest(foreign) is None  # someone else's comment is not a manifest
    report = verify_video(foreign, SETTINGS)
    assert not report.edited
    assert not (report.has_manifest or report.watermark_found or report.payload_matches_manifest)
    assert report.payload_id is None
    assert "no talkedit mark found" in report.render()


def test_payload_id_follows_the_inputs(inputs: dict[str, Path]) -> None:
    first = manifest_for(inputs)
    assert manifest_for(inputs)["watermark"]["payload_id"] == first["watermark"]["payload_id"]
    other_spec = inputs["root"] / "edit_other.yaml"
    other_spec.write_text("clip: talk\nreplace:\n  - {from: lazy, to: sleepy}\n")
    assert (manifest_for(inputs, edit_spec=other_spec)["watermark"]["payload_id"]
            != first["watermark"]["payload_id"])
    assert manifest_for(inputs, payload_id=7)["watermark"] == {
        "scheme": "talkedit-ss-v1", "payload_id": 7, "payload_hex": "00000007"}
    with pytest.raises(TalkeditError, match="not found"):
        manifest_for(inputs, transcript=inputs["root"] / "missing.txt")
    with pytest.raises(ValueError, match="32-bit"):
        manifest_for(inputs, payload_id=2**32)
    assert "stream_hash is missing" in " ".join(pv.manifest_problems(first))
    assert pv.manifest_problems(first, need_stream_hash=False) == []


def test_embed_refuses_a_malformed_manifest(published: tuple[dict, Path], tmp_path: Path) -> None:
    final, out = published
    bad = {**final, "actions": []}
    with pytest.raises(TalkeditError, match="c2pa.edited"):
        pv.embed_manifest(out, bad, tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()
    assert pv.read_manifest(out) == final  # the source is untouched
