"""`tmstream report`: one channel rendered, its PNG written and its numbers in the HTML table."""

from __future__ import annotations

import json
import re

from typer.testing import CliRunner

from tmstream.cli import app
from tmstream.cli.evaluate import EvaluationError

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def table_rows(html: str) -> dict[str, list[str]]:
    """First cell (the stream or scope name, link text included) -> the remaining cells."""
    rows = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", html):
        cells = [re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row)]
        rows[cells[0]] = cells[1:]
    return rows


def test_one_channel_plot_and_index_with_the_2018_counts(nasa_dir, tmp_path, logged_streams):
    out = tmp_path / "report"
    args = ["--data-dir", str(nasa_dir), "report", "--channel", "P-1", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "P-1-row1.png").read_bytes().startswith(PNG_MAGIC)
    html = (out / "index.html").read_text()
    assert "href='P-1-row1.png'" in html
    logged = next(s for s in logged_streams if s.channel == "P-1")
    rows = table_rows(html)
    assert rows["P-1"][:4] == ["SMAP", str(logged.tp), str(logged.fp), str(logged.fn)]
    assert rows["total"][1:4] == [str(logged.tp), str(logged.fp), str(logged.fn)]
    precision = logged.tp / (logged.tp + logged.fp)
    assert rows["P-1"][4] == f"{precision:.3f}"


def test_a_synthetic_channel_plot_and_index_with_the_evaluated_counts(synth_dir, synth_predictions, tmp_path):
    predictions = ["--predictions", str(synth_predictions)]
    evaluate = ["evaluate", "--no-mlflow", "--channels", "E-1", *predictions, "--json"]
    evaluated = runner.invoke(app, ["--data-dir", str(synth_dir), *evaluate])
    assert evaluated.exit_code == 0, evaluated.output
    counts = json.loads(evaluated.stdout)["channels"][0]
    out = tmp_path / "report"
    args = ["--data-dir", str(synth_dir), "report", "--channel", "E-1", *predictions, "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    image = f"E-1-row{counts['row']}.png"  # the label file's row
    assert (out / image).read_bytes().startswith(PNG_MAGIC)
    html = (out / "index.html").read_text()
    assert f"href='{image}'" in html
    rows = table_rows(html)
    assert rows["E-1"][:4] == ["SMAP", str(counts["tp"]), str(counts["fp"]), str(counts["fn"])]
    assert counts["tp"] + counts["fp"] >= 1


def test_a_channel_or_all_must_be_chosen(synth_dir, tmp_path):
    result = runner.invoke(app, ["--data-dir", str(synth_dir), "report", "--out", str(tmp_path)])
    assert isinstance(result.exception, EvaluationError)
