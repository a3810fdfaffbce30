"""The CLI's logging: one level (``log_level``, ``--log-level``) for every logger a command starts.

Third-party libraries log their own internals: kafka-python warns about slow selector steps and
per-attempt connection failures, MLflow and alembic about migrations, TensorFlow's C++ core prints
info lines at import. The CLI reports a failure as one typed error, so those lines are noise unless
``DEBUG`` asks for them; below DEBUG each library is held at its floor here.

At DEBUG those libraries log their whole configuration, credentials included (kafka-python's
"Starting KafkaAdminClient with configuration: {... 'sasl_plain_password': ...}"): every record
is redacted where it is made (a record factory, so the handlers Faust adds are covered too).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
THIRD_PARTY_FLOORS = {
    "kafka": logging.ERROR,
    "aiokafka": logging.ERROR,
    "mlflow": logging.WARNING,
    "alembic": logging.WARNING,
    "urllib3": logging.WARNING,
    "numba": logging.WARNING,
    "matplotlib": logging.WARNING,
    "h5py": logging.WARNING,
    "tensorflow": logging.ERROR,
    "absl": logging.ERROR,
}
TF_QUIET = "2"  # TF_CPP_MIN_LOG_LEVEL: TensorFlow's C++ core logs errors only
# 'sasl_plain_password': 'x', password="x", token=x (a dict's repr, keyword arguments, settings).
# Bounded quantifiers and a word-boundary anchor keep it linear: a log line can carry a 100 kB
# garbage channel name from a dead letter, and an unbounded \w* backtracks quadratically on it.
SECRET_FIELD = re.compile(
    r"""(?P<name>['"]?\b\w{0,40}(?:password|passwd|secret|token)\w{0,40}['"]?\s{0,3}[:=]\s{0,3})"""
    r"""(?P<value>'[^']{0,4096}'|"[^"]{0,4096}"|[^\s,})]{1,4096})""",
    re.IGNORECASE,
)
URL_CREDENTIALS = re.compile(
    r"(?P<head>\b[a-z][a-z0-9+.-]{0,20}://[^/:@\s]{0,256}:)[^@\s/]{1,1024}@", re.IGNORECASE
)
SECRET_HINTS = ("pass", "secret", "token", "://")
REDACTED = "'**********'"


def redact(message: str) -> str:
    """``message`` with the values of password-, secret- and token-named fields and the
    passwords in URLs replaced."""
    lowered = message.lower()
    if not any(hint in lowered for hint in SECRET_HINTS):
        return message
    message = SECRET_FIELD.sub(lambda m: m["name"] + REDACTED, message)
    return URL_CREDENTIALS.sub(lambda m: m["head"] + "**********@", message)


def _install_redaction() -> None:
    factory = logging.getLogRecordFactory()
    if getattr(factory, "redacts", False):
        return

    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return record

    make_record.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(make_record)


def configure_logging(level: str, *, flag: bool = False) -> None:
    """Set the root logger and the third-party floors; ``flag``: the level was given on the command line.

    A flag is exported as ``TMSTREAM_LOG_LEVEL`` so the processes a command starts (the demo's
    worker, a benchmark's fleet) log at the same level. ``TF_CPP_MIN_LOG_LEVEL`` must be set before
    TensorFlow is imported; one the user set is kept.
    """
    number = logging.getLevelName(level)
    _install_redaction()
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format=FORMAT)
    root.setLevel(number)
    for name, floor in THIRD_PARTY_FLOORS.items():
        logging.getLogger(name).setLevel(number if number <= logging.DEBUG else max(number, floor))
    if number > logging.DEBUG:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", TF_QUIET)
        if not any(isinstance(finder, QuietTensorflowImport) for finder in sys.meta_path):
            sys.meta_path.insert(0, QuietTensorflowImport())
    if flag:
        os.environ["TMSTREAM_LOG_LEVEL"] = level


class QuietTensorflowImport(importlib.abc.MetaPathFinder):
    """Loads ``tensorflow`` with file descriptor 2 held: what its C++ core logs while loading.

    TensorFlow 2.21 writes "All log messages before absl::InitializeLog() ..." and the oneDNN info
    line straight to stderr before it reads TF_CPP_MIN_LOG_LEVEL. A failing import replays them.
    """

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != "tensorflow":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _HeldStderrLoader(spec.loader)
        return spec


class _HeldStderrLoader(importlib.abc.Loader):
    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        module: ModuleType | None = self.loader.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader  # the module keeps TensorFlow's own loader
        module.__loader__ = self.loader
        with native_stderr_held():
            self.loader.exec_module(module)


@contextmanager
def native_stderr_held() -> Iterator[None]:
    """Point fd 2 at a temporary file; its content is dropped, or written out if the block fails."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
