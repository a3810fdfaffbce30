"""Errors a user can act on: the CLI prints their message as one line and exits non-zero."""


class TmstreamError(Exception):
    """Base of every error meant for the user, not a traceback."""

    exit_code = 2


class ConfigError(TmstreamError):
    """A setting is missing or has a value outside what is allowed."""


class StackError(TmstreamError):
    """A local service cannot be started, reached or stopped."""


class DataError(TmstreamError):
    """The telemetry data folder is missing, incomplete or malformed."""


class BrokerUnavailableError(TmstreamError):
    """No Kafka broker answered within the bounded retries."""

    exit_code = 3


class TopicAdminError(TmstreamError):
    """The broker refused to create a topic."""


class TopicReadError(TmstreamError):
    """A direct read of a topic made no progress within ``kafka.read_stall_s``."""

    exit_code = 3
