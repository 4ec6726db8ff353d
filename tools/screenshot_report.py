"""Screenshot a talkedit HTML report in headless Chromium and list the page's console errors.

    python tools/screenshot_report.py reports/edit-demo.html [-o shot.png] [--width 1300]

Debian's ``chromium`` (``apt-get install -y chromium``) renders the page from its file
(no network: the page holds everything), at a tall window, and the empty space under the
page is trimmed off. Console messages come from Chromium's own log (``--enable-logging=
stderr``); a page that logs an error, or a render that fails, exits with status 1.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

CONSOLE = re.compile(r":(INFO|WARNING|ERROR):CONSOLE[^\]]*\] (.*)")
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def screenshot(page: Path, out: Path, width: int = 1300, height: int = 12000,
               timeout_s: float = 120) -> list[str]:
    """Write ``out`` (PNG) and return the console messages the page logged."""
    browser = find_chromium()
    if browser is None:
        raise FileNotFoundError("no chromium on PATH: apt-get install -y chromium")
    with tempfile.TemporaryDirectory(prefix="talkedit-chromium-") as profile:
        proc = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
             "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
             f"--window-size={width},{height}", f"--screenshot={out}",
             page.resolve().as_uri()],
            capture_output=True, text=True, timeout=timeout_s, check=False)
    if proc.returncode != 0 or not out.is_file():
        raise RuntimeError(f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}")
    trim_bottom(out)
    return [m.group(2) for line in proc.stderr.splitlines() if (m := CONSOLE.search(line))]


def trim_bottom(path: Path, margin: int = 24) -> None:
    """Cut the rows under the page's last non-background row."""
    image = cv2.imread(str(path))
    background = image[-1, -1].astype(int)
    differs = np.abs(image.astype(int) - background).max(axis=(1, 2)) > 6
    rows = np.flatnonzero(differs)
    if len(rows):
        cv2.imwrite(str(path), image[: min(len(image), rows[-1] + margin)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("-o", "--out", type=Path, default=None)
    parser.add_argument("--width", type=int, default=1300)
    parser.add_argument("--height", type=int, default=12000)
    args = parser.parse_args()
    out = args.out or args.page.with_suffix(".png")
    messages = screenshot(args.page, out, args.width, args.height)
    size = args.page.stat().st_size
    print(f"{out}  (page {size / 1e6:.2f} MB, {len(messages)} console messages)")
    for message in messages:
        print(f"console: {message}")
    return 1 if messages else 0


if __name__ == "__main__":
    sys.exit(main())
