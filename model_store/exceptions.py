"""Typed errors of the model store: each names the channel (and file or version) it concerns."""

from __future__ import annotations

from tmstream.ground.exceptions import TmstreamError


class ModelStoreError(TmstreamError):
    """Base of every model-store error."""


class WeightsError(ModelStoreError):
    """A weights file is missing, corrupt, or holds an architecture the engine cannot run."""


class InputError(ModelStoreError):
    """Windows handed to the engine have the wrong shape or hold NaN/inf."""


class ModelNotFound(ModelStoreError):
    """No registered model (or no model under the requested alias) exists for a channel."""


class RegistryError(ModelStoreError):
    """The MLflow registry cannot be reached or holds something unexpected."""


class RegistryUnavailable(RegistryError):
    """The registry did not answer (refused, timed out, a server error): transient, so a worker
    keeps the channel's rows and asks again instead of leaving them unscored."""


class TrainingError(ModelStoreError):
    """Training data is too short or a training run failed."""
