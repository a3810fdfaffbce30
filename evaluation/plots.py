"""Per-channel PNGs and an HTML index of an evaluation (``tmstream report``).

A plot shows why a channel scored as it did: telemetry and prediction on top, smoothed error and
the threshold below, labelled ranges (orange) and detections (red: matched a label, grey: false
positive) shaded across both panels.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.patches import Patch

from evaluation.report import EvaluationReport, StreamResult
from evaluation.scoring import Counts, overlaps
from evaluation.trace import ChannelTrace

LABEL_COLOUR = "tab:orange"
TRUE_DETECTION_COLOUR = "tab:red"
FALSE_DETECTION_COLOUR = "0.45"


def plot_name(result: StreamResult) -> str:
    """File name of a stream's plot (P-2 appears twice in the label file: the row tells which)."""
    return f"{result.stream.channel}-row{result.stream.row}.png"


def render_channel(result: StreamResult, trace: ChannelTrace, path: Path) -> None:
    """Write one stream's PNG."""
    counts = result.counts
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(14, 6), sharex=True, constrained_layout=True)
    top.plot(trace.rows, trace.actual, color="black", linewidth=0.6, label="telemetry")
    top.plot(trace.rows, trace.prediction, color="tab:blue", linewidth=0.6, label="prediction")
    bottom.plot(trace.rows, trace.smoothed, color="tab:purple", linewidth=0.8, label="smoothed error")
    bottom.plot(trace.rows, trace.threshold, color="tab:green", linewidth=1.0, label="threshold (ε)")
    labels = result.stream.info.sequences
    for axis in (top, bottom):
        for label in labels:
            axis.axvspan(label.start, label.end, color=LABEL_COLOUR, alpha=0.25, linewidth=0)
        for detection in result.detections:
            matched = any(overlaps(detection.start, detection.end, s.start, s.end) for s in labels)
            colour = TRUE_DETECTION_COLOUR if matched else FALSE_DETECTION_COLOUR
            axis.axvspan(detection.start, detection.end, color=colour, alpha=0.3, linewidth=0)
    shading = [
        Patch(color=LABEL_COLOUR, alpha=0.25, label="labelled"),
        Patch(color=TRUE_DETECTION_COLOUR, alpha=0.3, label="detected (true)"),
        Patch(color=FALSE_DETECTION_COLOUR, alpha=0.3, label="detected (false)"),
    ]
    lines, _ = top.get_legend_handles_labels()
    top.legend(handles=[*lines, *shading], loc="upper left", fontsize=8, ncols=5)
    bottom.legend(loc="upper left", fontsize=8)
    top.set_ylabel("value (scaled)")
    bottom.set_ylabel("|error|, EWMA")
    bottom.set_xlabel("test row")
    top.set_title(
        f"{result.stream.channel} ({result.stream.spacecraft}): TP {counts.tp}  FP {counts.fp}  "
        f"FN {counts.fn}, flagged {counts.flagged_share:.1%}"
    )
    figure.savefig(path, dpi=80)
    plt.close(figure)


COLUMNS = ("TP", "FP", "FN", "precision", "recall", "F0.5", "flagged", "point precision")


def _cells(counts: Counts) -> list[str]:
    return [
        str(counts.tp),
        str(counts.fp),
        str(counts.fn),
        f"{counts.precision:.3f}",
        f"{counts.recall:.3f}",
        f"{counts.f0_5:.3f}",
        f"{counts.flagged_share:.3f}",
        f"{counts.point_precision:.3f}",
    ]


def write_index(report: EvaluationReport, plotted: Sequence[StreamResult], path: Path) -> None:
    """``index.html``: per-spacecraft and total rows, then one row per plotted stream with its link."""
    scopes = [*sorted(report.by_spacecraft.items()), ("total", report.total)]
    rows = [
        f"<tr class='summary'><th>{html.escape(name)}</th><td></td>"
        + "".join(f"<td>{cell}</td>" for cell in _cells(counts))
        + "</tr>"
        for name, counts in scopes
    ]
    rows += [
        f"<tr><th><a href='{html.escape(plot_name(result))}'>{html.escape(result.stream.channel)}</a></th>"
        f"<td>{html.escape(result.stream.spacecraft)}</td>"
        + "".join(f"<td>{cell}</td>" for cell in _cells(result.counts))
        + "</tr>"
        for result in plotted
    ]
    header = "<tr><th>stream</th><th>spacecraft</th>" + "".join(f"<th>{c}</th>" for c in COLUMNS) + "</tr>"
    title = html.escape(f"{report.detector} thresholding, predictions: {report.predictions}")
    path.write_text(
        "<!doctype html>\n<html><head><meta charset='utf-8'>"
        f"<title>{title}</title>"
        "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:right}"
        "tr.summary{background:#eee}</style></head><body>"
        f"<h1>{title}</h1><table>{header}{''.join(rows)}</table></body></html>\n"
    )
