"""The fever screening engine: frames in, screenings out. Never imports Qt."""

__version__ = "0.1.0"
