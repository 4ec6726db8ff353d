"""Landmark topologies: which point is which, for every landmarker the stage supports.

The person model, the mouth measure and the lower-face mask only need a few
named groups of points (inner lips, eye corners, rigid skull points, the face
outline), so each landmarker declares them here once and the rest of the stage
is topology-agnostic.

Triangle mesh:
* ``mediapipe`` (478 points): the triangles of MediaPipe's canonical face mesh.
  The mediapipe wheel ships them only as the edge set
  ``mp.solutions.face_mesh_connections.FACEMESH_TESSELATION`` (the 852
  triangles' edges, deduplicated); the triangles are recovered as the 3-cliques
  of that edge graph, minus the two "separating" 3-cliques whose three edges
  already border two real triangles each. The 10 iris points (468-477) have no
  triangles.
* ``ibug68`` (face-alignment / FAN): no mesh ships with it, so the model builds
  a Delaunay triangulation of its own mean shape (``triangles=None`` here).
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import numpy as np

from talkedit.errors import TalkeditError


@dataclass(frozen=True)
class Topology:
    name: str
    n_points: int
    inner_lip_pairs: tuple[tuple[int, int], ...]  # (upper, lower) inner-lip points facing each other
    eye_outer: tuple[int, int]  # subject's right (image left), subject's left outer eye corner
    rigid: tuple[int, ...]  # points that move with the skull only (no jaw, lips, brows, lids)
    face_oval: tuple[int, ...]  # the face outline as a ring, from the top of the head
    nose_bottom: int  # under the nose tip: the lower-face mask's upper boundary
    shading_exclude: tuple[int, ...]  # lips, eyes, brows, irises: their colour changes with expression
    triangles: np.ndarray | None  # (T, 3) int32, or None to triangulate the mean shape


@lru_cache(maxsize=1)
def face_mesh_connections() -> ModuleType:
    """MediaPipe's face-mesh connection tables (a module of constants), read from its file
    without importing the mediapipe package: that import pulls in matplotlib (2-3 s of
    every render process, which never runs MediaPipe itself)."""
    name = "mediapipe.python.solutions.face_mesh_connections"
    if name in sys.modules:
        return sys.modules[name]
    package = importlib.util.find_spec("mediapipe")
    if package is None or package.origin is None:
        raise TalkeditError("mediapipe", "is not installed", "pip install mediapipe")
    path = Path(package.origin).parent / "python" / "solutions" / "face_mesh_connections.py"
    spec = importlib.util.spec_from_file_location(f"_talkedit_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise TalkeditError(path, "cannot be read", "reinstall mediapipe")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tesselation_triangles() -> np.ndarray:
    edges = {tuple(sorted(e)) for e in face_mesh_connections().FACEMESH_TESSELATION}
    adj: dict[int, set[int]] = defaultdict(set)
    for a, b in edges:
        adj[a].add(b)
        adj[b].add(a)
    cliques = {tuple(sorted((a, b, c))) for a, b in edges for c in adj[a] & adj[b]}
    uses = Counter(e for t in cliques for e in itertools.combinations(t, 2))
    # A separating 3-cycle is not a face: each of its edges then counts 3 triangles.
    faces = [t for t in cliques if not all(uses[e] > 2 for e in itertools.combinations(t, 2))]
    return np.array(sorted(faces), dtype=np.int32)


def _points_of(connections: frozenset[tuple[int, int]]) -> tuple[int, ...]:
    return tuple(sorted({i for e in connections for i in e}))


@lru_cache(maxsize=1)
def mediapipe_topology() -> Topology:
    fm = face_mesh_connections()
    upper = (191, 80, 81, 82, 13, 312, 311, 310, 415)
    lower = (95, 88, 178, 87, 14, 317, 402, 318, 324)
    exclude = set(_points_of(fm.FACEMESH_LIPS) + _points_of(fm.FACEMESH_LEFT_EYE)
                  + _points_of(fm.FACEMESH_RIGHT_EYE) + _points_of(fm.FACEMESH_LEFT_EYEBROW)
                  + _points_of(fm.FACEMESH_RIGHT_EYEBROW)) | set(range(468, 478))
    return Topology(
        name="mediapipe",
        n_points=478,
        inner_lip_pairs=tuple(zip(upper, lower, strict=True)),
        eye_outer=(33, 263),
        rigid=(10, 151, 9, 109, 67, 103, 338, 297, 332,  # forehead
               168, 6, 197, 195, 5, 4,  # nose ridge
               33, 133, 263, 362,  # eye corners
               127, 356, 162, 389, 234, 454, 116, 345),  # temples, cheekbones
        face_oval=(10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379,
                   378, 400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127,
                   162, 21, 54, 103, 67, 109),
        nose_bottom=2,
        shading_exclude=tuple(sorted(exclude)),
        triangles=_tesselation_triangles(),
    )


@lru_cache(maxsize=1)
def ibug68_topology() -> Topology:
    """The 68-point iBUG/300-W layout that face-alignment (FAN) outputs."""
    return Topology(
        name="ibug68",
        n_points=68,
        inner_lip_pairs=((61, 67), (62, 66), (63, 65)),
        eye_outer=(36, 45),
        rigid=(0, 16, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45),
        face_oval=(*range(0, 17), *range(26, 16, -1)),  # jaw, then the brows back
        nose_bottom=33,
        shading_exclude=tuple(range(17, 27)) + tuple(range(36, 48)) + tuple(range(48, 68)),
        triangles=None,
    )


TOPOLOGIES = {"mediapipe": mediapipe_topology, "ibug68": ibug68_topology}


def topology_named(name: str) -> Topology:
    if name not in TOPOLOGIES:
        raise TalkeditError(f"topology {name!r}", "is unknown", f"use one of {sorted(TOPOLOGIES)}")
    return TOPOLOGIES[name]()


def topology_for(n_points: int) -> Topology:
    """The topology of a landmark array, from its point count."""
    for make in TOPOLOGIES.values():
        topo = make()
        if topo.n_points == n_points:
            return topo
    raise TalkeditError(f"{n_points} landmarks", "match no known landmark layout",
                        "give MediaPipe (478) or iBUG-68 landmarks")
