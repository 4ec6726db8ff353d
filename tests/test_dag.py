"""The DAG tells the truth: each pipeline file (dvc.yaml, quality/dvc.yaml) declares, for
every stage, exactly what its code reads.

For each stage of flows/registry.py and flows/quality.py (each pipeline's one list of stages):
- its params sections are its entry function's typed parameters (talkedit.params);
- its code is every repo module that the flow running it imports, transitively (import
  statements read from the source, deferred ones included; ``TYPE_CHECKING`` blocks
  not). dvc.yaml must declare exactly those sections, and code deps that cover every
  one of those modules and nothing else.
The checker is shown to fail, naming the entry, when one dep or section is removed.
"""

from __future__ import annotations

import ast
import copy
from functools import cache
from pathlib import Path

import pytest
import yaml

from flows.quality import ALL_BY_NAME, PIPELINES, QUALITY_STAGES
from flows.quality import ALL_STAGES as STAGES
from flows.registry import EDIT, JOB, PROJECT, StageSpec

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("talkedit", "stages", "flows")
# What every stage's process imports to run its flow (talkedit.cli only picks the stage).
FLOW_MODULES = ("flows", "flows.stage", "flows.registry")
# libyaml where installed: the drift test writes and reads the file once per removed entry.
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
KERNEL_EXCLUDED = {"talkedit.cli"}  # the application layer: above flows, not a dependency
# Data files shipped beside the code, by the module that reads them: a stage importing the
# module reads the file (declared by itself or by a folder dep around it).
SHIPPED_DATA = {
    "stages.lipsync.trunk": ("stages/lipsync/trunk.safetensors",),
    "stages.plan.prior": ("stages/plan/phone_openings.json",),
}


@cache  # the checker runs once per removed dep in the drift test: look each file up once
def module_file(name: str) -> Path | None:
    base = REPO / Path(*name.split("."))
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


@cache
def direct_imports(name: str) -> frozenset[str]:
    """Repo modules that module ``name`` imports (any depth in its body)."""
    path = module_file(name)
    if path is None:
        return frozenset()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_block(node):
            for child in getattr(node, "orelse", []):
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module" \
                and node.args and isinstance(node.args[0], ast.JoinedStr):
            # importlib.import_module(f"stages.align.{...}"): the package's lazy names
            prefix = node.args[0].values[0]
            if isinstance(prefix, ast.Constant):
                pkg = str(prefix.value).rstrip(".")
                found.update(f"{pkg}.{p.stem}" for p in (REPO / Path(*pkg.split("."))).glob("*.py"))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    out = set()
    for full in found:
        if full.split(".")[0] not in PACKAGES:
            continue
        parts = full.split(".")
        # importing a.b.c imports a and a.b too
        for k in range(1, len(parts) + 1):
            if module_file(".".join(parts[:k])) is not None:
                out.add(".".join(parts[:k]))
    out.discard(name)
    return frozenset(out)


def imported_modules(roots: tuple[str, ...]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or module_file(name) is None:
            continue
        seen.add(name)
        todo.extend(direct_imports(name))
    return seen


@cache  # the drift test asks once per removed entry; the source files do not change
def _stage_modules(module: str, listed_in: str) -> frozenset[str]:
    parents = tuple(".".join(module.split(".")[:k]) for k in range(1, module.count(".") + 1))
    return frozenset(imported_modules((module, *parents, *FLOW_MODULES, listed_in)))


def stage_modules(spec: StageSpec) -> set[str]:
    """Its entry's modules and the flow's, and the list naming it (the quality stages'
    flows/quality.py: the product stages never depend on it)."""
    return set(_stage_modules(spec.module, "flows.quality" if spec in QUALITY_STAGES
                              else "flows.registry"))


@cache
def _dep_path(dep: str) -> Path:
    return (REPO / dep).resolve()


@cache  # (dep, file) pairs recur for every removed entry: compare their paths once
def _covers(dep: str, file: Path) -> bool:
    target = _dep_path(dep)
    return file == target or target in file.parents


def dag_problems(dvc: dict, only: str | None = None) -> list[str]:
    """Every way dvc.yaml departs from what the stages' code reads, one line each
    (``only``: of that one stage)."""
    problems = []
    stages = dvc.get("stages", {})
    names = {spec.name for spec in STAGES}
    for extra in sorted(set(stages) - names) if only is None else ():
        problems.append(f"dvc.yaml stage {extra!r} is not in flows/registry.py or flows/quality.py")
    for spec in STAGES:
        if only is not None and spec.name != only:
            continue
        if spec.name not in stages:
            problems.append(f"stage {spec.name!r} is missing from dvc.yaml")
            continue
        block = stages[spec.name]
        body = block if spec.kind == PROJECT else block.get("do", {})
        arg = "" if spec.kind == PROJECT else " ${key}" if spec.kind in (EDIT, JOB) else " ${item}"
        if body.get("cmd") != f"talkedit {spec.name}{arg}":
            problems.append(f"{spec.name}: cmd is {body.get('cmd')!r}, expected "
                            f"'talkedit {spec.name}{arg}'")
        # A mapping entry names keys of an item's own file (a scene file's idioms), not a
        # params.yaml section; stages/scene's docstrings say which keys each stage reads.
        declared = sorted(str(p) for p in body.get("params", []) if not isinstance(p, dict))
        wanted = sorted(spec.sections())
        for missing in sorted(set(wanted) - set(declared)):
            problems.append(f"{spec.name}: params section {missing!r} is read but not declared")
        for extra in sorted(set(declared) - set(wanted)):
            problems.append(f"{spec.name}: params {extra!r} is declared but not read")
        deps = [str(d) for d in body.get("deps", [])]
        code_deps = [d for d in deps if d.split("/")[0] in PACKAGES]
        files = {m: module_file(m) for m in stage_modules(spec)}
        data = [(m, REPO / d) for m in sorted(files) for d in SHIPPED_DATA.get(m, ())]
        for module, file in sorted(files.items()):
            if not any(_covers(d, file) for d in code_deps):
                problems.append(f"{spec.name}: imports {module} "
                                f"({file.relative_to(REPO)}) but does not declare it")
        for module, file in data:
            if not any(_covers(d, file) for d in code_deps):
                problems.append(f"{spec.name}: imports {module}, which reads "
                                f"{file.relative_to(REPO)}, but does not declare it")
        for dep in code_deps:
            if not any(_covers(dep, f) for f in [*files.values(), *(f for _, f in data)]):
                problems.append(f"{spec.name}: declares {dep} but imports nothing from it")
    return problems


def load_dvc() -> dict:
    """Every pipeline file's stages (dvc.yaml, quality/dvc.yaml), as one mapping; each stage
    is checked to sit in the file the registry names and to run from the project root."""
    stages: dict = {}
    for pipeline in PIPELINES:
        found = yaml.safe_load((REPO / pipeline).read_text())["stages"]
        stages |= {name: {**block, "pipeline": pipeline} for name, block in found.items()}
    return {"stages": stages}


def test_every_stage_is_in_its_pipeline_file_and_runs_from_the_root() -> None:
    """A stage of quality/dvc.yaml (wdir ..) reads the root's params.yaml and paths."""
    stages = load_dvc()["stages"]
    for spec in STAGES:
        block = stages[spec.name]
        assert block["pipeline"] == spec.pipeline, spec.name
        body = block if spec.kind == PROJECT else block["do"]
        depth = len(Path(spec.pipeline).parts) - 1
        assert body.get("wdir", ".") == ("/".join([".."] * depth) or "."), spec.name


def test_dvc_yaml_declares_what_each_stage_reads() -> None:
    assert dag_problems(load_dvc()) == []


def _body(dvc: dict, spec: StageSpec) -> dict:
    block = dvc["stages"][spec.name]
    return block if spec.kind == PROJECT else block["do"]


def _without(dvc: dict, spec: StageSpec, key: str, entry: object, scratch: Path) -> dict:
    """dvc.yaml with one entry of ``spec``'s ``key`` list removed, as read back from a
    scratch file (only the stage's own block is copied and written: the check reads no
    other stage)."""
    block = copy.deepcopy(dvc["stages"][spec.name])
    body = block if spec.kind == PROJECT else block["do"]
    body[key].remove(entry)
    scratch.write_text(yaml.dump({"stages": {spec.name: block}}, Dumper=DUMPER))
    return yaml.load(scratch.read_text(), Loader=LOADER)


@pytest.mark.parametrize("spec", STAGES, ids=[s.name for s in STAGES])
def test_drift_is_caught_naming_the_missing_entry(spec: StageSpec, tmp_path: Path) -> None:
    """On a scratch copy of dvc.yaml, dropping any one code dep or section is reported."""
    dvc = load_dvc()
    body = _body(dvc, spec)
    scratch = tmp_path / "dvc.yaml"
    assert dag_problems(dvc, only=spec.name) == []
    code = [d for d in body["deps"] if str(d).split("/")[0] in PACKAGES]
    for dep in code:
        problems = dag_problems(_without(dvc, spec, "deps", dep, scratch), only=spec.name)
        assert problems, f"removing {dep} from {spec.name} went unnoticed"
        stem = dep.removesuffix(".py")
        assert any(spec.name in p and stem in p for p in problems), problems
    for section in body.get("params", []):
        if isinstance(section, dict):  # keys of the item's own file (see dag_problems)
            continue
        assert f"{spec.name}: params section {section!r} is read but not declared" in \
            dag_problems(_without(dvc, spec, "params", section, scratch), only=spec.name)


def test_each_shipped_data_file_exists_and_its_module_names_it() -> None:
    for module, shipped in SHIPPED_DATA.items():
        for path in shipped:
            assert (REPO / path).is_file(), path
            assert Path(path).name in module_file(module).read_text(), (module, path)


def test_stage_list_is_defined_once() -> None:
    """The CLI's stage commands and dvc.yaml's stages are the registry's."""
    from talkedit.cli import app

    commands = {c.name or c.callback.__name__ for c in app.registered_commands}
    assert {s.name for s in STAGES} <= commands
    assert set(load_dvc()["stages"]) == {s.name for s in STAGES}


def test_kernel_imports_no_stage_and_no_flow() -> None:
    kernel = sorted(f"talkedit.{p.stem}" for p in (REPO / "talkedit").glob("*.py")
                    if p.stem != "__init__") + ["talkedit"]
    for name in kernel:
        if name in KERNEL_EXCLUDED:
            continue
        upward = sorted(m for m in direct_imports(name) if m.split(".")[0] in ("stages", "flows"))
        assert not upward, f"{name} imports {upward}"
    assert any(m.startswith("flows") for m in direct_imports("talkedit.cli"))  # it sits above


def test_no_stage_opens_params_yaml() -> None:
    """Params reach stages only as typed sections their flow loads."""
    for path in sorted((REPO / "stages").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for needle in ("load_params", "load_section", "raw_section", "repo_root()"):
            assert needle not in text, f"{path.relative_to(REPO)} uses {needle}"


def test_no_product_stage_depends_on_the_quality_pipeline() -> None:
    """The quality stages are listed apart (flows/quality.py): changing them never re-runs
    a stage of dvc.yaml, and dvc.yaml's stages never import the quality stages' code. A
    pair's clip stage imports nothing of the edit path: editing it never retrains a pair."""
    from flows.registry import STAGES as PRODUCT

    for spec in PRODUCT:
        modules = stage_modules(spec)
        quality = {m for m in modules if m == "flows.quality" or m.startswith("stages.pairs")}
        assert not quality, (spec.name, quality)
    assert {s.pipeline for s in PRODUCT} == {"dvc.yaml"}
    assert {s.pipeline for s in QUALITY_STAGES} == {"quality/dvc.yaml"}
    clip = stage_modules(ALL_BY_NAME["pairclip"])
    assert not {m for m in clip if m.split(".")[:2] in (["stages", "plan"], ["stages", "audio"],
                                                       ["stages", "composite"],
                                                       ["stages", "evaluate"])}
