"""A NumPy/numba LSTM forward pass that reproduces the Keras models without TensorFlow.

Why not Keras ``predict``: the worker must stay small (no TF) and fast. The recurrent matmuls go
to BLAS; the gate math of one step is one fused numba kernel (``nogil``, vectorised, float32).
Keras/TF's CPU ``tanh`` is Eigen's rational approximation, so the kernel uses the same one: it
vectorises where libm's ``tanhf`` does not, and it tracks the 2018 predictions to ~1e-6.

Everything is laid out transposed, windows last: gates (4H, windows) = W^T · state^T. The gate
kernel then walks each unit's windows as one contiguous run, which LLVM vectorises fully; with
windows first, each window's 80 units left a scalar remainder and the gates cost 3 times as much
(docs/PERFORMANCE.md, "Engine").

Batches are split across threads with BLAS pinned to one thread each: for GEMMs this small
(320 x 160 by 160 x B), per-call BLAS threading costs more than it gains.

Channels that share an architecture run in one step loop with per-channel weights (a stacked
``np.matmul`` and one gate call per step and layer over all of them), so a stream of many
channels with a few windows each pays the ~2 ms per-call floor once, not once per channel
(docs/PERFORMANCE.md, "Pipeline").
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
_F32_3D = types.Array(types.float32, 3, "C")
_INDEX = types.Array(types.int64, 1, "C")
_CELL_SIGNATURE = types.void(
    _F32_3D, _F32_2D, _INDEX, types.boolean, _F32_3D, _F32_3D, types.int64, types.boolean
)
# contract: let LLVM fuse a*b+c into FMAs (as Eigen's own kernels do); no reassociation, no fast division
_MATH = {"contract"}


@njit(inline="always", fastmath=_MATH, error_model="numpy")
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


@njit(inline="always", fastmath=_MATH, error_model="numpy")
def _hard_sigmoid(x: np.float32) -> np.float32:
    """Keras 2's ``hard_sigmoid``: clip(0.2x + 0.5, 0, 1), the 2018 models' recurrent activation."""
    y = np.float32(0.2) * x + np.float32(0.5)
    y = y if y > np.float32(0.0) else np.float32(0.0)
    return y if y < np.float32(1.0) else np.float32(1.0)


@njit(inline="always", fastmath=_MATH, error_model="numpy")
def _sigmoid(x: np.float32) -> np.float32:
    return np.float32(0.5) * _tanh(np.float32(0.5) * x) + np.float32(0.5)


@njit(inline="always", fastmath=_MATH, error_model="numpy")
def _unit_row(zi, zf, zg, zo, ai, af, ag, ao, step, c, h, gate):
    """One unit of one layer for every window of a segment: contiguous rows, so LLVM vectorises it
    (``gate`` and ``step`` are constants once inlined; ``step`` 0 broadcasts the bias)."""
    for b in range(len(c)):
        k = b * step
        cell = gate(zf[b] + af[k]) * c[b] + gate(zi[b] + ai[k]) * _tanh(zg[b] + ag[k])
        c[b] = cell
        h[b] = gate(zo[b] + ao[k]) * _tanh(cell)


@njit(_CELL_SIGNATURE, fastmath=_MATH, nogil=True, error_model="numpy", cache=True)
def _cell(
    z: np.ndarray,
    add: np.ndarray,
    cols: np.ndarray,
    broadcast: bool,
    c: np.ndarray,
    state: np.ndarray,
    offset: int,
    hard: bool,
) -> None:
    """One LSTM step of every window of n segments, in place, gates i, f, c, o.

    z (n, 4H, S) = the step's matmul; segment m adds ``add[:, cols[m] + b]`` to window b (the
    input projection), or with ``broadcast`` ``add[:, cols[m]]`` to all (its bias). Updates c
    (n, H, S) and writes h into rows ``offset … offset + H - 1`` of state (n, width, S). Windows
    are the last axis, so each unit is one contiguous run for the vector units."""
    count, gates, _ = z.shape
    units = gates // 4
    for m in range(count):
        col = cols[m]
        for r in range(units):
            zi, zf, zg, zo = z[m, r], z[m, units + r], z[m, 2 * units + r], z[m, 3 * units + r]
            ai, af = add[r, col:], add[units + r, col:]
            ag, ao = add[2 * units + r, col:], add[3 * units + r, col:]
            c_row, h_row = c[m, r], state[m, offset + r]
            if hard and broadcast:
                _unit_row(zi, zf, zg, zo, ai, af, ag, ao, 0, c_row, h_row, _hard_sigmoid)
            elif hard:
                _unit_row(zi, zf, zg, zo, ai, af, ag, ao, 1, c_row, h_row, _hard_sigmoid)
            elif broadcast:
                _unit_row(zi, zf, zg, zo, ai, af, ag, ao, 0, c_row, h_row, _sigmoid)
            else:
                _unit_row(zi, zf, zg, zo, ai, af, ag, ao, 1, c_row, h_row, _sigmoid)


@dataclass(frozen=True)
class _Plan:
    """Float32 matrices laid out for the step loop, transposed: gates (4H, windows) = W^T · state^T,
    so the gate kernel runs along windows. Built once per call (cheap)."""

    features: int
    offsets: tuple[int, ...]  # row of each layer's h inside the state (features first)
    units: tuple[int, ...]
    input_kernel_t: np.ndarray  # (4H0, F)
    first_bias: np.ndarray  # (4H0, 1)
    first_stacked_t: np.ndarray  # (4H0, F + H0): [W0; U0]^T, for windows
    first_recurrent_t: np.ndarray  # (4H0, H0), for series (input projected once per row)
    stacked_t: tuple[np.ndarray, ...]  # layers 1..: [W_k; U_k]^T
    biases: tuple[np.ndarray, ...]  # layers 1..: (4H_k, 1)
    dense: np.ndarray  # (1, H_last): column 0 of the Dense kernel
    dense_bias: np.float32
    hard: bool

    @classmethod
    def of(cls, weights: LstmWeights) -> _Plan:
        first = weights.layers[0]
        features = weights.n_features
        offsets, row = [], features
        for layer in weights.layers:
            offsets.append(row)
            row += layer.units
        return cls(
            features=features,
            offsets=tuple(offsets),
            units=tuple(weights.units),
            input_kernel_t=np.ascontiguousarray(first.kernel.T),
            first_bias=first.bias.reshape(-1, 1),
            first_stacked_t=np.ascontiguousarray(np.vstack([first.kernel, first.recurrent_kernel]).T),
            first_recurrent_t=np.ascontiguousarray(first.recurrent_kernel.T),
            stacked_t=tuple(
                np.ascontiguousarray(np.vstack([layer.kernel, layer.recurrent_kernel]).T)
                for layer in weights.layers[1:]
            ),
            biases=tuple(layer.bias.reshape(-1, 1) for layer in weights.layers[1:]),
            dense=np.ascontiguousarray(weights.dense_kernel[:, 0].reshape(1, -1)),
            dense_bias=np.float32(weights.dense_bias[0]),
            hard=weights.recurrent_activation == "hard_sigmoid_keras2",
        )

    @property
    def height(self) -> int:
        return self.offsets[-1] + self.units[-1]


def _forward(
    chosen: Sequence[_Plan],
    steps: int,
    width: int,
    projected: np.ndarray | None = None,
    first_cols: np.ndarray | None = None,
    inputs: np.ndarray | None = None,
) -> np.ndarray:
    """Forward ``width`` windows of each of n segments (segment m with ``chosen[m]``'s weights)
    ``steps`` rows from zero state; returns output[0] of each window, (n, width).

    Series: ``projected`` (4H0, rows) holds rows·W0 + b0 of every channel; segment m's window b at
    step t is column ``first_cols[m] + b + t``. Windows (one segment): ``inputs`` (width, steps, F)
    are copied into the state's feature rows each step. Per step and layer: one (stacked) matmul
    (n, 4H, in) @ (n, in, width) with each segment's own weights, and one gate call for all.
    """
    count, plan = len(chosen), chosen[0]
    units, offsets, f = plan.units, plan.offsets, plan.features
    state = np.zeros((count, plan.height, width), np.float32)
    cells = [np.zeros((count, h, width), np.float32) for h in units]
    gates = [np.empty((count, 4 * h, width), np.float32) for h in units]
    members = np.arange(count, dtype=np.int64)
    stacked = [np.stack([p.stacked_t[k] for p in chosen]) for k in range(len(units) - 1)]
    biases = [np.ascontiguousarray(np.hstack([p.biases[k] for p in chosen])) for k in range(len(units) - 1)]
    if inputs is None:
        assert projected is not None and first_cols is not None
        recurrent = np.stack([p.first_recurrent_t for p in chosen])
        first_state = state[:, f : f + units[0]]
    else:
        recurrent = plan.first_stacked_t[None]
        first_state = state[:, : f + units[0]]
        projected, first_cols = plan.first_bias, members
    windows = inputs is not None
    for t in range(steps):
        if inputs is not None:
            state[0, :f] = inputs[:, t, :].T
        np.matmul(recurrent, first_state, out=gates[0])
        shift = 0 if windows else t
        _cell(gates[0], projected, first_cols + shift, windows, cells[0], state, f, plan.hard)
        for k in range(1, len(units)):
            np.matmul(stacked[k - 1], state[:, offsets[k - 1] : offsets[k] + units[k]], out=gates[k])
            _cell(gates[k], biases[k - 1], members, True, cells[k], state, offsets[k], plan.hard)
    dense = np.stack([p.dense for p in chosen])
    dense_bias = np.array([p.dense_bias for p in chosen], np.float32)[:, None]
    return np.matmul(dense, state[:, offsets[-1] :])[:, 0, :] + dense_bias


@dataclass(frozen=True)
class _Segment:
    """Windows ``start … start + length - 1`` of one channel of a group."""

    member: int  # position of the channel in its group
    start: int
    length: int


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
            return _forward([plan], weights.l_s, stop - start, inputs=inputs[start:stop])[0]

        return self._map(chunk, len(inputs))

    def predict_series(self, weights: LstmWeights, rows: np.ndarray) -> np.ndarray:
        """Predictions (T - l_s,) float64 for every window of a series (T, features).

        Element i is the model on rows i..i+l_s-1. The first layer's input projection is done
        once per row rather than once per window, since each row is shared by l_s windows.
        """
        return self.predict_series_many([(weights, rows)])[0]

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
        lengths = [counts[m] for m in members]
        chunks = _pack(lengths, max(1, -(-sum(lengths) // self._pieces(sum(lengths)))))
        first_cols = np.concatenate([[0], np.cumsum([len(rows32[m]) for m in members])]).astype(int)
        # a chunk's shorter segments run as wide as its longest: zero columns past the last row
        # keep their extra windows in bounds (computed, then dropped)
        widest = max(segment.length for chunk in chunks for segment in chunk)
        projected = np.zeros((4 * plans[0].units[0], first_cols[-1] + widest), np.float32)
        for member, (plan, m) in enumerate(zip(plans, members, strict=True)):
            block = projected[:, first_cols[member] : first_cols[member + 1]]
            np.matmul(plan.input_kernel_t, rows32[m].T, out=block)
            block += plan.first_bias

        def run(chunk: list[_Segment]) -> list[np.ndarray]:
            chosen = [plans[segment.member] for segment in chunk]
            cols = np.array([first_cols[segment.member] + segment.start for segment in chunk], np.int64)
            width = max(segment.length for segment in chunk)
            found = _forward(chosen, l_s, width, projected, cols)
            return [found[i, : segment.length] for i, segment in enumerate(chunk)]

        if self._pool is None or len(chunks) == 1:
            parts = [run(chunk) for chunk in chunks]
        else:
            parts = list(self._pool.map(run, chunks))
        outputs: list[np.ndarray] = [np.empty(length, np.float64) for length in lengths]
        for chunk, found in zip(chunks, parts, strict=True):
            for segment, values in zip(chunk, found, strict=True):
                outputs[segment.member][segment.start : segment.start + segment.length] = values
        return outputs

    def _pieces(self, count: int) -> int:
        """Spans for ``count`` windows: at most ``batch_size`` each, a multiple of the thread count
        so every thread gets an equal share."""
        pieces = max(self.threads, -(-count // self.batch_size))
        return -(-pieces // self.threads) * self.threads

    def _map(self, chunk: Callable[[int, int], np.ndarray], count: int) -> np.ndarray:
        """Run ``count`` windows on the pool in :meth:`_pieces` spans."""
        if count == 0:
            return np.empty(0, np.float64)
        edges = np.linspace(0, count, min(self._pieces(count), count) + 1).astype(int)
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
