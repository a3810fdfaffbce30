"""Where anomaly events go: the ``anomalies`` topic and Redis, each written at most once per emission."""
