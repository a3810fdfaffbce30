"""One threshold window, exactly as Telemanom 2018 (``errors.py``) evaluated it.

Shared by the batch and the streaming detector so both make the same decision on the same window.
The 2018 code's quirks are kept on purpose (they decide which sequences the published run found):

* an anomalous error extends its sequence by offsets ``0..error_buffer-1`` both ways, and the upper
  bound test is ``x + b > len`` so the index one past the window end can be flagged;
* from the second window on, only the newest ``batch_size`` errors (plus that extra index) can be
  flagged; the first window may flag everything after its warm-up (``ignore_before``);
* the highest non-anomalous error used in pruning skips errors flagged earlier, looked up with an
  offset of ``(window - 1) * batch_size`` (one batch behind the window's real position);
* pruning peaks are taken over ``e_s[start:end]`` (end excluded) and matched back with
  ``list.index`` (first equal peak), and the gate/threshold searches use ``np.mean``/``np.std``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream_workers.thresholding.parameters import ThresholdParameters

Z_CANDIDATES = np.arange(2.5, 12.0, 0.5)
"""Thresholds tried, in standard deviations above the mean (2.5 to 11.5)."""
Z_DEFAULT = 12.0
"""Threshold used when no candidate satisfies the search's sanity checks."""
MAX_SEARCH_SEQUENCES = 5
"""A candidate threshold giving more sequences than this is rejected."""
MAX_SEARCH_SHARE = 0.5
"""A candidate threshold flagging this share of the window or more is rejected."""
MIN_ERROR_SCALE = 0.05
"""Errors under 5 % of the targets' 5-95 percentile range or spread are never anomalous."""
MIN_ERROR = 0.05
"""A window whose largest error is at most this is skipped (errors too small to matter)."""


def consecutive_runs(indices: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) of each run of consecutive integers in a sorted, duplicate-free array."""
    if len(indices) == 0:
        return []
    breaks = np.flatnonzero(np.diff(indices) != 1)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [len(indices) - 1]))
    return [(int(indices[s]), int(indices[e])) for s, e in zip(starts, ends, strict=True)]


def sequences_of(indices: np.ndarray) -> list[tuple[int, int]]:
    """Runs of consecutive indices longer than one value (Telemanom drops single-index runs)."""
    return [(first, last) for first, last in consecutive_runs(indices) if first != last]


def buffered(anomalous: np.ndarray, reach: int, low: int, high: int) -> np.ndarray:
    """Sorted indices within ``reach`` of any anomalous position, clipped to ``[low, high]``."""
    positions = np.flatnonzero(anomalous)
    if len(positions) == 0 or reach < 0 or high < low:
        return np.empty(0, dtype=np.int64)
    span = high - low + 1
    edges = np.zeros(span + 1, dtype=np.int64)
    np.add.at(edges, np.clip(positions - reach - low, 0, span), 1)
    np.add.at(edges, np.clip(positions + reach + 1 - low, 0, span), -1)
    return np.flatnonzero(np.cumsum(edges[:-1]) > 0) + low


def find_z(e_s: np.ndarray, error_buffer: int) -> float:
    """``find_epsilon``: the threshold, in sd above the mean, that best separates anomalies.

    Maximises (relative drop of mean + relative drop of sd when the errors above the threshold are
    removed) / (#flagged errors + #sequences²), rejecting candidates with more than five sequences
    or flagging half the window or more.
    e_s: the window's smoothed errors (or their inverse).
    error_buffer: how far an anomalous error's sequence reaches (offsets 0..error_buffer-1).
    """
    mean, sd = np.mean(e_s), np.std(e_s)
    best_score, best_z = 0.0, Z_DEFAULT
    for z in Z_CANDIDATES:
        epsilon = mean + sd * z
        below = e_s[e_s < epsilon]
        flagged = buffered(e_s > epsilon, error_buffer - 1, 0, len(e_s) - 1)
        if len(flagged) == 0 or len(below) == 0:
            continue
        sequence_count = len(sequences_of(flagged))
        mean_drop = (mean - np.mean(below)) / mean
        sd_drop = (sd - np.std(below)) / sd
        score = (mean_drop + sd_drop) / (sequence_count**2 + len(flagged))
        if (
            score >= best_score
            and sequence_count <= MAX_SEARCH_SEQUENCES
            and len(flagged) < len(e_s) * MAX_SEARCH_SHARE
        ):
            best_z, best_score = float(z), float(score)
    return best_z


@dataclass(frozen=True)
class WindowContext:
    """Where a window sits in its channel; decides which indices it may flag.

    window: 0-based number of the window in the channel (window k starts at error k * batch_size).
    ignore_before: warm-up errors the first window may not flag (2018: 2*l_s, l_s for channels with
        under 2500 errors, 0 under 1800).
    flagged_before: for each window position x, whether error x + (window - 1) * batch_size was
        flagged by an earlier window (the 2018 offset, see the module docstring).
    """

    window: int
    ignore_before: int
    flagged_before: np.ndarray


@dataclass(frozen=True)
class DirectionResult:
    """What one direction (errors, or errors flipped around their mean) flagged in a window."""

    indices: np.ndarray
    z: float
    epsilon: float


@dataclass(frozen=True)
class WindowResult:
    """A window's decision: flagged positions per direction, thresholds and window statistics.

    Positions are window-relative and may equal the window length (the 2018 off-by-one).
    """

    high: DirectionResult
    low: DirectionResult
    mean: float
    sd: float

    @property
    def indices(self) -> np.ndarray:
        return np.union1d(self.high.indices, self.low.indices)


def _flag(
    e_s: np.ndarray,
    epsilon: float,
    targets_range: float,
    targets_sd: float,
    sd: float,
    context: WindowContext,
    params: ThresholdParameters,
) -> tuple[list[tuple[int, int]], np.ndarray, float]:
    """``compare_to_epsilon``: flagged positions, their sequences, the highest unflagged error."""
    empty = np.empty(0, dtype=np.int64)
    peak = float(np.max(e_s))
    if not (sd > MIN_ERROR_SCALE * targets_sd or peak > MIN_ERROR_SCALE * targets_range) or not (
        peak > MIN_ERROR
    ):
        return [], empty, 0.0
    anomalous = (e_s > epsilon) & (e_s > MIN_ERROR_SCALE * targets_range)
    low = context.ignore_before if context.window == 0 else len(e_s) - params.batch_size
    flagged = buffered(anomalous, params.error_buffer - 1, max(low, 0), len(e_s))
    unflagged = ~context.flagged_before
    unflagged[flagged[flagged < len(e_s)]] = False
    candidates = e_s[unflagged]
    highest_normal = float(max(0.0, np.max(candidates))) if len(candidates) else 0.0
    return sequences_of(flagged), flagged, highest_normal


def _prune(
    sequences: list[tuple[int, int]],
    e_s: np.ndarray,
    highest_normal: float,
    flagged: np.ndarray,
    p: float,
) -> np.ndarray:
    """``prune_anoms``: drop sequences whose peak is within p of the next lower peak."""
    sequence_peaks = [float(np.max(e_s[start:end])) for start, end in sequences]
    descending = sorted(sequence_peaks, reverse=True)
    if highest_normal > 0:
        descending.append(highest_normal)
    to_remove: list[int] = []
    for i in range(len(descending) - 1):
        if (descending[i] - descending[i + 1]) / descending[i] < p:
            to_remove.append(sequence_peaks.index(descending[i]))
        else:
            to_remove = []
    kept = list(sequences)
    for position in sorted(to_remove, reverse=True):
        del kept[position]
    inside = np.zeros(len(flagged), dtype=bool)
    for start, end in kept:
        inside |= (flagged >= start) & (flagged <= end)
    return flagged[inside]


def evaluate_window(
    e_s: np.ndarray,
    targets: np.ndarray,
    context: WindowContext,
    params: ThresholdParameters,
) -> WindowResult:
    """``get_anomalies``: flag a window's smoothed errors in both directions and prune.

    e_s: the window's smoothed errors.
    targets: the telemetry values the window predicted; their 5-95 percentile range and spread gate
        which errors are big enough to matter (the 2018 batch passes its 2-D y_test rows, i.e. each
        row's n_predictions values; the stream passes the 1-D actuals).
    context: the window's position and history.
    params: thresholding parameters.
    """
    upper, lower = np.percentile(targets, [95, 5])
    targets_range = upper - lower
    targets_sd = float(np.std(targets))
    mean, sd = float(np.mean(e_s)), float(np.std(e_s))
    e_s_inverse = mean + (mean - e_s)
    z_high = find_z(e_s, params.error_buffer)
    z_low = find_z(e_s_inverse, params.error_buffer)
    results = []
    for values, z_value in ((e_s, z_high), (e_s_inverse, z_low)):
        epsilon = mean + z_value * sd
        sequences, flagged, highest_normal = _flag(
            values, epsilon, targets_range, targets_sd, sd, context, params
        )
        if sequences:
            flagged = _prune(sequences, values, highest_normal, flagged, params.p)
        results.append(DirectionResult(flagged, z_value, epsilon))
    return WindowResult(high=results[0], low=results[1], mean=mean, sd=sd)
