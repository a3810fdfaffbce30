"""Telemanom's event-level scoring (sequence overlap) plus point-wise guards, and the runs that feed it."""
