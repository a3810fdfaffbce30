"""`tmstream data info | synth | fetch`: the telemetry data folder."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from producers.dataset import TelemanomDataset
from producers.fetch import fetch as fetch_dataset
from producers.synth import EngineeringChannel, SynthSpec, write_engineering_csv, write_synthetic
from tmstream.cli.context import console, emit_json, settings_from

app = typer.Typer(no_args_is_help=True, help="Inspect, download or synthesise telemetry data.")


def dataset_summary(dataset: TelemanomDataset, l_s: int, n_predictions: int) -> dict[str, Any]:
    """Per-spacecraft counts over the label rows, as Telemanom counts them.

    ``channels`` counts label rows (the evaluated streams), ``evaluated_values`` the test rows that
    get a prediction and an error; ``distinct_channels`` and ``unlabelled_channels`` describe the
    files themselves.
    """
    per: dict[str, dict[str, int]] = defaultdict(
        lambda: {"channels": 0, "test_values": 0, "evaluated_values": 0, "sequences": 0}
    )
    for info in dataset.label_rows:
        row = per[info.spacecraft]
        row["channels"] += 1
        row["test_values"] += info.test_rows
        row["evaluated_values"] += max(0, info.test_rows - l_s - n_predictions)
        row["sequences"] += len(info.sequences)
    total = {key: sum(row[key] for row in per.values()) for key in next(iter(per.values()))}
    names = [info.channel for info in dataset.label_rows]
    return {
        "data_dir": str(dataset.root),
        "spacecraft": dict(per),
        "total": total,
        "distinct_channels": len(dataset.channels),
        "repeated_label_rows": sorted({name for name in names if names.count(name) > 1}),
        "unlabelled_channels": sorted(set(dataset.channels) - set(names)),
    }


@app.command()
def info(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Stable keys.")) -> None:
    """Channels per spacecraft, value counts and labelled anomaly sequences."""
    settings = settings_from(ctx)
    summary = dataset_summary(
        TelemanomDataset(settings.data_dir), settings.model.l_s, settings.model.n_predictions
    )
    if as_json:
        emit_json(summary)
        return
    table = Table(
        "spacecraft", "channels (label rows)", "test values", "evaluated values", "labelled sequences"
    )
    rows = [*summary["spacecraft"].items(), ("total", summary["total"])]
    for name, row in rows:
        table.add_row(
            name,
            f"{row['channels']:,}",
            f"{row['test_values']:,}",
            f"{row['evaluated_values']:,}",
            f"{row['sequences']:,}",
        )
    console.print(f"data folder: {summary['data_dir']}")
    console.print(table)
    console.print(
        f"{summary['distinct_channels']} channel files; label rows repeated: "
        f"{', '.join(summary['repeated_label_rows']) or 'none'}; "
        f"unlabelled: {', '.join(summary['unlabelled_channels']) or 'none'}"
    )


@app.command()
def synth(
    out: Path = typer.Option(..., "--out", help="Folder to write (Telemanom layout)."),
    channels: int = typer.Option(8, min=1, help="Number of channels."),
    train_rows: int = typer.Option(2000, min=300),
    test_rows: int = typer.Option(3000, min=600),
    features: int = typer.Option(25, min=1),
    anomalies: int = typer.Option(2, min=0, help="Anomalies injected per channel."),
    seed: int = typer.Option(7),
) -> None:
    """Write a synthetic data set with injected, labelled anomalies."""
    spec = SynthSpec(channels, train_rows, test_rows, features, anomalies, seed)
    with console.status(f"writing {channels} synthetic channels…"):
        names = write_synthetic(out, spec)
    console.print(f"wrote {len(names)} channels ({names[0]} … {names[-1]}) to {out}")


@app.command("synth-channel")
def synth_channel(
    out: Path = typer.Option(..., "--out", help="CSV file to write."),
    rows: int = typer.Option(6000, min=600, help="Rows, one per minute."),
    anomaly_at: int | None = typer.Option(5400, help="Row where a heater-stuck anomaly starts (none: -1)."),
    seed: int = typer.Option(11),
) -> None:
    """Write one channel in engineering units (a radiator temperature in kelvin, heater and eclipse
    flags) as a CSV, for trying the onboarding path of docs/ONBOARDING.md."""
    spec = EngineeringChannel(rows, None if anomaly_at is None or anomaly_at < 0 else anomaly_at, seed=seed)
    write_engineering_csv(out, spec)
    where = (
        f", anomaly at rows {spec.anomaly_start}-{spec.anomaly_start + spec.anomaly_rows - 1}"
        if spec.anomaly_start is not None
        else ""
    )
    console.print(f"wrote {rows} rows ({', '.join(spec.COLUMNS)}) to {out}{where}")


@app.command()
def fetch(
    ctx: typer.Context,
    out: Path | None = typer.Option(None, "--out", help="Target folder (default: data_dir)."),
) -> None:
    """Download the public SMAP/MSL data set, verify its checksums and unpack it."""
    target = out or settings_from(ctx).data_dir
    with console.status(f"downloading the Telemanom data set into {target}…"):
        count = fetch_dataset(target)
    console.print(f"{count} files verified in {target}")
