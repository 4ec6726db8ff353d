"""Where Prefect keeps its state, and which server the stages talk to.

Imported before Prefect itself (flows/__init__.py does it), so settings land
before Prefect reads its environment:

* PREFECT_HOME defaults to ``<repo>/.prefect``: the project's state stays in the
  project, not the user's home (a user's own PREFECT_HOME wins).
* Analytics are off.
* If ``talkedit server start`` left a healthy server on 127.0.0.1, every stage
  uses it (about 1 s per stage); otherwise Prefect runs a temporary in-process
  server (8-18 s to start), given a longer start-up timeout for 2-core machines.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

from talkedit.params import repo_root

SERVER_FILE = "server.json"


def prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME") or repo_root() / ".prefect")


def server_url_if_healthy(timeout_s: float = 1.0) -> str | None:
    """The URL of the project's running Prefect server, if it answers its health check."""
    info = prefect_home() / SERVER_FILE
    if not info.is_file():
        return None
    try:
        url = json.loads(info.read_text())["api_url"]
        with urllib.request.urlopen(f"{url}/health", timeout=timeout_s) as resp:  # noqa: S310 - loopback
            return url if resp.status == 200 else None
    except (OSError, ValueError, KeyError):
        return None


def configure() -> None:
    os.environ.setdefault("PREFECT_HOME", str(prefect_home()))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    if "PREFECT_API_URL" not in os.environ:
        url = server_url_if_healthy()
        if url:
            os.environ["PREFECT_API_URL"] = url
