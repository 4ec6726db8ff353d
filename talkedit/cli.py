"""The ``talkedit`` command: the application layer, above ``flows`` (and so ``stages``).

The kernel (every other module of ``talkedit/``) imports no stage and no flow; this
module is the one place that does. Each stage subcommand runs the same Prefect flow
that its DVC stage runs (``talkedit extract demo`` is what ``dvc repro extract@demo``
calls), for the stages listed once in ``flows/registry.py``.

A user-fixable problem prints exactly one ``error:`` line on stderr and exits with 2;
Prefect's own log goes to ``.prefect/logs/talkedit.log`` (``--verbose`` shows it).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from talkedit import __version__
from talkedit.errors import TalkeditError
from talkedit.params import PARAMS_FILE, check_name, load_params, repo_root

# stages/ and flows/ are the project's code, not a library: they live in the checkout
# beside this package (an editable install) and are imported from there, so nothing
# with a generic name lands in site-packages.
PROJECT_CODE = Path(__file__).resolve().parents[1]
if (PROJECT_CODE / "stages").is_dir() and str(PROJECT_CODE) not in sys.path:
    sys.path.insert(0, str(PROJECT_CODE))

WORKFLOW = """Edit a talking-head video by editing its transcript.

\b
Workflow (run in the project folder, the one holding params.yaml):
  1. put a clip at data/raw/<clip>.mp4 with its transcript data/raw/<clip>.txt, and list
     it under clips: in params.yaml (`talkedit demo` makes a synthetic one);
  2. edit it in one command:
       talkedit edit <clip> --replace "old words" --with "new words"
     which checks the words against the transcript, writes the edit to
     data/edits/<edit>/edit.yaml, lists it under edits: in params.yaml and runs
     `dvc repro` for it (or write the folder and the params entry by hand);
  3. `dvc repro` runs what is out of date, stage by stage:
     extract -> align -> fit -> index -> train (per clip),
     plan -> audio -> render -> composite (per edit), evaluate (per clip);
     the result is data/outputs/<edit>.mp4; `talkedit verify` checks a video for
     talkedit's watermarks, `talkedit detect` for any edited mouth (no watermark needed).
  Lip sync: `talkedit lipsync <clip> <take.wav|clip:NAME|text:WORDS>` drives the clip
  with new speech (lipmodel per clip; lipplan -> liprender -> lipcomposite per job).
  Reenactment: `talkedit reenact JOB --target CLIP --source CLIP` makes the target's face
  follow the source's expressions (reenactplan -> reenactrender -> reenactcomposite).
Each stage subcommand below is one DVC stage for one clip or edit.
"""

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help=WORKFLOW, rich_markup_mode=None)
server_app = typer.Typer(no_args_is_help=True, help="A local Prefect server (UI at 127.0.0.1).")
app.add_typer(server_app, name="server")

F = TypeVar("F", bound=Callable[..., Any])
VERBOSE = False


def user_errors(func: F) -> F:
    """Turn a TalkeditError into one line on stderr and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TalkeditError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"talkedit {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                          help="Show Prefect's log on the console.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    global VERBOSE
    VERBOSE = verbose


@contextlib.contextmanager
def _native_stderr_to(path: Path) -> Iterator[None]:
    """Send what native libraries (mediapipe, TFLite, ffmpeg) and child processes write to
    file descriptor 2 into ``path``; Python's own stderr (our error line, progress bars)
    still reaches the terminal."""
    sys.stderr.flush()
    terminal = os.dup(2)
    python_stderr = sys.stderr
    sys.stderr = os.fdopen(os.dup(terminal), "w", buffering=1, encoding="utf-8",
                           errors="replace")
    log_fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr.close()
        os.dup2(terminal, 2)
        os.close(terminal)
        sys.stderr = python_stderr


def _quiet_prefect() -> Path:
    """Send Prefect's console log (run states, tracebacks) and the stages' logs to a file;
    return its path."""
    import flows  # noqa: F401 - configures PREFECT_HOME before prefect is imported

    log_dir = Path(os.environ["PREFECT_HOME"]) / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / "talkedit.log"
    from prefect.logging.configuration import setup_logging

    setup_logging()
    for name in ("prefect", "prefect.flow_runs", "prefect.task_runs", ""):
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            if isinstance(old, logging.StreamHandler) and not isinstance(old, logging.FileHandler):
                logger.removeHandler(old)
    root_logger = logging.getLogger()
    if not any(isinstance(h, logging.FileHandler) and h.baseFilename == str(path)
               for h in root_logger.handlers):
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        # One handler on both: prefect's records stop at "prefect", the rest reach the
        # root, so every line is written once.
        root_logger.addHandler(handler)
        logging.getLogger("prefect").addHandler(handler)
    logging.getLogger("prefect").propagate = False
    root_logger.setLevel(logging.INFO)
    return path


def _print_summary(summary: dict[str, Any]) -> None:
    """A line per key; a stage's ``warnings`` as ``warning:`` lines on stderr."""
    for key, value in summary.items():
        if key == "warnings":
            echo_warnings(value)
        else:
            typer.echo(f"{key}: {value}")


def echo_warnings(lines: list[str]) -> None:
    for line in lines:
        typer.echo(f"warning: {line}", err=True)


def _run(stage: str, item: str | None, overrides: dict[str, dict[str, Any]] | None = None) -> None:
    from flows.quality import ALL_BY_NAME

    root = repo_root()
    if not (root / PARAMS_FILE).is_file():
        raise TalkeditError(Path.cwd(), f"is not a talkedit project (no {PARAMS_FILE} here or "
                            "above)", "run talkedit in the project folder")
    quiet = contextlib.nullcontext() if VERBOSE else _native_stderr_to(_quiet_prefect())
    with quiet:
        from flows.stage import run_stage_flow

        summary = run_stage_flow(ALL_BY_NAME[stage], item, root, overrides)
    _print_summary(summary)


@app.command()
@user_errors
def demo(
    face: Annotated[Path | None, typer.Option(help="A frontal face photo (default: skimage's astronaut).")] = None,
    text: Annotated[Path | None, typer.Option(help="A text file to speak (default: the bundled script).")] = None,
    voice: Annotated[str | None, typer.Option(help="espeak-ng voice, e.g. en-us, en-gb, en-us+f3.")] = None,
    rate: Annotated[int | None, typer.Option(help="Speaking rate in words per minute.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for head motion and lighting.")] = None,
    name: Annotated[str | None, typer.Option(help="Clip name (files are <name>.mp4, <name>.txt...).")] = None,
    size: Annotated[int | None, typer.Option(help="Frame size in pixels (square).")] = None,
) -> None:
    """Make a synthetic talking-head clip with exact ground truth (the `demo` stage).

    Reads params.yaml demo: (the options override it); writes data/raw/<name>.mp4, .txt and
    the truth tables.
    """
    given = {"face": str(face) if face else None, "text": str(text) if text else None,
             "voice": voice, "rate_wpm": rate, "seed": seed, "name": name, "size": size}
    _run("demo", None, {"demo": {k: v for k, v in given.items() if v is not None}})


def _stage_command(stage: str, kind: str, help_text: str) -> None:
    def command(item: str = typer.Argument(..., metavar=kind.upper(), help=f"The {kind}'s name.")
                ) -> None:
        check_name(item, kind)
        if stage in ("extract", "videoextract"):  # bad input fails in a second, before Prefect
            from stages.extract import check_clip_inputs

            check_clip_inputs(item, repo_root(), need_transcript=stage == "extract")
        if stage in ("pairclip", "pairedit"):
            from stages.demo.pairs import find_case

            find_case(item)
        _run(stage, item)

    command.__doc__ = help_text
    app.command(name=stage)(user_errors(command))


# stages whose subcommand is written out below (detect also takes any video)
CUSTOM_STAGE_COMMANDS = ("report", "detect")


def _register_stages() -> None:
    from flows.quality import ALL_STAGES
    from flows.registry import PROJECT

    for spec in ALL_STAGES:
        if spec.kind != PROJECT and spec.name not in CUSTOM_STAGE_COMMANDS:
            _stage_command(spec.name, spec.kind, spec.help)


_register_stages()


@app.command()
@user_errors
def scenedemo() -> None:
    """Make the generated two-character scene's takes with exact truth (the `scenedemo` stage).

    Reads params.yaml scenedemo: and stages/scene/demo_scene.yaml; writes data/scenes/<name>/.
    """
    _run("scenedemo", None)


@app.command("pair-summary")
@user_errors
def pair_summary() -> None:
    """Pool every scored edit-with-truth pair against the targets (the `pair-summary` stage).

    Reads data/metrics/pairs/<case>.edits.json (the pair stages': `dvc repro
    quality/dvc.yaml` runs both) and params.yaml pair_targets:; writes
    data/metrics/pair_summary.json and .md.
    """
    _run("pair-summary", None)


@app.command("phone-prior")
@user_errors
def phone_prior(
    work: Annotated[Path, typer.Option(help="Folder the corpus clips are generated and fitted in (kept; reused when run again).")],
    out: Annotated[Path | None, typer.Option(help="Where to write the table (default: the shipped stages/plan/phone_openings.json).")] = None,
) -> None:
    """Rebuild the phone-opening prior the plan's co-articulation model reads (plan.phone_prior).

    Generates the corpus of stages/demo/corpus.py in WORK, fits each clip as the pair stages
    do (params.yaml's sections), pools their per-phone opening targets
    (stages/phone_prior.py) and writes the table; a changed table re-runs each plan stage.
    """
    from flows.quality import ALL_BY_NAME
    from flows.stage import load_sections
    from stages.pairs.clip import ClipSections
    from stages.phone_prior import build_table
    from stages.plan.prior import PHONE_OPENINGS
    from talkedit.atomic import write_text

    root = repo_root()
    target = _prior_paths(work, out or PHONE_OPENINGS)
    sections = ClipSections.of(**load_sections(ALL_BY_NAME["pairclip"], root))
    write_text(target, json.dumps(build_table(work, sections), indent=1) + "\n")
    typer.echo(f"wrote {target}")


@app.command("lip-prior")
@user_errors
def lip_prior(
    work: Annotated[Path, typer.Option(help="Folder the corpus clips are generated and fitted in (kept; reused when run again).")],
    out: Annotated[Path | None, typer.Option(help="Where to write the trunks (default: the shipped stages/lipsync/trunk.safetensors).")] = None,
    steps: Annotated[int, typer.Option(min=50, help="Optimiser steps of each kind's pretraining (the step best on the corpus clips' validation tails is kept).")] = 6000,
) -> None:
    """Rebuild the pretrained trunks each clip's lip model starts from (lipmodel.pretrained).

    Generates the corpus of stages/demo/corpus.py in WORK, fits each clip as the pair stages
    do, trains each kind's network on all of them with params.yaml's lipmodel settings
    (stages/lip_prior.py) and writes the trunks; a changed file re-runs each lipmodel stage.
    """
    from flows.quality import ALL_BY_NAME
    from flows.stage import load_sections
    from stages.lip_prior import build_trunks
    from stages.lipsync import LipModelParams
    from stages.lipsync.trunk import TRUNK_FILE
    from stages.pairs.clip import ClipSections
    from talkedit.atomic import write_safetensors
    from talkedit.params import load_section

    root = repo_root()
    target = _prior_paths(work, out or TRUNK_FILE)
    sections = ClipSections.of(**load_sections(ALL_BY_NAME["pairclip"], root))
    runs, data = build_trunks(work, sections, load_section(LipModelParams, root), steps,
                              progress=typer.echo)
    write_safetensors(target, data)
    typer.echo(f"wrote {target} (best steps: "
               + ", ".join(f"{kind} {run.best_step}" for kind, run in runs.items()) + ")")


def _prior_paths(work: Path, target: Path) -> Path:
    """A corpus command's --work and --out checked before any work: ``target``."""
    if target.is_dir():
        raise TalkeditError(target, "is a folder", "give a file path for --out")
    if work.exists() and not work.is_dir():
        raise TalkeditError(work, "is not a folder", "give a folder (new or kept) for --work")
    if not target.parent.is_dir():
        raise TalkeditError(target.parent, "is not a folder", "give --out in a folder that exists")
    return target


SCENE_STAGES = ("scenealign", "scenelabel", "scenecut", "scenerender")


@app.command()
@user_errors
def scene(
    name: Annotated[str, typer.Argument(metavar="SCENE", help="The scene (data/scenes/<SCENE>.yaml).")],
    recut: Annotated[bool, typer.Option(
        help="Only re-choose the cut and render it (after changing idiom weights).")] = False,
) -> None:
    """Cut a dialogue scene from its takes by its script and idioms, end to end.

    Aligns every take to the script, labels each line, chooses the cut and renders it:
    data/outputs/scenes/<SCENE>/ gets cut.parquet, cut.md, cut.otio and <SCENE>.mp4.
    """
    check_name(name, "scene")
    listed = load_params(repo_root()).get("scenes") or []
    if name not in listed:
        raise TalkeditError(f"scene {name!r}", f"is not listed in params.yaml scenes: "
                            f"({', '.join(map(str, listed)) or 'none'})",
                            "add it under scenes: in params.yaml")
    for stage in SCENE_STAGES[2:] if recut else SCENE_STAGES:
        _run(stage, name)


@app.command()
@user_errors
def report(
    clip: Annotated[str | None, typer.Argument(metavar="CLIP", help="The clip to report on.")] = None,
    edit: Annotated[str | None, typer.Option(
        metavar="EDIT", help="Report on this edit instead (the report-edit stage).")] = None,
) -> None:
    """Write an HTML report of what the stages decided (the report / report-edit stages).

    For a CLIP: reads its aligned words and phones, face fit, training losses, held-out
    crops and evaluate scores; writes reports/clip-<clip>.html. With --edit EDIT: reads the
    edit's plan, new phones, audio units, output and the clip's fit; writes
    reports/edit-<edit>.html. One page, images embedded: it opens offline.
    """
    if (clip is None) == (edit is None):
        raise TalkeditError("talkedit report", "needs a CLIP or --edit EDIT (one of them)",
                            "e.g. `talkedit report demo` or `talkedit report --edit demo`")
    if edit is not None:
        _run("report-edit", check_name(edit, "edit"))
    else:
        _run("report", check_name(clip, "clip"))


@app.command()
@user_errors
def verify(
    video: Annotated[Path, typer.Argument(help="The video to check.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
    trust: Annotated[list[Path] | None, typer.Option(
        help="A CA certificate (PEM) whose Content Credentials count as trusted; repeatable.")] = None,
) -> None:
    """Check a video for talkedit's watermarks and Content Credentials.

    Exit status: 0 edited, 1 no evidence, 3 inconsistent evidence (e.g. a manifest
    copied from another video), 2 error (missing or unreadable file). Uses the
    project's watermark key and trusted CAs inside a talkedit project, else the public key.
    """
    import json

    report = _verify_report(video, list(trust or []))
    typer.echo(json.dumps(report.to_json(), indent=2) if as_json else report.render())
    raise typer.Exit(report.exit_code)


def _verify_report(video: Path, trust: list[Path]) -> Any:
    """``verify_video``'s report, with the project's watermark key and trusted CAs."""
    from stages.composite.credentials import SigningSettings
    from stages.composite.verify import verify_video
    from stages.composite.watermark import WatermarkParams
    from talkedit.params import load_section
    from talkedit.video import open_container

    open_container(video).close()  # a missing or unreadable file is an error, not "not edited"
    root = repo_root()
    in_project = (root / PARAMS_FILE).is_file()
    params = load_section(WatermarkParams, root) if in_project else WatermarkParams()
    anchors = list(trust)
    if in_project:
        anchors += SigningSettings.of(params, root).trust_anchors()
    return verify_video(video, params, anchors)


# --- talkedit detect ----------------------------------------------------------------------


@app.command()
def detect(
    target: Annotated[str, typer.Argument(metavar="VIDEO|CLIP", help="A video file, or the name of a clip listed in params.yaml (the DVC stage).")],
    transcript: Annotated[Path | None, typer.Option(
        metavar="FILE", help="What is said (default: recognised offline with pocketsphinx).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
    out: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Also write windows.parquet, spans.parquet and the verdict here.")] = None,
) -> None:
    """Look for an edited mouth in any talking-head video, without trusting watermarks.

    Checks short windows for M/B/P sounds with an open mouth, audio-visual offset drift,
    jumps between frames and a mouth region unlike the rest of the face (thresholds in
    params.yaml detect:, calibrated by benchmarks/detect.py). Exit status: 0 manipulation
    found, 1 none found, 2 bad input (no face, no speech, unreadable file). On a clip
    name it is the DVC stage detect@<clip>: writes data/detect/<clip>/ and exits 0.
    """
    import json

    try:
        root = repo_root()
        in_project = (root / PARAMS_FILE).is_file()
        path = Path(target)
        if not path.exists() and in_project and re.fullmatch(r"[A-Za-z0-9_-]+", target):
            check_name(target, "clip")
            _run("detect", target)
            return
        if not path.is_file():
            raise TalkeditError(path, "video not found", "give the path of a video file")
        from stages.detect import DetectParams, detect_video
        from talkedit.params import load_section

        params = load_section(DetectParams, root) if in_project else DetectParams()
        if VERBOSE:
            quiet: contextlib.AbstractContextManager = contextlib.nullcontext()
        elif in_project:  # the stages' warnings go to the project's log, like a stage's
            quiet = _native_stderr_to(_quiet_prefect())
        else:  # no project to log into: warnings are dropped, the verdict says enough
            logging.getLogger().addHandler(logging.NullHandler())
            quiet = _native_stderr_to(Path(os.devnull))
        with quiet:
            verdict = detect_video(path, transcript, params, out)
    except TalkeditError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(verdict.to_json(), indent=2) if as_json else verdict.render())
    raise typer.Exit(verdict.exit_code)


# --- talkedit edit ----------------------------------------------------------------------

_RUNNING = re.compile(r"^Running stage '([^']+)'")
_SKIPPED = re.compile(r"^Stage '([^']+)' didn't change, skipping")


class ReproProgress:
    """One line per DVC stage from ``dvc repro``'s output: its name and how long it took
    (or that it was up to date); on a terminal, a running line with the stage's last
    time as its ETA (from data/runs/), overwritten when it ends."""

    def __init__(self, root: Path, emit: Callable[[str, bool], None], live: bool = False
                 ) -> None:
        self.root, self.emit, self.live = root, emit, live
        self.current: str | None = None
        self.started = 0.0
        self.done: list[tuple[str, float | None]] = []

    def _eta(self, stage: str) -> float | None:
        """The newest run report's wall time for this stage (any item), if there is one."""
        import json

        name = stage.split("@")[0]
        reports = sorted((self.root / "data" / "runs").glob(f"{name}-*.json"),
                         key=lambda p: p.stat().st_mtime)
        for path in reversed(reports):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                return float(json.loads(path.read_text()).get("wall_seconds"))
        return None

    def _finish(self, now: float) -> None:
        if self.current is not None:
            elapsed = now - self.started
            self.done.append((self.current, elapsed))
            self.emit(f"  {self.current:<32} done in {elapsed:6.1f} s", True)
            self.current = None

    def feed(self, line: str, now: float) -> None:
        running, skipped = _RUNNING.match(line), _SKIPPED.match(line)
        if running:
            self._finish(now)
            self.current, self.started = running.group(1), now
            if self.live:
                eta = self._eta(self.current)
                hint = f" (last time {eta:.0f} s)" if eta is not None else ""
                self.emit(f"  {self.current:<32} running...{hint}", False)
        elif skipped:
            self._finish(now)
            self.done.append((skipped.group(1), None))
            self.emit(f"  {skipped.group(1):<32} up to date", True)

    def close(self, now: float, ok: bool) -> None:
        if ok:
            self._finish(now)
        elif self.current is not None:
            self.emit(f"  {self.current:<32} FAILED after {now - self.started:.1f} s", True)
            self.current = None


def _repro(root: Path, target: str, log_path: Path) -> tuple[int, list[str]]:
    """``dvc repro <target>`` with a progress line per stage; its output goes to log_path.
    Returns dvc's exit status and the error lines it and the stages printed."""
    import time

    from talkedit import dvcrun

    live = sys.stdout.isatty()

    def emit(text: str, final: bool) -> None:
        if live:
            sys.stdout.write("\r\033[K" + text + ("\n" if final else ""))
        elif final:
            sys.stdout.write(text + "\n")
        sys.stdout.flush()

    progress = ReproProgress(root, emit, live)
    code, errors = dvcrun.repro(root, target, log_path,
                                lambda line: progress.feed(line, time.monotonic()))
    progress.close(time.monotonic(), code == 0)
    return code, errors


@app.command()
@user_errors
def edit(
    clip: Annotated[str, typer.Argument(metavar="CLIP", help="The clip to edit (listed under clips: in params.yaml).")],
    replace: Annotated[list[str] | None, typer.Option(
        "--replace", metavar="OLD", help="Words of the transcript to replace; repeatable, each with its --with.")] = None,
    with_: Annotated[list[str] | None, typer.Option(
        "--with", metavar="NEW", help="The new words for the --replace before it.")] = None,
    insert_after: Annotated[list[str] | None, typer.Option(
        metavar="WORDS", help="Insert new words after these words of the transcript; each with its --text.")] = None,
    text: Annotated[list[str] | None, typer.Option(
        metavar="NEW", help="The new words for the --insert-after before it.")] = None,
    delete: Annotated[list[str] | None, typer.Option(
        metavar="OLD", help="Words of the transcript to cut; repeatable.")] = None,
    text_file: Annotated[Path | None, typer.Option(
        metavar="FILE", help="A file with the whole edited transcript (instead of the operations).")] = None,
    audio: Annotated[str | None, typer.Option(
        metavar="SOURCE", help="Where the new words' sound comes from: speaker (the clip's own voice), "
             "synthetic (espeak-ng) or PATH.wav (your recording of them); default: "
             "params.yaml audio.source.")] = None,
    mouth_motion: Annotated[str | None, typer.Option(
        metavar="SOURCE", help="Where the new words' mouth motion comes from: search (pieces of "
             "the clip's footage, the default) or audio (the clip's audio-to-expression model, "
             "lipmodel@CLIP).")] = None,
    name: Annotated[str | None, typer.Option(
        metavar="EDIT", help="The edit's name (default: <clip>-<new words>, numbered to be unique).")] = None,
    force: Annotated[bool, typer.Option(
        help="Replace an existing, different edit of that --name.")] = False,
    run: Annotated[bool, typer.Option(
        "--run/--no-run", help="Run `dvc repro` for the edit (--no-run: only write it).")] = True,
) -> None:
    """Edit a clip in one command: check, write, register and render the edit.

    Checks every phrase against data/raw/<clip>.txt first (a phrase that is not there
    fails at once, offering the nearest ones, and nothing is written); writes
    data/edits/<edit>/edit.yaml (and your WAV there as recording.wav); lists the edit
    under edits: in params.yaml (comments and order kept); runs `dvc repro
    report-edit@<edit>` (plan, audio, render, composite, compare, report; the clip's stages
    too when out of date), a line per stage, its output in data/runs/edit-<edit>.log;
    prints data/outputs/<edit>.mp4, the before/after video, reports/edit-<edit>.html and
    the output's verdict.
    """
    from talkedit.authoring import check_request, choose_name, make_request, register_edit
    from talkedit.authoring import write_edit as write_spec

    root = repo_root()
    if not (root / PARAMS_FILE).is_file():
        raise TalkeditError(Path.cwd(), f"is not a talkedit project (no {PARAMS_FILE} here or "
                            "above)", "run talkedit in the project folder")
    req = make_request(clip, replace or [], with_ or [], insert_after or [], text or [],
                       delete or [], text_file, audio, mouth_motion)
    edited = check_request(req, root)
    edit_name = choose_name(req, root, name, force)
    spec_path = write_spec(edit_name, req, root)
    register_edit(root, edit_name, req.clip)
    typer.echo(f"edit {edit_name}: {spec_path.relative_to(root)} (listed in {PARAMS_FILE})")
    typer.echo(f"  new text: {edited}")
    if not run:
        typer.echo(f"run it with: dvc repro report-edit@{edit_name}")
        return
    from talkedit.artifacts import EditPaths, report_path

    # report-edit depends on composite's output and on compare's: one target runs them all
    output = EditPaths.of(edit_name, root).output
    _repro_and_verify(root, f"report-edit@{edit_name}", f"edit-{edit_name}", output,
                      {"before/after": output.with_name(f"{edit_name}.compare.mp4"),
                       "report": report_path("edit", edit_name, root)},
                      EditPaths.of(edit_name, root).summary)


def _repro_and_verify(root: Path, target: str, log_name: str, output: Path,
                      also: dict[str, Path] | None = None, plan_summary: Path | None = None,
                      metrics: Path | None = None) -> None:
    """``dvc repro target`` with progress, then the output's path (and ``also``'s) and
    verdict, and the warnings of the plan whose ``plan_summary`` is given and of the
    stage whose ``metrics`` JSON is given (its "warnings"); exits."""
    from talkedit.dvcrun import first_cause

    log_path = root / "data" / "runs" / f"{log_name}.log"
    typer.echo(f"dvc repro {target}  (log: {log_path.relative_to(root)})")
    code, errors = _repro(root, target, log_path)
    if code != 0:
        cause = first_cause(errors, code)  # the stage's own error line says what to fix
        typer.echo(f"error: {cause} (dvc repro {target} stopped; its log: "
                   f"{log_path.relative_to(root)})", err=True)
        raise typer.Exit(2)
    output = Path(os.path.relpath(output))
    typer.echo(f"output: {output}")
    for label, path in (also or {}).items():
        typer.echo(f"{label}: {Path(os.path.relpath(path))}")
    report = _verify_report(output, [])
    typer.echo(f"verify: {report.render().splitlines()[0]}")
    if plan_summary is not None and plan_summary.is_file():
        echo_plan_warnings(plan_summary.read_text())
    if metrics is not None and metrics.is_file():
        echo_warnings(json.loads(metrics.read_text()).get("warnings", []))
    raise typer.Exit(0 if report.exit_code == 0 else report.exit_code)


def echo_plan_warnings(summary: str) -> None:
    """The plan's warnings as ``warning:`` lines on stderr, with its quality screen when it
    warned (issue 15: an edit the plan doubts must not look finished where it is made)."""
    from stages.report import plan_screen

    warned, quality = plan_screen(summary)
    echo_warnings(warned)
    for line in quality if warned else []:
        typer.echo(f"  {line}", err=True)


# --- talkedit lipsync ---------------------------------------------------------------------


def _lipsync_audio(audio: str, root: Path) -> tuple[dict[str, Any] | str, Path | None]:
    """The job spec's ``audio:`` for the command's AUDIO, and a WAV to copy into the job."""
    if audio.startswith("clip:"):
        return {"clip": check_name(audio.removeprefix("clip:"), "clip")}, None
    if audio.startswith("text:"):
        words = audio.removeprefix("text:").strip()
        if not words:
            raise TalkeditError("AUDIO text:", "names no words", "e.g. 'text:Hello there.'")
        return {"text": words}, None
    path = Path(audio)
    if not path.is_file():
        raise TalkeditError(path, "not found", "give a WAV file, clip:<name> or text:<words>")
    if path.suffix.lower() != ".wav":
        raise TalkeditError(path, "is not a WAV file",
                            "convert it, e.g. ffmpeg -i take.mp3 -ar 16000 -ac 1 take.wav")
    # Silent or speechless audio fails now, before anything is written.
    from stages.lipsync import LipsyncParams
    from stages.lipsync.features import check_speech
    from stages.lipsync.job import read_any_wav
    from talkedit.params import load_section

    opts = load_section(LipsyncParams, root)
    check_speech(read_any_wav(path)[0], path, opts.silence_dbfs, opts.min_pause_share)
    return "audio.wav", path


@app.command()
@user_errors
def lipsync(
    clip: Annotated[str, typer.Argument(metavar="CLIP", help="The clip whose person speaks (listed under clips: in params.yaml).")],
    audio: Annotated[str, typer.Argument(metavar="AUDIO", help="The new speech: a WAV file, clip:<name> (another clip's soundtrack) or text:<words> (espeak-ng says them).")],
    span: Annotated[tuple[float, float] | None, typer.Option(
        metavar="START END", help="The clip's seconds the speech replaces (default: the whole clip).")] = None,
    name: Annotated[str | None, typer.Option(
        metavar="JOB", help="The job's name (default: <clip>-lipsync, numbered to be unique).")] = None,
    run: Annotated[bool, typer.Option(
        "--run/--no-run", help="Run `dvc repro` for the job (--no-run: only write it).")] = True,
    transcript: Annotated[str | None, typer.Option(
        metavar="WORDS", help="The words a WAV or clip:<name> says: aligned to it, they move the "
        "mouth towards the clip's own model of those phones (lipsync.phone_share).")] = None,
) -> None:
    """Make CLIP's person say AUDIO: write, register and render a lip-sync job.

    Writes data/lipsync/<job>/job.yaml (your WAV copied there as audio.wav); lists the
    job under lipsync_jobs: in params.yaml; runs `dvc repro lipcomposite@<job>` (the clip's
    lip model, trained by lipmodel@<clip>, too when out of date), a line per stage, its
    output in data/runs/lipsync-<job>.log; prints data/outputs/<job>.mp4 and its verdict.
    """
    import yaml

    from talkedit.artifacts import ClipPaths, EditPaths, LipModelPaths, LipsyncPaths
    from talkedit.atomic import write_bytes, write_text
    from talkedit.authoring import check_clip_has_speech, register_edit

    root = repo_root()
    if not (root / PARAMS_FILE).is_file():
        raise TalkeditError(Path.cwd(), f"is not a talkedit project (no {PARAMS_FILE} here or "
                            "above)", "run talkedit in the project folder")
    clip_paths = ClipPaths.of(clip, root)
    if not clip_paths.video.is_file():
        raise TalkeditError(clip_paths.video, "not found", "put the clip there (or run talkedit demo)")
    check_clip_has_speech(root, clip, "lip sync (a model of the person's own speech)")
    spec_audio, wav = _lipsync_audio(audio, root)
    if transcript is not None and isinstance(spec_audio, dict) and "text" in spec_audio:
        raise TalkeditError(f"--transcript {transcript!r}", "is given with text: audio, whose "
                            "words are already known", "leave --transcript out")
    if transcript is not None and not transcript.strip():
        raise TalkeditError("--transcript", "is empty", "give the words the WAV or clip audio "
                            "says, or leave --transcript out")
    if span is not None and not 0 <= span[0] < span[1]:
        raise TalkeditError(f"--span {span[0]} {span[1]}", "is not START END with START < END",
                            "e.g. --span 4.0 12.5")
    names = (f"{clip}-lipsync" + ("" if k == 1 else f"-{k}") for k in range(1, 1000))
    job = name or next(n for n in names if not LipsyncPaths.of(n, root).inputs.exists())
    paths = LipsyncPaths.of(job, root)
    if EditPaths.of(job, root).inputs.exists():
        raise TalkeditError(f"job name {job!r}", "is an edit's name too", "give another --name")
    spec: dict[str, Any] = {"clip": clip, "audio": spec_audio}
    if transcript is not None:
        spec["transcript"] = transcript.strip()
    if span is not None:
        spec["span"] = [float(span[0]), float(span[1])]
    paths.inputs.mkdir(parents=True, exist_ok=True)
    if wav is not None:
        with open(wav, "rb") as fh:
            write_bytes(paths.inputs / "audio.wav", fh.read())
    write_text(paths.spec, yaml.safe_dump(spec, sort_keys=False))
    register_edit(root, job, clip, section="lipsync_jobs")
    typer.echo(f"lip-sync job {job}: {paths.spec.relative_to(root)} (listed in {PARAMS_FILE})")
    if not run:
        typer.echo(f"run it with: dvc repro lipcomposite@{job}")
        return
    _repro_and_verify(root, f"lipcomposite@{job}", f"lipsync-{job}",
                      EditPaths.of(job, root).output,
                      metrics=LipModelPaths.of(clip, root).metrics)


# --- talkedit reenact ---------------------------------------------------------------------


@app.command()
@user_errors
def reenact(
    job: Annotated[str, typer.Argument(metavar="JOB", help="The job (data/reenact/<JOB>.yaml); written first when --target and --source are given.")],
    target: Annotated[str | None, typer.Option(
        metavar="CLIP", help="The clip whose face is driven (its renderer is trained if need be).")] = None,
    source: Annotated[str | None, typer.Option(
        metavar="CLIP", help="The clip whose face drives it.")] = None,
    mode: Annotated[str, typer.Option(
        metavar="MODE", help="expression (Face2Face) | portrait (Deep Video Portraits: head motion, gaze and blinks too).")] = "expression",
    source_span: Annotated[tuple[float, float] | None, typer.Option(
        metavar="START END", help="The source's seconds that drive (default: all of it).")] = None,
    target_start: Annotated[float, typer.Option(
        metavar="SECONDS", help="Where on the target the source's span lands.")] = 0.0,
    keep_rest: Annotated[bool, typer.Option(
        "--keep-rest/--span-only", help="Keep the target's other frames in the output.")] = True,
    run: Annotated[bool, typer.Option(
        "--run/--no-run", help="Run `dvc repro` for the job (--no-run: only write it).")] = True,
) -> None:
    """Reenact: make TARGET's face follow SOURCE's expressions (Face2Face; --mode portrait: its
    head motion, gaze and blinks too), end to end.

    With --target and --source, checks both clips first (one frame rate, a target long
    enough to train on, a face in the source; a failing check writes nothing), writes
    data/reenact/<JOB>.yaml and lists the job under reenact_jobs: (and both clips under
    clips:, or video_clips: for one without a transcript or sound) in params.yaml. Then runs `dvc repro reenactcomposite@<JOB>` (both clips'
    extract and fit, the target's renderer, the transfer, render and composite), a line
    per stage, its output in data/runs/reenact-<JOB>.log; prints data/outputs/<JOB>.mp4
    and its verdict.
    """
    import yaml

    from stages.reenact import ReenactParams
    from stages.reenact.check import check_clips
    from stages.reenact.spec import load_reenact
    from talkedit.artifacts import ClipPaths, ReenactPaths
    from talkedit.atomic import write_text
    from talkedit.authoring import VIDEO_CLIPS, clip_has_speech, register_clip, register_edit
    from talkedit.params import load_section

    root = _project_root()
    paths = ReenactPaths.of(job, root)
    if (target is None) != (source is None):
        raise TalkeditError("--target/--source", "only one of the two is given",
                            "give both (to write the job) or neither (to run data/reenact/"
                            f"{job}.yaml)")
    if target is not None and source is not None:
        target, source = ClipPaths.of(target, root).clip, ClipPaths.of(source, root).clip
        if source_span is not None and not 0 <= source_span[0] < source_span[1]:
            raise TalkeditError(f"--source-span {source_span[0]} {source_span[1]}",
                                "is not START END with START < END", "e.g. --source-span 1 6")
        check_clips(target, source, root, load_section(ReenactParams, root))
        spec: dict[str, Any] = {"target": target, "source": source, "mode": mode}
        if source_span is not None:
            spec["source_span"] = [float(source_span[0]), float(source_span[1])]
        spec.update({"target_start_s": float(target_start), "keep_rest": keep_rest})
        if paths.spec.is_file():
            raise TalkeditError(paths.spec, "exists already", "give another JOB name, or run "
                                f"it as it is: talkedit reenact {job}")
        write_text(paths.spec, yaml.safe_dump(spec, sort_keys=False))
        try:
            load_reenact(job, root)  # the written spec reads back (mode, names)
        except TalkeditError:
            paths.spec.unlink()
            raise
        for clip in dict.fromkeys((target, source)):  # one without speech: video_clips:
            register_clip(root, clip, "clips" if clip_has_speech(root, clip) else VIDEO_CLIPS)
        register_edit(root, job, target, section="reenact_jobs",
                      fields={"target": target, "source": source})
        typer.echo(f"reenactment job {job}: {paths.spec.relative_to(root)} (listed in "
                   f"{PARAMS_FILE})")
    else:
        spec_read = load_reenact(job, root)
        check_clips(spec_read.target, spec_read.source, root, load_section(ReenactParams, root))
    if not run:
        typer.echo(f"run it with: dvc repro reenactcomposite@{job}")
        return
    _repro_and_verify(root, f"reenactcomposite@{job}", f"reenact-{job}",
                      paths.outputs.output)


# --- scheduled runs ----------------------------------------------------------------------


def _project_root() -> Path:
    root = repo_root()
    if not (root / PARAMS_FILE).is_file():
        raise TalkeditError(Path.cwd(), f"is not a talkedit project (no {PARAMS_FILE} here or "
                            "above)", "run talkedit in the project folder")
    return root


@app.command()
@user_errors
def watch() -> None:
    """Run one scheduled pass now: take in the watched folder, run what changed.

    Copies new clips (inbox/<clip>.mp4 + .txt) to data/raw/ and new edits
    (inbox/edits/<edit>/) to data/edits/, lists them in params.yaml, then runs `dvc repro`
    for every clip's and edit's target (params.yaml watch:) that is out of date. A failed
    item fails alone; the exit status is 1 when any did. Logs: data/runs/watch-*.log.
    """
    root = _project_root()
    quiet = contextlib.nullcontext() if VERBOSE else _native_stderr_to(_quiet_prefect())
    with quiet:
        from flows.watch import watch_inbox

        state = watch_inbox(str(root), return_state=True)
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, dict):
        _print_summary(outcome)
    if not state.is_completed():
        typer.echo(f"error: {state.message}", err=True)
        raise typer.Exit(1)


@app.command()
@user_errors
def serve(cron: Annotated[str | None, typer.Option(
        help="When to run a pass, cron syntax (default: params.yaml watch.cron).")] = None) -> None:
    """Serve the scheduled pass (`talkedit watch`) on a cron schedule until stopped.

    Needs the project's Prefect server (`talkedit server start`); each run shows in its UI
    as a flow run of the deployment watch/talkedit-watch.
    """
    from talkedit.inbox import WatchParams
    from talkedit.params import build, load_section
    from talkedit.prefect_env import server_url_if_healthy

    root = _project_root()
    params = load_section(WatchParams, root)
    if cron is not None:
        params = build(WatchParams, {**params.__dict__, "cron": cron}, "--cron")
    if server_url_if_healthy() is None:
        raise TalkeditError("the Prefect server", "is not running (a schedule needs one)",
                            "start it with: talkedit server start")
    from flows.watch import serve as serve_flow

    typer.echo(f"serving talkedit watch on {params.cron!r}; Ctrl-C stops")
    serve_flow(root, params.cron)


@server_app.command("start")
@user_errors
def server_start(port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 4200) -> None:
    """Start (or reuse) the project's Prefect server; stages then use it automatically."""
    from talkedit import server

    url = server.start(port)
    typer.echo(f"Prefect server: {url}  (UI: {url.removesuffix('/api')})")


@server_app.command("stop")
def server_stop() -> None:
    """Stop the project's Prefect server."""
    from talkedit import server

    typer.echo("stopped" if server.stop() else "no server was running")


@server_app.command("status")
def server_status() -> None:
    """Say whether the project's Prefect server answers."""
    from talkedit.prefect_env import server_url_if_healthy

    url = server_url_if_healthy()
    typer.echo(f"running: {url}" if url else "not running (stages use a temporary server)")
    if not url:
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover - entry point
    sys.exit(app())
