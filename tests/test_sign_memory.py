"""Signing Content Credentials onto a long output takes flat memory (issue 15: long inputs).

c2pa's defaults held an output under 512 MB in memory twice over while signing it (a
10-minute edit: +940 MB), and hashed bigger ones in 256 MB buffers (31 minutes: +490 MB);
``sign_content_credentials`` has it hash the movie data as a Merkle tree of 16 MB leaves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np

from stages.composite import provenance as pv
from talkedit.video import VideoWriter
from tests.conftest import REPO

_SIGN = """
import json, sys
from pathlib import Path
from stages.composite import provenance as pv
from stages.composite.credentials import make_credentials
def kb(key):
    return int([ln for ln in open('/proc/self/status') if ln.startswith(key)][0].split()[1])
video, work = Path(sys.argv[1]), Path(sys.argv[2])
creds = make_credentials(work / 'c2pa', 'talkedit test signer')
manifest = pv.build_manifest(source_video=video, transcript=None, edit_spec={'clip': 'big'})
before = kb('VmHWM')
pv.sign_content_credentials(video, manifest, creds, work / 'signed.mp4')
print(json.dumps({'extra_mb': (kb('VmHWM') - before) / 1024}))
"""


def _big_mp4(path: Path, target_mb: float) -> int:
    """An MP4 of about ``target_mb``: one lossless noise frame's packet, repeated."""
    one = path.with_name("one.mp4")
    rng = np.random.default_rng(0)
    with VideoWriter(one, 1920, 1080, 25, crf=0, preset="ultrafast") as out:
        out.write(rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8))
    with av.open(str(one)) as src:
        packet = next(p for p in src.demux(src.streams.video[0]) if p.size)
        data, template = bytes(packet), src.streams.video[0]
        with av.open(str(path), "w", format="mp4") as dst:
            stream = dst.add_stream_from_template(template)
            copies = int(target_mb * 1e6 / len(data)) + 1
            for k in range(copies):
                p = av.Packet(data)
                p.stream, p.time_base = stream, template.time_base
                p.pts = p.dts = int(round(k / 25 / template.time_base))
                p.is_keyframe = True
                dst.mux(p)
    return path.stat().st_size


def test_signing_a_long_output_takes_flat_memory(tmp_path: Path) -> None:
    video = tmp_path / "big.mp4"
    size_mb = _big_mp4(video, 150) / 1e6
    assert size_mb > 140
    proc = subprocess.run([sys.executable, "-c", _SIGN, str(video), str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO, check=True)
    extra_mb = json.loads(proc.stdout.strip().splitlines()[-1])["extra_mb"]
    assert extra_mb < 0.25 * size_mb, extra_mb  # 2x the file with c2pa's defaults
    signed = pv.read_content_credentials(tmp_path / "signed.mp4")
    assert signed.state == "untrusted"  # a good signature over this file (a local CA)
