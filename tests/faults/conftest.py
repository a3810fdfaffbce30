"""Fault tests reuse the integration suite's real stack and isolated ``pipeline`` (same session)."""

from __future__ import annotations

from tests.integration.conftest import (  # noqa: F401  (fixtures, re-exported for this folder)
    pipeline,
    reference_models,
    stack,
    stack_settings,
)
