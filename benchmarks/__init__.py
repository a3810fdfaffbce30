"""Benchmarks: ``tmstream bench <name>`` runs ``benchmarks.<name>.run()`` (see docs/PERFORMANCE.md)."""
