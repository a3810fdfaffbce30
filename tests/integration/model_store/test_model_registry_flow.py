"""Registry, CLI and cache together on a private MLflow (SQLite in tmp), no services needed."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from model_store.cache import ModelCache
from model_store.exceptions import ModelNotFound
from model_store.registry import ModelRegistry
from model_store.weights import LstmWeights
from tmstream.cli import app
from tmstream.ground.settings import Settings, load_settings

CHANNELS = ["T-10", "T-9"]
runner = CliRunner()


@dataclass(frozen=True)
class Store:
    state_dir: Path
    settings: Settings
    registry: ModelRegistry


def _cli(state_dir: Path, *args: str, env: dict[str, str] | None = None, data_dir: Path | None = None):
    prefix = ["--state-dir", str(state_dir)] + (["--data-dir", str(data_dir)] if data_dir else [])
    result = runner.invoke(app, [*prefix, *args], env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, nasa_dir: Path) -> Store:
    state_dir = tmp_path_factory.mktemp("state")
    args = ["models", "import-reference", *[f"--channel={c}" for c in CHANNELS]]
    _cli(state_dir, *args, data_dir=nasa_dir)
    settings = load_settings({"state_dir": str(state_dir), "data_dir": str(nasa_dir)})
    return Store(state_dir, settings, ModelRegistry(settings))


def test_import_registers_reference_and_champion(store: Store) -> None:
    for channel in CHANNELS:
        (info,) = store.registry.versions(channel)
        assert info.aliases == ("champion", "reference") and info.source == "reference"


def test_import_is_idempotent(store: Store, nasa_dir: Path) -> None:
    results = store.registry.import_reference(nasa_dir / "reference-2018" / "models", CHANNELS)
    assert [r.created for r in results] == [False, False]
    assert [len(store.registry.versions(c)) for c in CHANNELS] == [1, 1]


def test_predict_from_registry_reproduces_2018(store: Store, nasa_dir: Path, tmp_path: Path) -> None:
    chosen = [f"--channel={c}" for c in CHANNELS]
    _cli(
        store.state_dir,
        "predict",
        *chosen,
        "--alias",
        "reference",
        "--out-dir",
        str(tmp_path),
        data_dir=nasa_dir,
    )
    for channel in CHANNELS:
        reference = np.load(nasa_dir / "reference-2018" / "y_hat" / f"{channel}.npy")
        predicted = np.load(tmp_path / f"{channel}.npy")
        assert predicted.shape == reference.shape
        assert np.abs(predicted - reference).max() <= 1e-5


def test_load_from_registry_is_fast(store: Store) -> None:
    fresh = ModelRegistry(store.settings)
    fresh.load_alias("T-9")
    timings = []
    for _ in range(20):
        started = time.perf_counter()
        fresh.load_alias("T-10")
        timings.append(time.perf_counter() - started)
    assert np.percentile(timings, 95) <= 0.5


def test_unknown_channel_is_model_not_found(store: Store) -> None:
    cache = ModelCache(store.registry, registry=CollectorRegistry())
    with pytest.raises(ModelNotFound, match="channel Z-404"):
        cache.get("Z-404")
    with pytest.raises(ModelNotFound):
        cache.get("Z-404")
    assert cache.metrics.load_failures.labels(channel="Z-404")._value.get() == 1


def test_concurrent_requests_trigger_one_load(store: Store) -> None:
    cache = ModelCache(store.registry, registry=CollectorRegistry())
    barrier = threading.Barrier(8)
    got: list[LstmWeights] = []

    def fetch() -> None:
        barrier.wait()
        got.append(cache.get("T-10"))

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 8 and all(w is got[0] for w in got)
    assert cache.metrics.loads._value.get() == 1
    assert cache.metrics.misses._value.get() == 1
    assert cache.metrics.hits._value.get() == 8


def test_lru_evicts_by_count_and_bytes(store: Store) -> None:
    by_count = ModelCache(store.registry, max_models=1, registry=CollectorRegistry())
    by_count.get("T-10")
    by_count.get("T-9")
    assert list(by_count.versions()) == ["T-9"]
    assert by_count.metrics.evictions._value.get() == 1
    one_model = by_count.nbytes
    by_bytes = ModelCache(store.registry, max_bytes=one_model + 1, registry=CollectorRegistry())
    by_bytes.get("T-9")
    by_bytes.get("T-10")
    assert list(by_bytes.versions()) == ["T-10"] and by_bytes.metrics.bytes._value.get() <= one_model + 1


def _challenger(weights: LstmWeights) -> LstmWeights:
    """The same model with a shifted Dense bias: a distinct version with known output."""
    return LstmWeights(
        weights.channel,
        weights.layers,
        weights.dense_kernel,
        weights.dense_bias + np.float32(0.25),
        weights.recurrent_activation,
        weights.l_s,
        "trained",
    )


def test_promotion_reaches_a_running_cache(store: Store) -> None:
    cache = ModelCache(store.registry, refresh_seconds=0.2, registry=CollectorRegistry())
    before = cache.get("T-9")
    challenger = store.registry.register_weights(_challenger(before), aliases=["challenger"])
    cache.start()
    try:
        time.sleep(0.5)
        assert cache.versions()["T-9"] == before.version  # challenger alone changes nothing
        _cli(store.state_dir, "models", "promote", "T-9", challenger.version)
        deadline = time.monotonic() + 10
        while cache.versions()["T-9"] != challenger.version and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        cache.stop()
    swapped = cache.get("T-9")
    assert swapped.version == challenger.version
    np.testing.assert_allclose(swapped.dense_bias, before.dense_bias + 0.25)
    store.registry.promote("T-9", before.version)


@pytest.fixture
def tiny_data(tmp_path: Path, nasa_dir: Path) -> Iterator[Path]:
    """P-1 cut to 400 rows per split: enough for l_s 50 windows, quick to train."""
    data = tmp_path / "data"
    for split in ("train", "test"):
        (data / split).mkdir(parents=True)
        np.save(data / split / "P-1.npy", np.load(nasa_dir / split / "P-1.npy")[:400])
    lines = (nasa_dir / "labeled_anomalies.csv").read_text().splitlines()
    rows = [lines[0], *[line for line in lines if line.startswith("P-1,")]]
    (data / "labeled_anomalies.csv").write_text("\n".join(rows) + "\n")
    yield data


def test_train_one_epoch_registers_a_listed_version(store: Store, tiny_data: Path, tmp_path: Path) -> None:
    env = {"TMSTREAM_MODEL_LAYERS": "[8, 8]", "TMSTREAM_MODEL_L_S": "50"}
    _cli(store.state_dir, "train", "--channel", "P-1", "--epochs", "1", env=env, data_dir=tiny_data)
    listing = json.loads(_cli(store.state_dir, "models", "list", "--json").stdout)
    (trained,) = [row for row in listing if row["channel"] == "P-1"]
    assert trained["source"] == "trained" and trained["aliases"] == ["champion"]
    assert trained["metrics"]["epochs"] == 1 and trained["metrics"]["loss"] > 0
    assert trained["recurrent_activation"] == "sigmoid"
    out = tmp_path / "p1.npy"
    _cli(store.state_dir, "predict", "--channel", "P-1", "--out", str(out), env=env, data_dir=tiny_data)
    assert np.load(out).shape == (400 - 50 - 10,)
