"""Maintenance work orders opened from anomaly events: state machine, Redis store, service and API.

One unresolved order per channel: every anomaly of a channel while its order is open or
acknowledged belongs to that incident and updates the order; once resolved, the next anomaly
opens a new one. See docs/WORKORDERS.md.
"""
