"""edged: privacy-first vision daemon for roadside units."""

__version__ = "0.1.0"
