"""A lip-sync job's spec, data/lipsync/<job>/job.yaml (the format: stages/lipsync/job.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.lipsync import LipsyncParams
from talkedit.artifacts import ClipPaths, EditPaths, LipsyncPaths
from talkedit.edits import read_spec_file, refuse_clip_without_speech
from talkedit.errors import TalkeditError

SPEC_KEYS = {"clip", "audio", "transcript", "span", "description"}


@dataclass(frozen=True)
class JobSpec:
    job: str
    path: Path
    clip: str
    audio_file: Path | None = None  # a WAV in the job's folder...
    audio_clip: str | None = None  # ...or another clip's soundtrack...
    text: str | None = None  # ...or words espeak-ng says
    voice: str = "en-us"
    rate_wpm: int = 150
    span: tuple[float, float] | None = None
    description: str | None = None
    transcript: str | None = None  # the words the WAV or clip audio says, when known

    @property
    def audio_label(self) -> str:
        if self.audio_file is not None:
            return f"file {self.audio_file.name}"
        if self.audio_clip is not None:
            return f"clip {self.audio_clip}'s audio"
        return f"espeak-ng {self.voice} at {self.rate_wpm} wpm: {self.text!r}"


def _fail(path: Path, problem: str, fix: str) -> TalkeditError:
    return TalkeditError(path, problem, fix)


def load_job(job: str, root: Path | None, opts: LipsyncParams | None = None) -> JobSpec:
    """Read and check data/lipsync/<job>/job.yaml (``opts`` gives the text audio's defaults)."""
    opts = opts or LipsyncParams()
    paths = LipsyncPaths.of(job, root)
    path = paths.spec
    if EditPaths.of(job, root).spec.is_file():
        raise _fail(path, f"job {job!r} has the name of an edit (data/edits/{job}/), and both "
                    "would write data/outputs/" + f"{job}.mp4", "rename the lip-sync job")
    data = read_spec_file(path, "lip-sync job not found",
                          f"write it (clip: and audio:, see stages/lipsync/job.py) or remove "
                          f"{job!r} from lipsync_jobs in params.yaml", "clip: and audio:",
                          "stages/lipsync/job.py", SPEC_KEYS)
    clip = data["clip"]
    refuse_clip_without_speech(path, ClipPaths.of(clip, root), "lip sync (a model of the "
                               "person's own speech)")
    fields: dict[str, Any] = {"voice": opts.tts_voice, "rate_wpm": opts.tts_rate_wpm}
    audio = data.get("audio")
    if isinstance(audio, str) and audio:
        file = (paths.inputs / audio).resolve()
        if paths.inputs.resolve() not in file.parents:
            raise _fail(path, f"audio {audio!r} is outside the job's folder",
                        f"copy the file into {paths.inputs} and name it there")
        if not file.is_file():
            raise _fail(path, f"audio {audio!r} not found in {paths.inputs}",
                        "copy the WAV there (DVC tracks the job's folder as a whole)")
        if file.suffix.lower() != ".wav":
            raise _fail(path, f"audio {audio!r} is not a WAV file",
                        "convert it, e.g. ffmpeg -i take.mp3 -ar 16000 -ac 1 take.wav")
        fields["audio_file"] = file
    elif isinstance(audio, dict) and set(audio) == {"clip"}:
        fields["audio_clip"] = ClipPaths.of(str(audio["clip"]), root).clip
    elif isinstance(audio, dict) and "text" in audio and set(audio) <= {"text", "voice", "rate_wpm"}:
        if not str(audio["text"]).strip():
            raise _fail(path, "audio: text is empty", "give the words to say")
        fields["text"] = str(audio["text"])
        fields["voice"] = str(audio.get("voice", fields["voice"]))
        fields["rate_wpm"] = int(audio.get("rate_wpm", fields["rate_wpm"]))
    else:
        raise _fail(path, "audio: must be a WAV file name, {clip: <name>} or {text: <words>}",
                    "e.g. 'audio: take.wav' with take.wav in the job's folder")
    transcript = data.get("transcript")
    if transcript is not None:
        if "text" in fields:
            raise _fail(path, "transcript: is given with audio: {text: ...}, whose words are "
                        "already known", "leave transcript: out")
        if not isinstance(transcript, str) or not transcript.strip():
            raise _fail(path, "transcript: is empty or not text",
                        "give the words the audio says, or leave transcript: out")
        fields["transcript"] = transcript.strip()
    span = data.get("span")
    if span is not None:
        if not (isinstance(span, list) and len(span) == 2
                and all(isinstance(v, (int, float)) for v in span) and 0 <= span[0] < span[1]):
            raise _fail(path, f"span {span!r} is not [start_s, end_s] with start < end",
                        "e.g. 'span: [4.0, 12.5]', or leave it out for the whole clip")
        fields["span"] = (float(span[0]), float(span[1]))
    description = data.get("description")
    return JobSpec(job, path, clip, description=None if description is None else str(description),
                   **fields)
