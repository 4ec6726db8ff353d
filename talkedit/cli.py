"""The ``talkedit`` command: one subcommand per pipeline stage, plus tools.

Each stage subcommand runs the same Prefect flow that its DVC stage runs, for
one clip or edit: ``talkedit extract demo`` is what ``dvc repro extract@demo``
calls. A user-fixable problem prints one ``error:`` line and exits with 2.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from talkedit.errors import TalkeditError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Edit a talking-head video by editing its transcript.")
server_app = typer.Typer(no_args_is_help=True, help="A local Prefect server (UI at 127.0.0.1).")
app.add_typer(server_app, name="server")

F = TypeVar("F", bound=Callable[..., Any])


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


def _print_summary(summary: dict[str, Any]) -> None:
    for key, value in summary.items():
        typer.echo(f"{key}: {value}")


@app.command()
@user_errors
def demo(
    face: Annotated[Path | None, typer.Option(help="A frontal face photo (default: skimage's astronaut).")] = None,
    text: Annotated[Path | None, typer.Option(help="A text file to speak (default: the bundled script).")] = None,
    voice: Annotated[str | None, typer.Option(help="espeak-ng voice, e.g. en-us, en-gb, en-us+f3.")] = None,
    rate: Annotated[int | None, typer.Option(help="Speaking rate in words per minute.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for head motion and lighting.")] = None,
    name: Annotated[str | None, typer.Option(help="Clip name (files are <name>.mp4, <name>.txt...).")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: data/raw).")] = None,
    size: Annotated[int | None, typer.Option(help="Frame size in pixels (square).")] = None,
) -> None:
    """Make a synthetic talking-head clip with exact ground truth (the `demo` stage)."""
    from flows.demo import demo_flow
    from stages.demo import DemoOptions
    from talkedit.params import section

    opts = DemoOptions.from_params(section("demo"), face=str(face) if face else None,
                                   text=str(text) if text else None, voice=voice,
                                   rate_wpm=rate, seed=seed, name=name, size=size)
    _print_summary(demo_flow(opts, out))


# Per-clip and per-edit stages: (DVC stage, what its argument names, help). Each runs
# flows/<stage>.py's `<stage>_flow`, exactly what `dvc repro <stage>@<item>` runs.
STAGES: list[tuple[str, str, str]] = [
    ("extract", "clip", "Decode a clip into its constant-rate frame timeline and 16 kHz audio."),
    ("align", "clip", "Align the transcript to the audio: word and phone timings."),
    ("fit", "clip", "Fit the 3D face model: landmarks, expression, pose, illumination, crops."),
    ("index", "clip", "Index the clip's visemes for the edit search."),
    ("plan", "edit", "Plan an edit: viseme search, retiming and blending, frame by frame."),
    ("audio", "edit", "Build the edit's soundtrack: the new words in the speaker's voice."),
    ("train", "clip", "Train the clip's neural face renderer."),
    ("render", "edit", "Render the generated face crops of an edit's plan."),
    ("composite", "edit", "Composite, watermark and encode the edited video with its provenance."),
    ("evaluate", "clip", "Score held-out sentences re-created through the edit path, with baselines."),
]


def _precheck(stage: str, kind: str, item: str) -> None:
    """Cheap input checks before a Prefect run starts, so bad input fails in a second."""
    from talkedit.params import check_name

    check_name(item, kind)
    if stage == "extract":
        from stages.extract import check_clip_inputs

        check_clip_inputs(item)


def _stage_command(stage: str, kind: str, help_text: str) -> None:
    def command(item: str = typer.Argument(..., metavar=kind.upper(), help=f"The {kind}'s name.")) -> None:
        import importlib

        _precheck(stage, kind, item)
        run = getattr(importlib.import_module(f"flows.{stage}"), f"{stage}_flow")
        _print_summary(run(item))

    command.__doc__ = help_text
    app.command(name=stage)(user_errors(command))


for _stage, _kind, _help in STAGES:
    _stage_command(_stage, _kind, _help)


@app.command()
@user_errors
def verify(
    video: Annotated[Path, typer.Argument(help="The video to check.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
    trust: Annotated[list[Path] | None, typer.Option(
        help="A CA certificate (PEM) whose Content Credentials count as trusted; repeatable.")] = None,
) -> None:
    """Check a video for talkedit's watermark and Content Credentials.

    Exit status: 0 edited, 1 no evidence, 3 inconsistent evidence (e.g. a manifest
    copied from another video), 2 error (missing or unreadable file).
    """
    import json

    from stages.composite.credentials import SigningSettings
    from stages.composite.verify import verify_video
    from talkedit.params import repo_root, section
    from talkedit.video import open_container

    open_container(video).close()  # a missing or unreadable file is an error, not "not edited"
    anchors: list[Path] = list(trust or [])
    if (repo_root() / "params.yaml").is_file():
        anchors += SigningSettings.from_section(section("watermark"), repo_root()).trust_anchors()
    report = verify_video(video, trust_anchors=anchors)
    typer.echo(json.dumps(report.to_json(), indent=2) if as_json else report.render())
    raise typer.Exit(report.exit_code)


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
