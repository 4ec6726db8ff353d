"""talkedit: edit a talking-head video by editing its transcript."""

__version__ = "0.1.0"
