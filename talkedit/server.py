"""``talkedit server``: a local Prefect server on 127.0.0.1 for the UI and fast stages."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from talkedit.atomic import write_json
from talkedit.errors import TalkeditError
from talkedit.prefect_env import SERVER_FILE, prefect_home, server_url_if_healthy


def start(port: int = 4200, wait_s: float = 90.0) -> str:
    """Start (or reuse) the server; return its API URL once it answers."""
    url = server_url_if_healthy()
    if url:
        return url
    home = prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_UI_ENABLED": "true"}
    env.pop("PREFECT_API_URL", None)
    log = open(home / "server.log", "ab")  # noqa: SIM115 - handed to the detached server
    prefect = Path(sys.executable).with_name("prefect")
    proc = subprocess.Popen(
        [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        start_new_session=True,
    )
    api_url = f"http://127.0.0.1:{port}/api"
    write_json(home / SERVER_FILE, {"api_url": api_url, "pid": proc.pid, "port": port})
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise TalkeditError(f"port {port}", "the Prefect server exited at start-up",
                                f"see {home / 'server.log'}; is the port taken? try --port")
        if server_url_if_healthy():
            return api_url
        time.sleep(0.5)
    raise TalkeditError(f"port {port}", f"the Prefect server did not answer within {wait_s:.0f} s",
                        f"see {home / 'server.log'}")


def stop() -> bool:
    info_path = prefect_home() / SERVER_FILE
    if not info_path.is_file():
        return False
    pid = json.loads(info_path.read_text()).get("pid")
    info_path.unlink(missing_ok=True)
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError, TypeError):
        return False
    return True
