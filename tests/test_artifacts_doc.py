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


def test_column_array_reads_pandas_and_arrow_alike(tmp_path) -> None:
    """The README's example: column_array(pd.read_parquet(face.parquet), "expression")."""
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    schema = pa.schema([("frame", pa.int32()), ("expression", artifacts.vec(4))])
    path = tmp_path / "t.parquet"
    artifacts.write_parquet({"frame": np.arange(3, dtype=np.int32), "expression": values},
                            schema, path)
    np.testing.assert_array_equal(artifacts.column_array(pd.read_parquet(path), "expression"),
                                  values)
    np.testing.assert_array_equal(artifacts.column_array(pq.read_table(path), "expression"),
                                  values)
