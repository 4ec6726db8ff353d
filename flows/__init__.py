"""Prefect flows: one per DVC stage, thin orchestration over ``stages``."""

from talkedit import prefect_env

prefect_env.configure()
