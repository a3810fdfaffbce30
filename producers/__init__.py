"""Producers: where telemetry enters tmstream (dataset files, replay, live publishing, channel registry)."""
