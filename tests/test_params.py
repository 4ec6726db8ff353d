"""One route for params: every section typed, defaults in one place, one error shape."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from flows.quality import ALL_STAGES
from talkedit.errors import TalkeditError
from talkedit.inbox import WatchParams
from talkedit.params import Section, build, load_section
from tests.conftest import REPO

SECTIONS: dict[str, type[Section]] = {WatchParams.SECTION: WatchParams}  # read by talkedit watch
for _spec in ALL_STAGES:
    SECTIONS.update(_spec.sections())


def test_every_section_of_params_yaml_is_read_by_a_stage() -> None:
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    assert set(data) - {"clips", "edits", "scenes", "lipsync_jobs", "reenact_jobs",
                         "video_clips", "pair_cases"} == set(SECTIONS)


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_params_yaml_and_the_defaults_agree(name: str) -> None:
    """The dataclass defaults are params.yaml's values: defaults live in one place."""
    cls = SECTIONS[name]
    assert load_section(cls, REPO) == cls()


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_an_unknown_key_fails_in_one_shape(name: str, tmp_path: Path) -> None:
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    data = yaml.safe_load((tmp_path / "params.yaml").read_text())
    data[name] = {**(data.get(name) or {}), "typo_key": 1}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(TalkeditError) as err:
        load_section(SECTIONS[name], tmp_path)
    assert err.value.what == f"params.yaml {name}.typo_key"
    assert err.value.problem == f"is not one of the {name} parameters"
    assert err.value.fix.startswith("use one of: ")


def test_nested_sections_and_types() -> None:
    from stages.plan import PlanParams
    from stages.render.config import TrainParams

    with pytest.raises(TalkeditError, match=r"params.yaml plan.search.visem\b"):
        build(PlanParams, {"search": {"visem": 1}}, "plan")
    with pytest.raises(TalkeditError, match=r"params.yaml train.gpu.sise"):
        build(TrainParams, {"profile": "gpu", "gpu": {"sise": 1}}, "train")
    gpu = build(TrainParams, {"profile": "gpu", "gpu": {"size": 256, "gen_depth": 5}}, "train")
    assert (gpu.profile, gpu.size) == ("gpu", 256)
    with pytest.raises(TalkeditError, match="params.yaml plan.search.viseme"):
        build(PlanParams, {"search": {"viseme": -1}}, "plan")
    with pytest.raises(TalkeditError, match="not a mapping"):
        build(PlanParams, [1, 2], "plan")
