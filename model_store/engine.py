"""A NumPy/numba LSTM forward pass that reproduces the Keras models without TensorFlow.

Why not Keras ``predict``: the worker must stay small (no TF) and fast. The recurrent matmuls go
to BLAS; the gate math of one step is one fused numba kernel (``nogil``, vectorised, float32).
Keras/TF's CPU ``tanh`` is Eigen's rational approximation, so the kernel uses the same one: it
vectorises where libm's ``tanhf`` does not, and it tracks the 2018 predictions to ~1e-6.

Batches are split across threads with BLAS pinned to one thread each: for GEMMs this small
(B x 80 x 320), per-call BLAS threading costs more than it gains (≈2,800 vs ≈4,000 windows/s).

``predict_series_many`` scores many channels that share an architecture in one step loop with
per-channel weights (a stacked ``np.matmul`` and one gate call per step and layer over all of them),
so a stream of many channels with a few windows each pays the ~2 ms per-call floor once, not once
per channel (docs/PERFORMANCE.md, "Pipeline").
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numba import njit, types

from model_store.exceptions import InputError
from model_store.weights import LstmWeights

_F32_2D = types.Array(types.float32, 2, "C")
_CELL_SIGNATURE = types.void(
    _F32_2D, _F32_2D, types.int64, types.int64, _F32_2D, _F32_2D, types.int64, types.boolean
)


@njit(inline="always", fastmath=False, error_model="numpy")
def _tanh(x: np.float32) -> np.float32:
    """Eigen's float tanh (what TF's CPU kernels use): rational 13/6, ≤3.3e-7 absolute error."""
    limit = np.float32(7.90531110763549805)
    x = x if x < limit else limit
    x = x if x > -limit else -limit
    x2 = x * x
    p = x2 * np.float32(-2.76076847742355e-16) + np.float32(2.00018790482477e-13)
    p = x2 * p + np.float32(-8.60467152213735e-11)
    p = x2 * p + np.float32(5.12229709037114e-08)
    p = x2 * p + np.float32(1.48572235717979e-05)
    p = x2 * p + np.float32(6.37261928875436e-04)
    p = x2 * p + np.float32(4.89352455891786e-03)
    p = x * p
    q = x2 * np.float32(1.19825839466702e-06) + np.float32(1.18534705686654e-04)
    q = x2 * q + np.float32(2.26843463243900e-03)
    q = x2 * q + np.float32(4.89352518554385e-03)
    return p / q


@njit(inline="always", fastmath=False, error_model="numpy")
def _gate(x: np.float32, hard: bool) -> np.float32:
    """Keras 2 ``hard_sigmoid`` (clip(0.2x + 0.5, 0, 1)) or the logistic sigmoid via tanh."""
    if hard:
        y = np.float32(0.2) * x + np.float32(0.5)
        y = y if y > np.float32(0.0) else np.float32(0.0)
        return y if y < np.float32(1.0) else np.float32(1.0)
    return np.float32(0.5) * _tanh(np.float32(0.5) * x) + np.float32(0.5)


@njit(_CELL_SIGNATURE, fastmath=False, nogil=True, error_model="numpy", cache=True)
def _cell(
    z: np.ndarray,
    add: np.ndarray,
    add_start: int,
    add_step: int,
    c: np.ndarray,
    state: np.ndarray,
    offset: int,
    hard: bool,
) -> None:
    """One LSTM step for a batch, in place: z (B, 4H) = h·U [+ x·W], plus row ``add_start +
    b·add_step`` of ``add`` (the input projection, or the bias with step 0); updates c and writes
    h into ``state[:, offset:offset+H]``. Gate order i, f, c, o."""
    batch, units = c.shape
    h = np.empty(units, np.float32)
    for b in range(batch):
        zb = z[b]
        ab = add[add_start + b * add_step]
        for j in range(4 * units):
            zb[j] += ab[j]
        cb = c[b]
        for j in range(units):
            cell = _gate(zb[units + j], hard) * cb[j] + _gate(zb[j], hard) * _tanh(zb[2 * units + j])
            cb[j] = cell
            h[j] = _gate(zb[3 * units + j], hard) * _tanh(cell)
        sb = state[b]
        for j in range(units):
            sb[offset + j] = h[j]


_INDEX = types.Array(types.int64, 1, "C")
_CELL_INDEXED_SIGNATURE = types.void(
    _F32_2D, _F32_2D, _INDEX, types.int64, _F32_2D, _F32_2D, types.int64, types.boolean
)


@njit(_CELL_INDEXED_SIGNATURE, fastmath=False, nogil=True, error_model="numpy", cache=True)
def _cell_indexed(
    z: np.ndarray,
    add: np.ndarray,
    index: np.ndarray,
    shift: int,
    c: np.ndarray,
    state: np.ndarray,
    offset: int,
    hard: bool,
) -> None:
    """:func:`_cell` with row ``index[b] + shift`` of ``add`` added to row b: the per-channel input
    projection (index = the window's first row in the stacked projections, shift = the step) or the
    per-channel bias (index = the row's segment, shift 0). Same arithmetic, in the same order."""
    batch, units = c.shape
    h = np.empty(units, np.float32)
    for b in range(batch):
        zb = z[b]
        ab = add[index[b] + shift]
        for j in range(4 * units):
            zb[j] += ab[j]
        cb = c[b]
        for j in range(units):
            cell = _gate(zb[units + j], hard) * cb[j] + _gate(zb[j], hard) * _tanh(zb[2 * units + j])
            cb[j] = cell
            h[j] = _gate(zb[3 * units + j], hard) * _tanh(cell)
        sb = state[b]
        for j in range(units):
            sb[offset + j] = h[j]


@dataclass(frozen=True)
class _Plan:
    """Float32 matrices laid out for the step loop (built once per call, cheap)."""

    features: int
    offsets: tuple[int, ...]  # column of each layer's h inside the state row
    units: tuple[int, ...]
    input_kernel: np.ndarray  # (F, 4H0)
    first_bias: np.ndarray  # (1, 4H0)
    first_stacked: np.ndarray  # (F + H0, 4H0): [W0; U0], for windows
    first_recurrent: np.ndarray  # (H0, 4H0), for series (input projected once per row)
    stacked: tuple[np.ndarray, ...]  # layers 1..: [W_k; U_k]
    biases: tuple[np.ndarray, ...]  # layers 1..: (1, 4H_k)
    dense: np.ndarray  # (H_last,) column 0 of the Dense kernel
    dense_bias: np.float32
    hard: bool

    @classmethod
    def of(cls, weights: LstmWeights) -> _Plan:
        first = weights.layers[0]
        features = weights.n_features
        offsets, column = [], features
        for layer in weights.layers:
            offsets.append(column)
            column += layer.units
        return cls(
            features=features,
            offsets=tuple(offsets),
            units=tuple(weights.units),
            input_kernel=first.kernel,
            first_bias=first.bias.reshape(1, -1),
            first_stacked=np.ascontiguousarray(np.vstack([first.kernel, first.recurrent_kernel])),
            first_recurrent=first.recurrent_kernel,
            stacked=tuple(
                np.ascontiguousarray(np.vstack([layer.kernel, layer.recurrent_kernel]))
                for layer in weights.layers[1:]
            ),
            biases=tuple(layer.bias.reshape(1, -1) for layer in weights.layers[1:]),
            dense=np.ascontiguousarray(weights.dense_kernel[:, 0]),
            dense_bias=np.float32(weights.dense_bias[0]),
            hard=weights.recurrent_activation == "hard_sigmoid_keras2",
        )

    @property
    def width(self) -> int:
        return self.offsets[-1] + self.units[-1]


def _run_batch(
    plan: _Plan,
    steps: int,
    batch: int,
    projected: np.ndarray | None,
    first_row: int,
    inputs: np.ndarray | None,
) -> np.ndarray:
    """Forward ``batch`` windows of ``steps`` rows from zero state; returns output[0] of each.

    Either ``projected`` (rows·W0 + b0, window b at step t is row first_row + b + t) or
    ``inputs`` (B, steps, F) windows whose rows are copied into the state row each step.
    """
    state = np.zeros((batch, plan.width), np.float32)
    cells = [np.zeros((batch, units), np.float32) for units in plan.units]
    gates = [np.empty((batch, 4 * units), np.float32) for units in plan.units]
    f, h0 = plan.features, plan.units[0]
    for t in range(steps):
        if projected is not None:
            np.matmul(state[:, f : f + h0], plan.first_recurrent, out=gates[0])
            _cell(gates[0], projected, first_row + t, 1, cells[0], state, f, plan.hard)
        else:
            assert inputs is not None
            state[:, :f] = inputs[:, t, :]
            np.matmul(state[:, : f + h0], plan.first_stacked, out=gates[0])
            _cell(gates[0], plan.first_bias, 0, 0, cells[0], state, f, plan.hard)
        for k in range(1, len(plan.units)):
            span = state[:, plan.offsets[k - 1] : plan.offsets[k] + plan.units[k]]
            np.matmul(span, plan.stacked[k - 1], out=gates[k])
            _cell(gates[k], plan.biases[k - 1], 0, 0, cells[k], state, plan.offsets[k], plan.hard)
    last = state[:, plan.offsets[-1] :]
    return np.asarray(last @ plan.dense + plan.dense_bias, dtype=np.float32)


@dataclass(frozen=True)
class _Segment:
    """Windows ``start … start + length - 1`` of one channel of a group."""

    member: int  # position of the channel in its group
    start: int
    length: int


def _run_segments(
    plans: Sequence[_Plan],
    steps: int,
    projected: np.ndarray,
    first_rows: Sequence[int],
    segments: Sequence[_Segment],
) -> list[np.ndarray]:
    """Forward ``segments`` (windows of channels sharing one architecture) from zero state in one
    step loop: per step and layer one stacked matmul (n, S, ·) @ (n, ·, 4H) with each segment's own
    weights and one gate call over all n·S rows. Segments shorter than S are padded by repeating
    their last window (computed, then dropped). ``projected`` stacks every channel's rows·W0 + b0;
    channel m's rows start at ``first_rows[m]``. Returns output[0] of each segment's windows."""
    count, longest = len(segments), max(segment.length for segment in segments)
    rows = count * longest
    units = plans[0].units
    offsets = np.concatenate([[0], np.cumsum(units)]).astype(int).tolist()
    chosen = [plans[segment.member] for segment in segments]
    recurrent = np.stack([plan.first_recurrent for plan in chosen])
    stacked = [np.stack([plan.stacked[k] for plan in chosen]) for k in range(len(units) - 1)]
    biases = [np.concatenate([plan.biases[k] for plan in chosen]) for k in range(len(units) - 1)]
    dense = np.stack([plan.dense for plan in chosen])[:, :, None]
    dense_bias = np.array([plan.dense_bias for plan in chosen], np.float32)[:, None]
    window = np.minimum(np.arange(longest), np.array([[s.length - 1] for s in segments]))
    starts = np.array([[first_rows[s.member] + s.start] for s in segments])
    first_row = np.ascontiguousarray((starts + window).reshape(-1), dtype=np.int64)
    member_row = np.ascontiguousarray(np.repeat(np.arange(count, dtype=np.int64), longest))

    state3 = np.zeros((count, longest, offsets[-1]), np.float32)
    state = state3.reshape(rows, offsets[-1])
    cells = [np.zeros((rows, width), np.float32) for width in units]
    gates3 = [np.empty((count, longest, 4 * width), np.float32) for width in units]
    gates = [gate.reshape(rows, -1) for gate in gates3]
    hard = plans[0].hard
    for t in range(steps):
        np.matmul(state3[:, :, : units[0]], recurrent, out=gates3[0])
        _cell_indexed(gates[0], projected, first_row, t, cells[0], state, 0, hard)
        for k in range(1, len(units)):
            span = state3[:, :, offsets[k - 1] : offsets[k + 1]]
            np.matmul(span, stacked[k - 1], out=gates3[k])
            _cell_indexed(gates[k], biases[k - 1], member_row, 0, cells[k], state, offsets[k], hard)
    output = np.matmul(state3[:, :, offsets[-2] :], dense)[:, :, 0] + dense_bias
    return [output[i, : segment.length] for i, segment in enumerate(segments)]


# channel segments per chunk: their weights (≈307 KB per reference model) must stay in cache, since
# each step reads all of them (all 41 of a thread in one chunk ran about 3 times slower; docs/PERFORMANCE.md)
_SEGMENTS_PER_CHUNK = 8


def _pack(lengths: Sequence[int], target: int) -> list[list[_Segment]]:
    """Cut each channel's windows into segments of at most ``target`` and pack them, longest
    first, into chunks of at most ``target`` padded rows (a chunk pads to its longest segment)."""
    segments: list[_Segment] = []
    for member, length in enumerate(lengths):
        pieces = -(-length // target)
        edges = np.linspace(0, length, pieces + 1).astype(int)
        segments += [_Segment(member, int(a), int(b - a)) for a, b in itertools.pairwise(edges)]
    segments.sort(key=lambda segment: -segment.length)
    chunks: list[list[_Segment]] = []
    for segment in segments:
        last = chunks[-1] if chunks else []
        if last and len(last) < _SEGMENTS_PER_CHUNK and (len(last) + 1) * last[0].length <= target:
            last.append(segment)
        else:
            chunks.append([segment])
    return chunks


def _pin_blas_to_one_thread() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


class InferenceEngine:
    """Windows → one-step predictions (output[0] of the Dense layer), thread-safe, GIL-free."""

    def __init__(self, threads: int | None = None, batch_size: int = 512) -> None:
        self.threads = max(1, threads if threads is not None else (os.cpu_count() or 1))
        self.batch_size = batch_size
        self._pool: ThreadPoolExecutor | None = None
        if self.threads > 1:
            _pin_blas_to_one_thread()
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="tmstream-engine")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def predict_windows(self, weights: LstmWeights, windows: np.ndarray) -> np.ndarray:
        """Predictions (B,) float64 for a micro-batch of windows (B, l_s, features)."""
        windows = np.asarray(windows)
        expected = (weights.l_s, weights.n_features)
        if windows.ndim != 3 or windows.shape[1:] != expected:
            raise InputError(
                f"channel {weights.channel} model version {weights.version}: windows of shape "
                f"{windows.shape}, expected (batch, {expected[0]}, {expected[1]})"
            )
        _require_finite(weights, windows)
        plan = _Plan.of(weights)
        inputs = np.ascontiguousarray(windows, dtype=np.float32)

        def chunk(start: int, stop: int) -> np.ndarray:
            return _run_batch(plan, weights.l_s, stop - start, None, 0, inputs[start:stop])

        return self._map(chunk, len(inputs))

    def predict_series(self, weights: LstmWeights, rows: np.ndarray) -> np.ndarray:
        """Predictions (T - l_s,) float64 for every window of a series (T, features).

        Element i is the model on rows i..i+l_s-1. The first layer's input projection is done
        once per row rather than once per window, since each row is shared by l_s windows.
        """
        rows = np.asarray(rows)
        if rows.ndim != 2 or rows.shape[1] != weights.n_features or rows.shape[0] <= weights.l_s:
            raise InputError(
                f"channel {weights.channel} model version {weights.version}: series of shape "
                f"{rows.shape}, expected (more than {weights.l_s} rows, {weights.n_features})"
            )
        _require_finite(weights, rows)
        plan = _Plan.of(weights)
        rows32 = np.ascontiguousarray(rows, dtype=np.float32)
        count = rows.shape[0] - weights.l_s

        def chunk(start: int, stop: int) -> np.ndarray:
            span = rows32[start : stop + weights.l_s - 1]
            projected = np.ascontiguousarray(span @ plan.input_kernel + plan.first_bias)
            return _run_batch(plan, weights.l_s, stop - start, projected, 0, None)

        return self._map(chunk, count)

    def predict_series_many(self, items: Sequence[tuple[LstmWeights, np.ndarray]]) -> list[np.ndarray]:
        """:meth:`predict_series` of each (weights, rows) pair, in order, in few step loops.

        Channels whose models share an architecture (layer sizes, features, recurrent activation,
        l_s) run together with their own weights: each step is one stacked matmul and one gate call
        per layer for all of them instead of one per channel, which is what a stream of many
        channels with a few new windows each needs. Numbers equal ``predict_series`` (≤1e-6).
        """
        counts: list[int] = []
        rows32: list[np.ndarray] = []
        groups: dict[tuple[object, ...], list[int]] = {}
        for position, (weights, rows) in enumerate(items):
            rows = np.asarray(rows)
            if rows.ndim != 2 or rows.shape[1] != weights.n_features or rows.shape[0] <= weights.l_s:
                raise InputError(
                    f"channel {weights.channel} model version {weights.version}: series of shape "
                    f"{rows.shape}, expected (more than {weights.l_s} rows, {weights.n_features})"
                )
            _require_finite(weights, rows)
            rows32.append(np.ascontiguousarray(rows, dtype=np.float32))
            counts.append(rows.shape[0] - weights.l_s)
            key = (tuple(weights.units), weights.n_features, weights.recurrent_activation, weights.l_s)
            groups.setdefault(key, []).append(position)
        results: list[np.ndarray] = [np.empty(0)] * len(items)
        for members in groups.values():
            for position, found in zip(
                members, self._predict_group(items, rows32, counts, members), strict=True
            ):
                results[position] = found
        return results

    def _predict_group(
        self,
        items: Sequence[tuple[LstmWeights, np.ndarray]],
        rows32: Sequence[np.ndarray],
        counts: Sequence[int],
        members: Sequence[int],
    ) -> list[np.ndarray]:
        plans = [_Plan.of(items[m][0]) for m in members]
        l_s = items[members[0]][0].l_s
        sizes = [len(rows32[m]) for m in members]
        first_rows = np.concatenate([[0], np.cumsum(sizes)]).astype(int).tolist()
        projected = np.empty((first_rows[-1], 4 * plans[0].units[0]), np.float32)
        for member, (plan, m) in enumerate(zip(plans, members, strict=True)):
            block = projected[first_rows[member] : first_rows[member + 1]]
            np.matmul(rows32[m], plan.input_kernel, out=block)
            block += plan.first_bias
        lengths = [counts[m] for m in members]
        total = sum(lengths)
        pieces = max(self.threads, -(-total // self.batch_size))
        pieces = -(-pieces // self.threads) * self.threads
        chunks = _pack(lengths, max(1, -(-total // pieces)))

        def run(chunk: list[_Segment]) -> list[np.ndarray]:
            return _run_segments(plans, l_s, projected, first_rows, chunk)

        if self._pool is None or len(chunks) == 1:
            parts = [run(chunk) for chunk in chunks]
        else:
            parts = list(self._pool.map(run, chunks))
        outputs: list[np.ndarray] = [np.empty(length, np.float64) for length in lengths]
        for chunk, found in zip(chunks, parts, strict=True):
            for segment, values in zip(chunk, found, strict=True):
                outputs[segment.member][segment.start : segment.start + segment.length] = values
        return outputs

    def _map(self, chunk: Callable[[int, int], np.ndarray], count: int) -> np.ndarray:
        """Split ``count`` windows into spans of at most ``batch_size``, a multiple of the
        thread count so every thread gets an equal share, and run them on the pool."""
        if count == 0:
            return np.empty(0, np.float64)
        pieces = max(self.threads, -(-count // self.batch_size))
        pieces = -(-pieces // self.threads) * self.threads
        edges = np.linspace(0, count, min(pieces, count) + 1).astype(int)
        spans = [(int(a), int(b)) for a, b in itertools.pairwise(edges)]
        if self._pool is None or len(spans) == 1:
            parts = [chunk(a, b) for a, b in spans]
        else:
            parts = list(self._pool.map(lambda span: chunk(*span), spans))
        return np.concatenate(parts).astype(np.float64)


def _require_finite(weights: LstmWeights, array: np.ndarray) -> None:
    if not np.issubdtype(array.dtype, np.number):
        raise InputError(
            f"channel {weights.channel} model version {weights.version}: "
            f"input dtype {array.dtype} is not numeric"
        )
    if not np.isfinite(array).all():
        raise InputError(f"channel {weights.channel} model version {weights.version}: input holds NaN or inf")
