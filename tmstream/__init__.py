"""tmstream: CLI wiring, typed settings and local-stack control for the telemanom-stream pipeline."""

__version__ = "0.1.0"
