"""audio stage: the edited video's sound (``stage.py``: ``run_audio``).

Kept free of imports so that reading ``stages.audio.config`` (the plan stage reads
the audio section) loads nothing else of the stage.
"""
