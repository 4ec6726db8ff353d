"""talkedit's stages: the domain logic, one module or package per pipeline step (no Prefect, no DVC)."""
