"""etl: a corpus builder for personal voice models."""

__version__ = "0.1.0"
