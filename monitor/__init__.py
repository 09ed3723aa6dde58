"""registry-monitor: watch a national DNS system and record in git what vanishes from it."""

__version__ = "0.1.0"
