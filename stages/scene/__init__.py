"""Dialogue scenes (Leake et al. 2017): cut a scene from several takes by its script."""
