"""Shared fixtures: the real NASA data (skipped, naming the folder, where it is missing), a small
synthetic data set in the same layout, small generated models, and the test environment's settings.

Where the NASA data set is read: ``TMSTREAM_DATA_DIR`` as tmstream reads it (relative to the
project root), else ``../shared/nasa``. Tests that need it (the fixtures ``nasa_dir``, ``nasa``,
``reference_dir`` or the ``nasa`` marker) are marked ``nasa`` and skip without it, so
``TMSTREAM_DATA_DIR=$(mktemp -d) pytest tests/unit`` runs everything else. Tests that only need
*some* telemetry and a model use ``synth_dir`` / ``synth`` and ``small_model``: the synthetic
generator (``producers.synth``) under NASA-like channel ids, and hand-set LSTM weights.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

# The engine's numba kernels are cached on disk (cache=True). Loaded in this process from a cache
# another process wrote (the suite's workers write it), they failed with
# "NRT_adapt_ndarray_to_python: 'descr' is NULL" (test_keras_equivalence, warm cache only): the two
# activations' kernels share a name, and entries compiled by different processes can share a symbol
# (model_store/warm.py). This process compiles into a cache of its own; the workers it starts keep
# the project's, which install.sh compiles in one process.
os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="tmstream-numba-")
import numba  # noqa: F401  (reads NUMBA_CACHE_DIR once, at import)

del os.environ["NUMBA_CACHE_DIR"]

import numpy as np
import pytest

from model_store.weights import LstmLayer, LstmWeights
from producers.dataset import TelemanomDataset
from producers.synth import SynthSpec, write_synthetic
from tmstream.ground.settings import PROJECT_ROOT, Settings, load_settings


def _data_dir() -> Path:
    configured = Path(os.environ.get("TMSTREAM_DATA_DIR") or PROJECT_ROOT.parent / "shared" / "nasa")
    return configured if configured.is_absolute() else (PROJECT_ROOT / configured).resolve()


NASA_DIR = _data_dir()
REFERENCE = "reference-2018"
REFERENCE_PARTS = (("models", ".h5"), ("y_hat", ".npy"), ("smoothed_errors", ".npy"))

# The synthetic set: NASA-like ids so tests read like the real ones; SMAP channels have 25 columns,
# MSL ones 55, and T-10 (as in the NASA set) has a test file but no label row.
SYNTH_CHANNELS = {"SMAP": ["P-1", "S-1", "E-1", "A-1", "A-5"], "MSL": ["M-6", "D-14", "T-8", "T-9", "T-10"]}
SYNTH_WIDTHS = {"SMAP": 25, "MSL": 55}
SYNTH_UNLABELLED = {"T-10"}
SYNTH_TRAIN_ROWS = 300
# SMAP channels are long enough for threshold windows before the end (30 x 70 errors), MSL ones not
SYNTH_TEST_ROWS = {"SMAP": 4000, "MSL": 2000}
SMALL_UNITS = 16


def _first_missing(root: Path, names: list[str]) -> str | None:
    missing = [name for name in names if not (root / name).exists()]
    if not missing:
        return None
    more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
    return f"missing {missing[0]}{more}"


@cache
def nasa_missing(root: Path = NASA_DIR) -> str | None:
    """Why the NASA data set at ``root`` cannot be used (None when it is complete)."""
    labels = root / "labeled_anomalies.csv"
    if not labels.is_file():
        return "missing labeled_anomalies.csv"
    with labels.open(newline="") as handle:
        channels = list(dict.fromkeys(row["chan_id"] for row in csv.DictReader(handle)))
    return _first_missing(root, [f"{split}/{c}.npy" for c in channels for split in ("test", "train")])


@cache
def reference_missing(root: Path = NASA_DIR) -> str | None:
    """Why the 2018 reference run under ``root`` cannot be used (None when it is complete)."""
    with (root / "labeled_anomalies.csv").open(newline="") as handle:
        channels = list(dict.fromkeys(row["chan_id"] for row in csv.DictReader(handle)))
    wanted = [f"{REFERENCE}/params.log"]
    wanted += [f"{REFERENCE}/{part}/{c}{suffix}" for part, suffix in REFERENCE_PARTS for c in channels]
    return _first_missing(root, wanted)


@pytest.fixture(autouse=True)
def no_leaked_mlflow_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's fluent API exports MLFLOW_TRACKING_URI; a test must not hand its registry to the next
    test's worker processes, so the variables are restored after every test."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def no_leaked_environment() -> Iterator[None]:
    """A command run in-process exports what its children inherit (``--log-level`` sets
    TMSTREAM_LOG_LEVEL, which outranks the YAML files): the environment is put back after each test."""
    saved = dict(os.environ)
    yield
    if dict(os.environ) != saved:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(autouse=True)
def _nasa_marker_needs_the_data(request: pytest.FixtureRequest) -> None:
    """A test marked ``nasa`` (``nasa(reference=True)``) skips like one using the fixtures."""
    marker = request.node.get_closest_marker("nasa")
    if marker is not None:
        request.getfixturevalue("reference_dir" if marker.kwargs.get("reference") else "nasa_dir")


@pytest.fixture(scope="session")
def nasa_dir() -> Path:
    """The NASA data set (train/, test/, labeled_anomalies.csv); the test skips without it."""
    reason = nasa_missing()
    if reason is not None:
        pytest.skip(f"needs the NASA data set at {NASA_DIR} (TMSTREAM_DATA_DIR): {reason}")
    return NASA_DIR


@pytest.fixture(scope="session")
def reference_dir(nasa_dir: Path) -> Path:
    """The 2018 Telemanom run (models, y_hat, smoothed_errors, params.log) beside the data set."""
    reason = reference_missing()
    if reason is not None:
        pytest.skip(f"needs the 2018 reference run at {nasa_dir / REFERENCE} (TMSTREAM_DATA_DIR): {reason}")
    return nasa_dir / REFERENCE


@pytest.fixture(scope="session")
def nasa(nasa_dir: Path) -> TelemanomDataset:
    return TelemanomDataset(nasa_dir)


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic data set in the Telemanom layout (``producers.synth``), NASA-like ids."""
    root = tmp_path_factory.mktemp("synth-data")
    labels: list[list[str]] = []
    for number, (spacecraft, names) in enumerate(SYNTH_CHANNELS.items()):
        part = tmp_path_factory.mktemp(f"synth-{spacecraft}")
        rows, width = SYNTH_TEST_ROWS[spacecraft], SYNTH_WIDTHS[spacecraft]
        spec = SynthSpec(len(names), SYNTH_TRAIN_ROWS, rows, width, seed=7 + number)
        generated = write_synthetic(part, spec)
        renamed = dict(zip(generated, names, strict=True))
        for split in ("train", "test"):
            (root / split).mkdir(exist_ok=True)
            for old, new in renamed.items():
                shutil.copy(part / split / f"{old}.npy", root / split / f"{new}.npy")
        with (part / "labeled_anomalies.csv").open(newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            for row in reader:
                row[0], row[1] = renamed[row[0]], spacecraft
                if row[0] not in SYNTH_UNLABELLED:
                    labels.append(row)
    with (root / "labeled_anomalies.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([header, *labels])
    return root


@pytest.fixture(scope="session")
def synth(synth_dir: Path) -> TelemanomDataset:
    return TelemanomDataset(synth_dir)


def persistence_model(channel: str, features: int, l_s: int = 250, seed: int = 0) -> LstmWeights:
    """Small two-layer LSTM weights (``SMALL_UNITS`` units) that predict about the last telemetry value.

    Unit 0 of each layer is a pass-through: the hard sigmoid gates saturate (input and output 1,
    forget 0) and the cell holds tanh of 0.1 x the input, so the Dense layer's 10x gives back the
    last value to within a percent. The other units are seeded noise, so the engine computes a full
    LSTM; the predictions follow the signal and miss its injected anomalies, as a trained model would.
    """
    rng = np.random.default_rng(seed)
    units = SMALL_UNITS

    def layer(inputs: int, passed: float) -> LstmLayer:
        kernel = rng.normal(0, 0.05, (inputs, 4 * units)).astype(np.float32)
        recurrent = rng.normal(0, 0.05, (units, 4 * units)).astype(np.float32)
        bias = rng.normal(0, 0.1, 4 * units).astype(np.float32)
        for gate, value in ((0, 5.0), (1, -5.0), (3, 5.0)):  # i, f, o of unit 0: saturated
            kernel[:, gate * units] = recurrent[:, gate * units] = 0.0
            bias[gate * units] = value
        kernel[:, 2 * units] = recurrent[:, 2 * units] = 0.0  # candidate of unit 0: its input only
        kernel[0, 2 * units], bias[2 * units] = passed, 0.0
        return LstmLayer(kernel, recurrent, bias)

    dense = rng.normal(0, 0.002, (units, 10)).astype(np.float32)
    dense[0, :] = 10.0
    return LstmWeights(
        channel,
        (layer(features, 0.1), layer(units, 1.0)),
        dense,
        np.zeros(10, np.float32),
        "hard_sigmoid_keras2",
        l_s,
        source="synthetic",
    )


@pytest.fixture(scope="session")
def small_model(synth: TelemanomDataset) -> Callable[[str], LstmWeights]:
    """A channel of the synthetic set -> its small model (same weights each call)."""
    models: dict[str, LstmWeights] = {}

    def get(channel: str) -> LstmWeights:
        if channel not in models:
            features = synth.load(channel, "test").shape[1]
            models[channel] = persistence_model(channel, features, seed=zlib.crc32(channel.encode()))
        return models[channel]

    return get


@pytest.fixture
def test_settings(tmp_path: Path) -> Settings:
    """Testing-environment settings with a private state folder (no services involved)."""
    return load_settings({"environment": "testing", "state_dir": str(tmp_path / "state")})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/integration needs the real stack: mark it so `-m "not integration"` works.
    Tests reading the NASA data set through the fixtures are marked ``nasa`` (`-m "not nasa"`)."""
    for item in items:
        if "tests/integration/" in str(item.path) or "tests/faults/" in str(item.path):
            item.add_marker(pytest.mark.integration)
        if "nasa_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.nasa)
