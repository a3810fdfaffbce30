"""A NumPy/numba LSTM forward pass that reproduces the Keras models without TensorFlow.

Why not Keras ``predict``: the worker must stay small (no TF) and fast. The recurrent matmuls go
to BLAS; the gate math of one step is one fused numba kernel (``nogil``, vectorised, float32).
Keras/TF's CPU ``tanh`` is Eigen's rational approximation, so the kernel uses the same one: it
vectorises where libm's ``tanhf`` does not, and it tracks the 2018 predictions to ~1e-6.

Everything is laid out transposed, windows last: gates (4H, windows) = W^T · state^T. The gate
kernel then walks each unit's windows as one contiguous run, which LLVM vectorises fully; with
windows first, each window's 80 units left a scalar remainder and the gates cost 3 times as much
(docs/PERFORMANCE.md, "Engine").

Each channel's windows run in ``_forward``, one numba call that holds the whole 250-step loop
(BLAS GEMMs through ``np.dot``, then the gate kernel), so a call costs no interpreter time per
step: a stream of many channels with one new window each pays ~2 ms per window, not ~3.5 ms plus
a per-call floor. Work is split across threads with BLAS pinned to one thread each: for GEMMs
this small (320 x 160 by 160 x B), per-call BLAS threading costs more than it gains.

A segment of a few windows (``NARROW_WINDOWS``, a steady stream's micro-batch: one to a few new
points per channel) runs ``_forward_narrow`` instead, laid out windows first: OpenBLAS repacks
the whole kernel on every call and runs at a fifth of its rate for 1-8 columns, and gates
vectorised along 1-8 windows stay scalar. There, the products are numba dot products that keep
four kernel rows in L1 across the windows, and the gates run along each window's units.
"""

from __future__ import annotations

import itertools
import os
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from model_store.exceptions import InputError
from model_store.weights import LstmWeights

# contract: let LLVM fuse a*b+c into FMAs (as Eigen's own kernels do); no reassociation, no fast division
_MATH = {"contract"}
# segments of at most this many windows take the windows-first step loop (``_forward_narrow``):
# where it and BLAS cost the same per window here (P-1, one thread: both ≈1.1-1.3 ms at 12-16)
NARROW_WINDOWS = 12
LISTS_PER_THREAD = 4


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
def _gate(x: np.float32, hard: bool) -> np.float32:
    """The recurrent activation: Keras 2's hard sigmoid (``hard``) or the sigmoid. ``hard`` is a
    constant in each kernel (``_kernels``), so the choice is made at compile time."""
    return _hard_sigmoid(x) if hard else _sigmoid(x)


@njit(inline="always", fastmath=_MATH, error_model="numpy")
def _unit_row(zi, zf, zg, zo, ai, af, ag, ao, step, c, h, hard):
    """One unit of one layer for every window of a segment: contiguous rows, so LLVM vectorises it
    (``hard`` and ``step`` are constants once inlined; ``step`` 0 broadcasts the bias)."""
    for b in range(len(c)):
        k = b * step
        cell = _gate(zf[b] + af[k], hard) * c[b] + _gate(zi[b] + ai[k], hard) * _tanh(zg[b] + ag[k])
        c[b] = cell
        h[b] = _gate(zo[b] + ao[k], hard) * _tanh(cell)


@njit(inline="always", fastmath=_MATH, error_model="numpy")
def _cell(z, add, col, broadcast, c, state, offset, hard):
    """One LSTM step of every window, in place, gates i, f, c, o.

    z (4H, S) = the step's matmul; window b adds ``add[:, col + b]`` (the input projection), or
    with ``broadcast`` ``add[:, col]`` (the bias). Updates c (H, S) and writes h into rows
    ``offset … offset + H - 1`` of state (rows, S). Windows are the last axis, so each unit is
    one contiguous run for the vector units."""
    units = c.shape[0]
    for r in range(units):
        zi, zf, zg, zo = z[r], z[units + r], z[2 * units + r], z[3 * units + r]
        ai, af = add[r, col:], add[units + r, col:]
        ag, ao = add[2 * units + r, col:], add[3 * units + r, col:]
        if broadcast:  # a constant step in each loop: the bias broadcast, or a column per window
            _unit_row(zi, zf, zg, zo, ai, af, ag, ao, 0, c[r], state[offset + r], hard)
        else:
            _unit_row(zi, zf, zg, zo, ai, af, ag, ao, 1, c[r], state[offset + r], hard)


# the narrow path's dot products may sum in any order (vectorised along the inputs): ≤1e-6 apart
_DOT_MATH = {"contract", "reassoc"}


@njit(fastmath=_DOT_MATH, nogil=True, error_model="numpy", cache=True)  # not inlined: it keeps its flags
def _rows_dot(kernel, state, low, out):
    """out[b, j] = kernel[j] · state[b, low : low + inputs] for every window b and row j.

    Four rows at a time, for every window before the next four: each load of a window's inputs
    feeds four vectorised reductions and the four rows stay in L1 across windows (OpenBLAS packs
    the whole kernel on every call: slow for a few columns)."""
    rows, width = kernel.shape  # rows = 4H: always four at a time
    for j in range(0, rows, 4):
        r0, r1, r2, r3 = kernel[j], kernel[j + 1], kernel[j + 2], kernel[j + 3]
        for b in range(state.shape[0]):
            x = state[b, low : low + width]
            a0 = a1 = a2 = a3 = np.float32(0.0)
            for k in range(width):
                v = x[k]
                a0 += r0[k] * v
                a1 += r1[k] * v
                a2 += r2[k] * v
                a3 += r3[k] * v
            out[b, j], out[b, j + 1], out[b, j + 2], out[b, j + 3] = a0, a1, a2, a3


@njit(inline="always", fastmath=_MATH, error_model="numpy")
def _window_cell(z, add, c, h, hard):
    """One LSTM step of one window, gates i, f, c, o along its units (contiguous: vectorised)."""
    n = c.shape[0]
    zi, zf, zg, zo = z[:n], z[n : 2 * n], z[2 * n : 3 * n], z[3 * n :]
    ai, af, ag, ao = add[:n], add[n : 2 * n], add[2 * n : 3 * n], add[3 * n :]
    _unit_row(zi, zf, zg, zo, ai, af, ag, ao, 1, c, h, hard)


def _kernels(hard: bool) -> tuple[Any, Any, Any]:
    """``_forward``, ``_forward_narrow`` and ``_carry`` for one recurrent activation, from one source.

    ``hard`` is a closure constant: each activation gets kernels of its own, the gate inlined
    and its branch folded away at compile time (numba caches both, keyed by the closure's
    value). Gate kernels chosen by a run-time flag and not inlined cost 10-25% of the wide rate.
    """

    @njit(fastmath=_MATH, nogil=True, error_model="numpy", cache=True)
    def _forward(projected, col, inputs, steps, width, first, upper, upper_index, offsets, dense, dense_bias):
        """Forward ``width`` windows ``steps`` rows from zero state; output[0] of each, float32.

        Series: ``projected`` (4H0, rows) holds rows·W0 + b0; window b at step t is column
        ``col + b + t``, and ``first`` is U0^T. Windows (``inputs`` (width, steps, F) not empty):
        each step copies the rows into the state's feature rows, and ``first`` is [W0; U0]^T with
        the bias in ``projected`` column ``col``. Layer k ≥ 1: [W_k; U_k]^T and its bias sit in
        ``upper`` at ``upper_index[k - 1]`` = (start, 4H_k, inputs, bias start).

        The whole step loop runs here, so a call costs the same per step whatever the width: no
        interpreter between the BLAS calls (np.dot) and the gate kernel. That is what keeps a
        stream of many channels with one new window each cheap.
        """
        features = offsets[0]
        height = offsets[-1] + dense.shape[1]
        windows = inputs.shape[0] > 0
        state = np.zeros((height, width), np.float32)
        cells = np.zeros((height, width), np.float32)
        gates = np.empty(4 * height * width, np.float32)
        units0 = first.shape[0] // 4
        below = 0 if windows else features
        for t in range(steps):
            if windows:
                for f in range(features):
                    for b in range(width):
                        state[f, b] = inputs[b, t, f]
            z = gates[: 4 * units0 * width].reshape((4 * units0, width))
            np.dot(first, state[below : features + units0], z)
            shift = 0 if windows else t
            _cell(z, projected, col + shift, windows, cells[features : features + units0], state, features,
                  hard)  # fmt: skip
            for k in range(1, len(offsets)):
                start, rows, columns, bias = upper_index[k - 1]
                kernel = upper[start : start + rows * columns].reshape((rows, columns))
                biases = upper[bias : bias + rows].reshape((rows, 1))
                units = rows // 4
                z = gates[: rows * width].reshape((rows, width))
                np.dot(kernel, state[offsets[k - 1] : offsets[k - 1] + columns], z)
                _cell(z, biases, 0, True, cells[offsets[k] : offsets[k] + units], state, offsets[k], hard)
        return (np.dot(dense, state[offsets[-1] :]) + dense_bias)[0]

    @njit(fastmath=_MATH, nogil=True, error_model="numpy", cache=True)
    def _forward_narrow(projected, steps, width, first, upper, upper_index, offsets, dense, dense_bias):
        """``_forward`` of a series for a few windows, laid out windows first.

        ``projected`` (rows, 4H0) holds rows·W0 + b0; window b at step t reads row ``b + t``. The
        state and cells are (windows, rows of ``_forward``'s state), so each window's h is
        contiguous for ``_rows_dot`` and its gates run along its units.
        """
        height = offsets[-1] + dense.shape[1]
        state = np.zeros((width, height), np.float32)
        cells = np.zeros((width, height), np.float32)
        z = np.empty((width, 4 * height), np.float32)
        units0 = first.shape[0] // 4
        start0 = offsets[0]
        for t in range(steps):
            _rows_dot(first, state, start0, z)
            for b in range(width):
                _window_cell(z[b, : 4 * units0], projected[b + t], cells[b, start0 : start0 + units0],
                             state[b, start0 : start0 + units0], hard)  # fmt: skip
            for k in range(1, len(offsets)):
                start, rows, columns, bias = upper_index[k - 1]
                kernel = upper[start : start + rows * columns].reshape((rows, columns))
                low, high = offsets[k], offsets[k] + rows // 4
                biases = upper[bias : bias + rows]
                _rows_dot(kernel, state, offsets[k - 1], z)
                for b in range(width):
                    _window_cell(z[b, :rows], biases, cells[b, low:high], state[b, low:high], hard)
        found = np.empty(width, np.float32)
        for b in range(width):
            found[b] = np.sum(dense[0] * state[b, offsets[-1] :]) + dense_bias
        return found

    @njit(fastmath=_MATH, nogil=True, error_model="numpy", cache=True)
    def _carry(rows, state, cells, input_kernel, first, first_bias, upper, upper_index, offsets, dense,
               dense_bias):  # fmt: skip
        """Feed ``rows`` (T, F) into one carried state, one LSTM step each; the prediction after
        each row.

        ``state`` and ``cells`` (1, rows of ``_forward``'s state) hold each layer's h and c after
        the rows before, updated in place (the feature rows are scratch). Every product is a
        ``_rows_dot`` of this channel alone, never a BLAS call whose kernel depends on the batch, so
        the result of a row does not depend on how the rows were split into calls or which other
        channels shared the call: a state restored from a snapshot continues bit for bit.
        """
        features = offsets[0]
        units0 = first.shape[0] // 4
        z = np.empty((1, 4 * state.shape[1]), np.float32)
        projected = np.empty((1, 4 * units0), np.float32)
        found = np.empty(rows.shape[0], np.float32)
        for t in range(rows.shape[0]):
            for f in range(features):
                state[0, f] = rows[t, f]
            _rows_dot(input_kernel, state, 0, projected)
            for j in range(4 * units0):
                projected[0, j] += first_bias[j, 0]
            _rows_dot(first, state, features, z)
            _window_cell(z[0, : 4 * units0], projected[0], cells[0, features : features + units0],
                         state[0, features : features + units0], hard)  # fmt: skip
            for k in range(1, len(offsets)):
                start, count, columns, bias = upper_index[k - 1]
                kernel = upper[start : start + count * columns].reshape((count, columns))
                low, high = offsets[k], offsets[k] + count // 4
                _rows_dot(kernel, state, offsets[k - 1], z)
                biases = upper[bias : bias + count]
                _window_cell(z[0, :count], biases, cells[0, low:high], state[0, low:high], hard)
            found[t] = np.sum(dense[0] * state[0, offsets[-1] :]) + dense_bias
        return found

    return _forward, _forward_narrow, _carry


# (_forward, _forward_narrow, _carry) by recurrent activation: True is Keras 2's hard sigmoid (the 2018
# models), False the sigmoid (models trained here); each compiled on first use
_KERNELS = {hard: _kernels(hard) for hard in (True, False)}


@dataclass(frozen=True)
class _Plan:
    """Float32 matrices laid out for ``_forward``, transposed: gates (4H, windows) = W^T · state^T,
    so the gate kernel runs along windows. The state's rows: features, then each layer's h."""

    offsets: np.ndarray  # (layers,) int64: row of each layer's h in the state (features first)
    units0: int
    input_kernel_t: np.ndarray  # (4H0, F)
    first_bias: np.ndarray  # (4H0, 1)
    first_recurrent_t: np.ndarray  # (4H0, H0), for series (input projected once per row)
    upper: np.ndarray  # layers 1..: [W_k; U_k]^T raveled, then b_k, one after the other
    upper_index: np.ndarray  # (layers - 1, 4) int64: start, 4H_k, inputs, bias start
    dense: np.ndarray  # (1, H_last): column 0 of the Dense kernel
    dense_bias: np.float32
    hard: bool

    @classmethod
    def of(cls, weights: LstmWeights) -> _Plan:
        first = weights.layers[0]
        offsets, row = [], weights.n_features
        for layer in weights.layers:
            offsets.append(row)
            row += layer.units
        parts: list[np.ndarray] = []
        index: list[tuple[int, int, int, int]] = []
        start = 0
        for layer in weights.layers[1:]:
            kernel = np.vstack([layer.kernel, layer.recurrent_kernel]).T
            index.append((start, kernel.shape[0], kernel.shape[1], start + kernel.size))
            parts += [kernel.ravel(), layer.bias]
            start += kernel.size + layer.bias.size
        return cls(
            offsets=np.array(offsets, np.int64),
            units0=first.units,
            input_kernel_t=np.ascontiguousarray(first.kernel.T),
            first_bias=np.ascontiguousarray(first.bias.reshape(-1, 1)),
            first_recurrent_t=np.ascontiguousarray(first.recurrent_kernel.T),
            upper=np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32),
            upper_index=np.array(index, np.int64).reshape(-1, 4),
            dense=np.ascontiguousarray(weights.dense_kernel[:, 0].reshape(1, -1)),
            dense_bias=np.float32(weights.dense_bias[0]),
            hard=weights.recurrent_activation == "hard_sigmoid_keras2",
        )

    def series(self, span: np.ndarray, steps: int, width: int, narrow: int) -> np.ndarray:
        """The ``width`` windows of ``span`` (width + steps - 1 rows): the input projected once per
        row, then the step loop, narrow (windows first) for at most ``narrow`` windows, else
        transposed."""
        forward, forward_narrow, _ = _KERNELS[self.hard]
        if width <= narrow:
            projected = np.dot(span, self.input_kernel_t.T) + self.first_bias[:, 0]
            return forward_narrow(
                projected, steps, width, self.first_recurrent_t, self.upper,
                self.upper_index, self.offsets, self.dense, self.dense_bias,
            )  # fmt: skip
        projected = np.dot(self.input_kernel_t, span.T) + self.first_bias
        return forward(
            projected, 0, _NO_INPUTS, steps, width, self.first_recurrent_t,
            self.upper, self.upper_index, self.offsets, self.dense, self.dense_bias,
        )  # fmt: skip

    def windows(self, inputs: np.ndarray) -> np.ndarray:
        """Windows given whole: layer 0 takes [x_t h_t] · [W0; U0] each step. That stacked matrix
        is built per call, not kept: the worker scores series only, and with 82 models cached a
        kept copy cost 13 MB of its 512 MB."""
        stacked = np.hstack([self.input_kernel_t, self.first_recurrent_t])
        forward = _KERNELS[self.hard][0]
        return forward(
            self.first_bias, 0, inputs, inputs.shape[1], inputs.shape[0], stacked,
            self.upper, self.upper_index, self.offsets, self.dense, self.dense_bias,
        )  # fmt: skip

    def carried(self, rows: np.ndarray, carry: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """``_carry`` from ``carry`` (2, units): the predictions after each row, and the new carry."""
        features = int(self.offsets[0])
        height = int(self.offsets[-1]) + self.dense.shape[1]
        state = np.zeros((1, height), np.float32)
        cells = np.zeros((1, height), np.float32)
        if carry is not None:
            state[0, features:], cells[0, features:] = carry[0], carry[1]
        found = _KERNELS[self.hard][2](
            rows, state, cells, self.input_kernel_t, self.first_recurrent_t, self.first_bias,
            self.upper, self.upper_index, self.offsets, self.dense, self.dense_bias,
        )  # fmt: skip
        return found, np.stack([state[0, features:], cells[0, features:]])


@dataclass(frozen=True)
class CarriedSteps:
    """What :meth:`InferenceEngine.carry_many` returns for one channel."""

    predictions: np.ndarray  # (T,) float64: the model's output after each row fed
    carry: np.ndarray  # (2, total units) float32: every layer's h, then every layer's c


_NO_INPUTS = np.zeros((0, 1, 1), np.float32)
# below this many rows in one call, the threads' hand-over costs more than the steps
_CARRY_ROWS_PER_THREAD = 256


@dataclass(frozen=True)
class _Segment:
    """Windows ``start … start + length - 1`` of one channel of a call."""

    member: int  # position of the channel in the call
    start: int
    length: int


def _pack(lengths: Sequence[int], target: int, count: int) -> list[list[_Segment]]:
    """Cut each channel's windows into segments of at most ``target`` and deal them, longest
    first, to ``count`` lists of about equal work (each to the least loaded list)."""
    segments: list[_Segment] = []
    for member, length in enumerate(lengths):
        pieces = -(-length // target)
        edges = np.linspace(0, length, pieces + 1).astype(int)
        segments += [_Segment(member, int(a), int(b - a)) for a, b in itertools.pairwise(edges)]
    segments.sort(key=lambda segment: -segment.length)
    lists: list[list[_Segment]] = [[] for _ in range(count)]
    loads = [0] * count
    for segment in segments:
        lightest = loads.index(min(loads))
        lists[lightest].append(segment)
        loads[lightest] += segment.length
    return [found for found in lists if found]


def _pin_blas_to_one_thread() -> None:
    import scipy.linalg.cython_blas  # noqa: F401  # numba's np.dot calls this BLAS: load it before pinning
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


class InferenceEngine:
    """Windows → one-step predictions (output[0] of the Dense layer), thread-safe, GIL-free."""

    def __init__(
        self, threads: int | None = None, batch_size: int = 512, narrow_windows: int = NARROW_WINDOWS
    ) -> None:
        """``narrow_windows``: segments of at most this many windows take ``_forward_narrow``
        (0: none, every segment through BLAS; ``bench channels`` compares the two)."""
        self.threads = max(1, threads if threads is not None else (os.cpu_count() or 1))
        self.batch_size = batch_size
        self.narrow_windows = narrow_windows
        self._pool: ThreadPoolExecutor | None = None
        self._plans: dict[int, tuple[weakref.ref[LstmWeights], _Plan]] = {}
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
        plan = self._plan(weights)
        inputs = np.ascontiguousarray(windows, dtype=np.float32)

        def chunk(start: int, stop: int) -> np.ndarray:
            return plan.windows(inputs[start:stop])

        return self._map(chunk, len(inputs))

    def predict_series(self, weights: LstmWeights, rows: np.ndarray) -> np.ndarray:
        """Predictions (T - l_s,) float64 for every window of a series (T, features).

        Element i is the model on rows i..i+l_s-1. The first layer's input projection is done
        once per row rather than once per window, since each row is shared by l_s windows.
        """
        return self.predict_series_many([(weights, rows)])[0]

    def predict_series_many(self, items: Sequence[tuple[LstmWeights, np.ndarray]]) -> list[np.ndarray]:
        """:meth:`predict_series` of each (weights, rows) pair, in order, in one call.

        Channels are cut into segments of at most ``batch_size`` windows and dealt to the threads
        by size, each segment one ``_forward`` call with its channel's weights, so a micro-batch
        of many channels with a few windows each costs about its windows, not a floor per channel.
        """
        plans: list[_Plan] = []
        rows32: list[np.ndarray] = []
        for weights, rows in items:
            rows = np.asarray(rows)
            if rows.ndim != 2 or rows.shape[1] != weights.n_features or rows.shape[0] <= weights.l_s:
                raise InputError(
                    f"channel {weights.channel} model version {weights.version}: series of shape "
                    f"{rows.shape}, expected (more than {weights.l_s} rows, {weights.n_features})"
                )
            _require_finite(weights, rows)
            rows32.append(np.ascontiguousarray(rows, dtype=np.float32))
            plans.append(self._plan(weights))
        steps = [weights.l_s for weights, _ in items]
        lengths = [len(rows) - l_s for rows, l_s in zip(rows32, steps, strict=True)]

        def run(segments: list[_Segment]) -> list[np.ndarray]:
            found = []
            for segment in segments:
                plan, l_s = plans[segment.member], steps[segment.member]
                span = rows32[segment.member][segment.start : segment.start + segment.length + l_s - 1]
                found.append(plan.series(span, l_s, segment.length, self.narrow_windows))
            return found

        total = sum(lengths)
        # more lists than threads, taken from the pool's queue as threads free up: a thread that
        # the scheduler pauses (the broker, the event loop share these cores) delays its list only
        lists = _pack(lengths, max(1, -(-total // self._pieces(total))), self.threads * LISTS_PER_THREAD)
        if self._pool is None or len(lists) == 1:
            parts = [run(segments) for segments in lists]
        else:
            parts = list(self._pool.map(run, lists))
        outputs: list[np.ndarray] = [np.empty(length, np.float64) for length in lengths]
        for segments, found in zip(lists, parts, strict=True):
            for segment, values in zip(segments, found, strict=True):
                outputs[segment.member][segment.start : segment.start + segment.length] = values
        return outputs

    def carry_many(
        self, items: Sequence[tuple[LstmWeights, np.ndarray, np.ndarray | None]]
    ) -> list[CarriedSteps]:
        """Stateful inference: feed each channel's rows (T, features) one LSTM step each, from its
        carry (None: the zero state) — ≈1/l_s of a window's cost per point.

        Telemanom predicts each window from a zero state; for a model that forgets its initial
        state within ``l_s`` steps, the output after row i equals the window ending at row i
        (model_store/inference_mode.py measures which do). Channels run independently, spread over
        the threads by rows; each channel's result is the same however its rows are batched.
        """
        plans: list[_Plan] = []
        rows32: list[np.ndarray] = []
        for weights, rows, carry in items:
            rows = np.asarray(rows)
            if rows.ndim != 2 or rows.shape[1] != weights.n_features:
                raise InputError(
                    f"channel {weights.channel} model version {weights.version}: rows of shape "
                    f"{rows.shape}, expected (rows, {weights.n_features})"
                )
            if carry is not None and carry.shape != (2, sum(weights.units)):
                raise InputError(
                    f"channel {weights.channel} model version {weights.version}: a carried state of "
                    f"shape {carry.shape}, expected (2, {sum(weights.units)})"
                )
            _require_finite(weights, rows)
            rows32.append(np.ascontiguousarray(rows, dtype=np.float32))
            plans.append(self._plan(weights))

        def run(members: list[int]) -> list[tuple[int, CarriedSteps]]:
            found = []
            for member in members:
                carry = items[member][2]
                start = None if carry is None else np.ascontiguousarray(carry, dtype=np.float32)
                predictions, after = plans[member].carried(rows32[member], start)
                found.append((member, CarriedSteps(predictions.astype(np.float64), after)))
            return found

        total = sum(len(rows) for rows in rows32)
        count = max(1, min(self.threads, total // _CARRY_ROWS_PER_THREAD, len(items)))
        lists: list[list[int]] = [[] for _ in range(count)]
        loads = [0] * count
        for member in sorted(range(len(items)), key=lambda m: -len(rows32[m])):  # longest first
            lightest = loads.index(min(loads))
            lists[lightest].append(member)
            loads[lightest] += len(rows32[member])
        if self._pool is None or count == 1:
            parts = [run(members) for members in lists]
        else:
            parts = list(self._pool.map(run, lists))
        outputs = dict(pair for part in parts for pair in part)
        return [outputs[member] for member in range(len(items))]

    def predict_series_carried(self, weights: LstmWeights, rows: np.ndarray) -> np.ndarray:
        """:meth:`predict_series` computed statefully: predictions (T - l_s,) for rows l_s…T-1,
        the state carried from row 0 (the same alignment, so the two compare element by element)."""
        rows = np.asarray(rows)
        if rows.ndim != 2 or rows.shape[0] <= weights.l_s:
            raise InputError(
                f"channel {weights.channel} model version {weights.version}: series of shape "
                f"{rows.shape}, expected more than {weights.l_s} rows"
            )
        (steps,) = self.carry_many([(weights, rows[:-1], None)])
        return steps.predictions[weights.l_s - 1 :]

    def _plan(self, weights: LstmWeights) -> _Plan:
        """The weights' plan, built once per weights object (a batch reuses every channel's)."""
        key = id(weights)
        cached = self._plans.get(key)
        if cached is not None and cached[0]() is weights:
            return cached[1]
        plan = _Plan.of(weights)
        self._plans[key] = (weakref.ref(weights, lambda _: self._plans.pop(key, None)), plan)
        return plan

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
