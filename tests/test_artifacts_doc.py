"""docs/artifacts.md lists every column of every schema in talkedit/artifacts.py."""

from __future__ import annotations

import re

import pyarrow as pa

import talkedit.artifacts as artifacts
from tests.conftest import REPO


def test_every_schema_and_column_is_documented() -> None:
    doc = (REPO / "docs" / "artifacts.md").read_text()
    documented = set(re.findall(r"`([a-z_0-9]+)`", doc))
    schemas = {name: value for name, value in vars(artifacts).items() if isinstance(value, pa.Schema)}
    assert len(schemas) >= 10
    missing = {name: [f.name for f in schema if f.name not in documented]
               for name, schema in schemas.items()}
    missing = {k: v for k, v in missing.items() if v}
    undocumented_tables = [name for name in schemas if f"**{name}**" not in doc]
    assert not missing and not undocumented_tables, (missing, undocumented_tables)
