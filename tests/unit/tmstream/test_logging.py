"""One log level for every logger the CLI starts; third-party chatter only at DEBUG."""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from tmstream.cli import _unexpected, app
from tmstream.cli.logs import THIRD_PARTY_FLOORS, QuietTensorflowImport, configure_logging

NAMES = ["", "tmstream", *THIRD_PARTY_FLOORS, "kafka.net.selector"]
VARIABLES = ["TF_CPP_MIN_LOG_LEVEL", "TMSTREAM_LOG_LEVEL"]


@pytest.fixture(autouse=True)
def restored_levels() -> Iterator[None]:
    """The CLI sets process-wide levels and variables; each test gets them back as they were.

    (``monkeypatch.delenv`` of an unset variable records nothing, so a value the CLI set would leak.)
    """
    variables = {name: os.environ.pop(name, None) for name in VARIABLES}
    levels = {name: logging.getLogger(name).level for name in NAMES}
    yield
    for name, value in variables.items():
        os.environ.pop(name, None)
        if value is not None:
            os.environ[name] = value
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, QuietTensorflowImport)]


def test_the_flag_reaches_the_root_logger_and_the_processes_started() -> None:
    result = CliRunner().invoke(
        app, ["--log-level", "DEBUG", "--data-dir", "/nonexistent/nasa", "data", "info"]
    )
    assert result.exit_code != 0  # no data: the command fails, after the callback set the level
    assert logging.getLogger().getEffectiveLevel() == logging.DEBUG
    assert logging.getLogger("tmstream.cli").isEnabledFor(logging.DEBUG)
    assert logging.getLogger("kafka.net.selector").isEnabledFor(logging.DEBUG)
    assert os.environ["TMSTREAM_LOG_LEVEL"] == "DEBUG"  # the demo's worker inherits it
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ  # DEBUG keeps TensorFlow's C++ lines


def test_the_setting_is_the_level_without_a_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMSTREAM_LOG_LEVEL", "warning")
    CliRunner().invoke(app, ["--data-dir", "/nonexistent/nasa", "data", "info"])
    assert logging.getLogger().getEffectiveLevel() == logging.WARNING


@pytest.mark.parametrize("level", ["INFO", "WARNING"])
def test_below_debug_third_party_noise_is_held_back(level: str) -> None:
    configure_logging(level)
    selector = logging.getLogger("kafka.net.selector")  # "... is blocking the event loop" warnings
    assert not selector.isEnabledFor(logging.WARNING) and selector.isEnabledFor(logging.ERROR)
    assert not logging.getLogger("mlflow.store").isEnabledFor(logging.INFO)
    assert logging.getLogger("tmstream.cli").isEnabledFor(logging.getLevelName(level))
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"


def test_a_tensorflow_level_of_ones_own_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    configure_logging("INFO")
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"


def test_the_cli_imports_no_tensorflow_and_no_matplotlib() -> None:
    """TF_CPP_MIN_LOG_LEVEL works only if set before TensorFlow loads; matplotlib is the report extra."""
    code = "import sys, tmstream.cli; print(sorted({'tensorflow', 'keras', 'matplotlib'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "[]", result.stderr


def test_a_missing_extra_is_named_in_one_line() -> None:
    message = _unexpected(ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib"))
    assert message == "this command needs matplotlib: pip install 'telemanom-stream[report]'"
    assert _unexpected(ModuleNotFoundError("x", name="nope")) == "unexpected ModuleNotFoundError: x"


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)


def test_native_stderr_is_dropped_and_replayed_only_on_failure() -> None:
    code = (
        "import os; from tmstream.cli.logs import native_stderr_held\n"
        "with native_stderr_held(): os.write(2, b'dropped\\n')\n"
        "try:\n"
        "    with native_stderr_held(): os.write(2, b'replayed\\n'); raise ImportError('x')\n"
        "except ImportError: pass\n"
        "os.write(2, b'after\\n')\n"
    )
    result = run_python(code)
    assert result.returncode == 0 and result.stderr.split() == ["replayed", "after"], result.stderr


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="no TensorFlow (the train extra)")
@pytest.mark.parametrize(("level", "shown"), [("INFO", False), ("DEBUG", True)])
def test_tensorflows_load_time_lines_only_at_debug(level: str, shown: bool) -> None:
    """TF 2.21 logs these before it reads TF_CPP_MIN_LOG_LEVEL: they fill `tmstream train` otherwise."""
    code = f"from tmstream.cli.logs import configure_logging; configure_logging({level!r}); import tensorflow"
    result = run_python(code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert ("oneDNN" in result.stderr) is shown and ("absl::InitializeLog" in result.stderr) is shown
    assert importlib.util.find_spec("numpy") is not None  # other imports untouched


@pytest.mark.parametrize(
    ("message", "secret"),
    [
        (  # kafka-python at DEBUG: its whole configuration
            "Starting KafkaAdminClient with configuration: {'bootstrap_servers': '127.0.0.1:1', "
            "'sasl_plain_username': 'worker', 'sasl_plain_password': 'kafka-5c501', 'client_id': 'admin'}",
            "kafka-5c501",
        ),
        ("connecting to redis://tmstream:r3dis-s3cret@127.0.0.1:6379/0", "r3dis-s3cret"),
        ("Settings(password=SecretStr('**'), token=abc123, x=1)", "abc123"),
        ('{"api_secret": "s3 cr3t"}', "s3 cr3t"),
    ],
)
def test_credentials_are_redacted_in_every_handler_even_at_debug(message: str, secret: str) -> None:
    """Handlers added after the CLI configured logging (Faust adds its own) are covered too."""
    configure_logging("DEBUG")
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(self.format(record))

    handler = Collect()
    logger = logging.getLogger("kafka.admin.client")
    logger.addHandler(handler)
    try:
        logger.debug("%s", message)
    finally:
        logger.removeHandler(handler)
    assert len(seen) == 1 and secret not in seen[0] and "**********" in seen[0], seen
    assert "username" not in message or "worker" in seen[0]  # only the secret goes
