"""The CLI's logging: one level (``log_level``, ``--log-level``) for every logger a command starts.

Third-party libraries log their own internals: kafka-python warns about slow selector steps and
per-attempt connection failures, MLflow and alembic about migrations, TensorFlow's C++ core prints
info lines at import. The CLI reports a failure as one typed error, so those lines are noise unless
``DEBUG`` asks for them; below DEBUG each library is held at its floor here.
"""

from __future__ import annotations

import logging
import os

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


def configure_logging(level: str, *, flag: bool = False) -> None:
    """Set the root logger and the third-party floors; ``flag``: the level was given on the command line.

    A flag is exported as ``TMSTREAM_LOG_LEVEL`` so the processes a command starts (the demo's
    worker, a benchmark's fleet) log at the same level. ``TF_CPP_MIN_LOG_LEVEL`` must be set before
    TensorFlow is imported; one the user set is kept.
    """
    number = logging.getLevelName(level)
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format=FORMAT)
    root.setLevel(number)
    for name, floor in THIRD_PARTY_FLOORS.items():
        logging.getLogger(name).setLevel(number if number <= logging.DEBUG else max(number, floor))
    if number > logging.DEBUG:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", TF_QUIET)
    if flag:
        os.environ["TMSTREAM_LOG_LEVEL"] = level
