"""Provenance: signed Content Credentials read back through c2pa-python, the JSON copies,
and the verify verdict under the attacks that must never give "edited"."""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Mapping
from pathlib import Path

import av
import pytest
from typer.testing import CliRunner

import talkedit
from benchmarks.watermark import carphone, decode_frames, encode_h264, talking_photo
from stages.composite import provenance as pv
from stages.composite.credentials import Credentials, SigningSettings, make_credentials
from stages.composite.verify import verify_video
from stages.composite.watermark import WatermarkEmbedder, WatermarkParams
from talkedit.cli import app
from talkedit.errors import TalkeditError
from talkedit.params import load_section

SETTINGS = WatermarkParams(key="test-key")


def remux(src: Path, dst: Path, metadata: Mapping[str, str], audio_from: Path | None = None) -> Path:
    """Copy the packets of ``src`` (audio from ``audio_from`` if given) under new metadata:
    what a stream copy with ffmpeg does (the C2PA box is not carried)."""
    sources = [(av.open(str(src)), ("video",) if audio_from else ("video", "audio"))]
    if audio_from:
        sources.append((av.open(str(audio_from)), ("audio",)))
    try:
        with av.open(str(dst), "w", format="mp4") as out:
            out.metadata.update(metadata)
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


def top_level_boxes(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, start, end) of an MP4's top-level boxes."""
    boxes, pos = [], 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8:pos + 16])[0]
        boxes.append((kind, pos, pos + size))
        pos += size
    return boxes


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
    plan = root / "plan.parquet"
    plan.write_bytes(b"PAR1 plan")
    audio = root / "edit1.wav"
    audio.write_bytes(b"RIFF fake wav")
    return {"root": root, "source": source, "transcript": transcript, "spec": spec,
            "models": models, "plan": plan, "audio": audio}


@pytest.fixture(scope="module")
def creds(tmp_path_factory: pytest.TempPathFactory) -> Credentials:
    return make_credentials(tmp_path_factory.mktemp("c2pa"), "talkedit test signer")


def manifest_for(inputs: dict[str, Path], **overrides: object) -> dict:
    args = {"source_video": inputs["source"], "transcript": inputs["transcript"],
            "edit_spec": inputs["spec"], "model_files": [inputs["models"]],
            "plan_files": [inputs["plan"], inputs["audio"]], **overrides}
    return pv.build_manifest(**args)


def render(inputs: dict[str, Path], creds: Credentials, name: str, marked_id: int | None,
           manifest: dict | None = None) -> tuple[dict, Path]:
    """What the renderer does: mark frames (unless marked_id is None), encode, publish."""
    manifest = manifest or manifest_for(inputs)
    frames = talking_photo(30, size=384, seed=2)
    if marked_id is not None:
        embedder = WatermarkEmbedder(SETTINGS.key_bytes, marked_id)
        frames = [embedder.embed(f, i) for i, f in enumerate(frames)]
    encoded = inputs["root"] / f"{name}.encoded.mp4"
    encode_h264(frames, 18, path=encoded, audio_seconds=1.2)
    out = inputs["root"] / "outputs" / f"{name}.mp4"
    return pv.publish(encoded, manifest, out, creds), out


@pytest.fixture(scope="module")
def published(inputs: dict[str, Path], creds: Credentials) -> tuple[dict, Path]:
    manifest = manifest_for(inputs)
    return render(inputs, creds, "edit1", manifest["watermark"]["payload_id"], manifest)


def check(video: Path, creds: Credentials) -> object:
    return verify_video(video, SETTINGS, [creds.trust_anchor])  # type: ignore[list-item]


def test_content_credentials_read_back_through_c2pa(
        inputs: dict[str, Path], published: tuple[dict, Path], creds: Credentials) -> None:
    final, out = published
    found = pv.read_content_credentials(out, [creds.trust_anchor])  # type: ignore[list-item]
    assert found.state == "valid", found.problems
    assert found.problems == []
    assert found.actions == ["c2pa.opened", "c2pa.edited"]
    assert found.digital_source_types == [pv.DIGITAL_SOURCE_TYPE]
    assert pv.DIGITAL_SOURCE_TYPE.endswith("/trainedAlgorithmicMedia")
    titles = {i["title"]: i["relationship"] for i in found.ingredients}
    assert titles == {"talk.mp4": "parentOf", "talk.txt": "inputTo", "edit1.yaml": "inputTo",
                      "edit1.wav": "inputTo", "generator.safetensors": "inputTo"}
    details = {i["title"]: i["metadata"]["dataSource"]["details"] for i in found.ingredients}
    assert details["talk.mp4"] == "sha256:" + pv.sha256_file(inputs["source"])
    assert found.signer == "talkedit test signer"
    assert found.manifest == final and found.payload_id == final["watermark"]["payload_id"]
    # The signature validates against the test CA and only against it.
    assert pv.read_content_credentials(out).state == "untrusted"
    other_ca = make_credentials(inputs["root"] / "other-ca").trust_anchor
    assert pv.read_content_credentials(out, [other_ca]).state == "untrusted"  # type: ignore[list-item]


def test_json_copies_round_trip(inputs: dict[str, Path], published: tuple[dict, Path]) -> None:
    final, out = published
    assert pv.read_manifest(out) == final
    assert pv.read_sidecar(out) == final
    assert final["claim_generator"] == f"talkedit {talkedit.__version__}"
    assert final["title"] == "edit1.mp4"
    assert final["actions"][0]["parameters"]["edit_spec"] == {
        "clip": "talk", "replace": [{"from": "quick brown", "to": "slow red"}]}
    roles = {i["role"]: i["hash"]["value"] for i in final["ingredients"]}
    assert roles == {"source_video": pv.sha256_file(inputs["source"]),
                     "transcript": pv.sha256_file(inputs["transcript"]),
                     "edit_spec": pv.sha256_file(inputs["spec"])}
    assert pv.matches_file(final, out)  # C2PA signing kept the packets


def test_intact_edit_is_edited(published: tuple[dict, Path], creds: Credentials) -> None:
    final, out = published
    report = check(out, creds)
    assert report.verdict == "edited" and report.exit_code == 0, report.reasons
    assert report.watermark.found and report.watermark.z > 2 * report.watermark.z_needed
    assert report.watermark.payload_id == final["watermark"]["payload_id"]
    assert report.credentials.state == "valid"
    assert report.metadata.state == "bound" and report.sidecar.state == "bound"
    assert "EDITED" in report.render()


def test_metadata_copied_onto_an_unedited_video_is_inconsistent(
        inputs: dict[str, Path], published: tuple[dict, Path], creds: Credentials,
        tmp_path: Path) -> None:
    """ffmpeg -c copy -map_metadata: the comment-tag manifest lands on the real video."""
    _, out = published
    with av.open(str(out)) as container:
        metadata = dict(container.metadata)
    forged = remux(inputs["source"], tmp_path / "real.mp4", metadata)
    report = check(forged, creds)
    assert report.metadata.state == "other_content"
    assert not report.watermark.found
    assert report.verdict == "inconsistent" and report.exit_code == 3


def test_c2pa_box_transplanted_onto_an_unedited_video_is_inconsistent(
        inputs: dict[str, Path], published: tuple[dict, Path], creds: Credentials,
        tmp_path: Path) -> None:
    _, out = published
    signed = out.read_bytes()
    uuid_boxes = [signed[a:b] for kind, a, b in top_level_boxes(signed) if kind == b"uuid"]
    assert uuid_boxes, "the signed MP4 has no C2PA uuid box"
    forged = tmp_path / "real_with_c2pa.mp4"
    forged.write_bytes(inputs["source"].read_bytes() + b"".join(uuid_boxes))
    report = check(forged, creds)
    assert report.credentials.state == "other_content", report.credentials.problems
    assert report.verdict == "inconsistent" and report.exit_code == 3


def test_sidecar_beside_an_unedited_video_is_inconsistent(
        inputs: dict[str, Path], published: tuple[dict, Path], creds: Credentials,
        tmp_path: Path) -> None:
    _, out = published
    real = tmp_path / "edit1.mp4"
    shutil.copy(inputs["source"], real)
    shutil.copy(pv.sidecar_path(out), pv.sidecar_path(real))
    report = check(real, creds)
    assert report.sidecar.state == "other_content"
    assert report.verdict == "inconsistent" and report.exit_code == 3


def test_corrupted_manifests_are_invalid(
        inputs: dict[str, Path], published: tuple[dict, Path], creds: Credentials,
        tmp_path: Path) -> None:
    final, out = published
    data = bytearray(out.read_bytes())
    at = data.find(b"c2pa.signature")
    data[at + 100] ^= 0xFF
    corrupted = tmp_path / "corrupted.mp4"
    corrupted.write_bytes(bytes(data))
    report = check(corrupted, creds)
    assert report.credentials.state == "invalid" and report.credentials.problems
    assert report.verdict == "edited"  # the frames still carry the watermark with its id
    # A corrupted manifest with no watermark behind it is not "edited" and not "clean".
    broken = remux(inputs["source"], tmp_path / "broken.mp4",
                   {pv.METADATA_KEY: '{"format": "talkedit-provenance/1", "claim_gen'})
    report = check(broken, creds)
    assert report.metadata.state == "invalid" and "not JSON" in (report.metadata.problem or "")
    assert report.verdict == "inconsistent"


def test_valid_credentials_without_watermark_still_say_edited(
        inputs: dict[str, Path], creds: Credentials) -> None:
    """The frames lost the mark (here: never had it), the signed manifest is bound."""
    _, out = render(inputs, creds, "unmarked", marked_id=None)
    report = check(out, creds)
    assert not report.watermark.found and report.watermark.z < report.watermark.z_needed
    assert report.credentials.state == "valid"
    assert report.verdict == "edited" and report.exit_code == 0


def test_untrusted_signer_without_watermark_is_inconsistent(
        inputs: dict[str, Path], creds: Credentials) -> None:
    """Anyone can sign "c2pa.edited" onto a real video with their own certificate: without
    the watermark that is not "edited"; with the signer's CA trusted it is."""
    _, out = render(inputs, creds, "forged_claim", marked_id=None)
    untrusted = verify_video(out, SETTINGS)  # no trust anchors given
    assert untrusted.credentials.state == "untrusted" and not untrusted.watermark.found
    assert untrusted.verdict == "inconsistent"
    assert check(out, creds).verdict == "edited"


def test_watermark_id_differing_from_the_manifest_is_inconsistent(
        inputs: dict[str, Path], creds: Credentials) -> None:
    manifest = manifest_for(inputs)
    _, out = render(inputs, creds, "other_id", manifest["watermark"]["payload_id"] ^ 0xFFFF,
                    manifest)
    report = check(out, creds)
    assert report.watermark.found and report.credentials.state == "valid"
    assert report.verdict == "inconsistent"
    assert any("names watermark id" in r for r in report.reasons)


def test_reencoded_edit_keeps_its_verdict(published: tuple[dict, Path], creds: Credentials,
                                          tmp_path: Path) -> None:
    """ffmpeg re-encodes copy the comment tag: stale binding, but the frames confirm the id."""
    final, out = published
    plain = tmp_path / "plain.mp4"
    encode_h264(decode_frames(out), 28, path=plain)
    copy = remux(plain, tmp_path / "reencoded.mp4", {pv.METADATA_KEY: json.dumps(final)})
    report = check(copy, creds)
    assert report.metadata.state == "other_content" and report.credentials.state == "absent"
    assert report.watermark.payload_id == final["watermark"]["payload_id"]
    assert report.verdict == "edited"


def test_unedited_video_has_no_evidence(inputs: dict[str, Path], creds: Credentials,
                                        tmp_path: Path) -> None:
    foreign = remux(inputs["source"], tmp_path / "holiday.mp4", {"comment": "our holiday"})
    report = check(foreign, creds)
    assert report.verdict == "no_evidence" and report.exit_code == 1
    assert report.metadata.state == report.sidecar.state == report.credentials.state == "absent"


def test_cli_exit_codes_and_json(inputs: dict[str, Path], published: tuple[dict, Path],
                                 creds: Credentials, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"  # verify reads the project's key from its params.yaml
    project.mkdir()
    (project / "params.yaml").write_text("watermark:\n  key: test-key\n")
    monkeypatch.chdir(project)
    _, out = published
    runner = CliRunner()
    trust = ["--trust", str(creds.trust_anchor)]
    result = runner.invoke(app, ["verify", str(out), "--json", *trust])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["verdict"] == "edited" and data["credentials"]["state"] == "valid"
    assert data["watermark"]["found"] and data["exit_code"] == 0
    real = tmp_path / "edit1.mp4"
    shutil.copy(inputs["source"], real)
    assert runner.invoke(app, ["verify", str(real), *trust]).exit_code == 1
    shutil.copy(pv.sidecar_path(out), pv.sidecar_path(real))
    result = runner.invoke(app, ["verify", str(real), *trust])
    assert result.exit_code == 3 and "INCONSISTENT" in result.output
    for bad in (["verify", str(tmp_path / "nope.mp4")],
                ["verify", str(out), "--trust", str(tmp_path / "no-ca.pem")]):
        failed = runner.invoke(app, bad)
        assert failed.exit_code == 2
        assert len([line for line in failed.output.splitlines() if line.startswith("error:")]) == 1


def test_signing_settings_and_bad_credentials(tmp_path: Path, inputs: dict[str, Path]) -> None:
    settings = SigningSettings.of(WatermarkParams(), tmp_path)
    made = settings.credentials()  # a local CA on first use
    assert made.chain.is_file() and (made.key.stat().st_mode & 0o777) == 0o600
    assert settings.credentials() == made  # and the same one after
    assert settings.trust_anchors() == [made.trust_anchor]
    own = SigningSettings.of(WatermarkParams(c2pa_cert="me.pem", c2pa_key="me.key",
                                             c2pa_trust=("ca.pem",)), tmp_path)
    assert own.credentials() == Credentials(tmp_path / "me.pem", tmp_path / "me.key")
    assert own.trust_anchors() == [tmp_path / "ca.pem", made.trust_anchor]
    (tmp_path / "params.yaml").write_text("watermark:\n  c2pa_cert: a.pem\n")
    with pytest.raises(TalkeditError, match="watermark.c2pa_cert"):
        load_section(WatermarkParams, tmp_path)
    missing = Credentials(tmp_path / "none.pem", tmp_path / "none.key")
    with pytest.raises(TalkeditError, match="not found"):
        pv.sign_content_credentials(inputs["source"], manifest_for(inputs), missing,
                                    tmp_path / "x.mp4")
    someone_else = make_credentials(tmp_path / "other")
    with pytest.raises(TalkeditError, match="signing the Content Credentials failed"):
        pv.sign_content_credentials(inputs["source"], manifest_for(inputs),
                                    Credentials(made.chain, someone_else.key), tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()


def test_payload_id_follows_the_inputs(inputs: dict[str, Path]) -> None:
    first = manifest_for(inputs)
    assert manifest_for(inputs)["watermark"]["payload_id"] == first["watermark"]["payload_id"]
    other_spec = inputs["root"] / "edit_other.yaml"
    other_spec.write_text("clip: talk\nreplace:\n  - {from: lazy, to: sleepy}\n")
    assert (manifest_for(inputs, edit_spec=other_spec)["watermark"]["payload_id"]
            != first["watermark"]["payload_id"])
    with pytest.raises(TalkeditError, match="not found"):
        manifest_for(inputs, transcript=inputs["root"] / "missing.txt")
    with pytest.raises(ValueError, match="32-bit"):
        manifest_for(inputs, payload_id=2**32)
