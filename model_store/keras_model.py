"""Telemanom's network in Keras 3, and conversion of its trained weights for the NumPy engine.

TensorFlow is imported here (and in training) only: the worker never imports this module.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from model_store.exceptions import WeightsError
from model_store.weights import LstmLayer, LstmWeights, RecurrentActivation
from tmstream.ground.settings import ModelSettings


def keras2_hard_sigmoid(x: Any) -> Any:
    """Keras 2's hard sigmoid, clip(0.2x + 0.5, 0, 1); Keras 3's ``hard_sigmoid`` uses x/6."""
    from keras import ops

    return ops.clip(0.2 * x + 0.5, 0.0, 1.0)


def build_model(
    settings: ModelSettings,
    n_features: int,
    recurrent_activation: RecurrentActivation = "sigmoid",
) -> Any:
    """LSTM(layers[0], sequences) → Dropout → … → LSTM(layers[-1]) → Dropout → Dense(n_predictions)."""
    import keras

    activation: Any = keras2_hard_sigmoid if recurrent_activation == "hard_sigmoid_keras2" else "sigmoid"
    stack: list[Any] = [keras.Input(shape=(None, n_features))]
    for number, units in enumerate(settings.layers):
        last = number == len(settings.layers) - 1
        stack.append(keras.layers.LSTM(units, return_sequences=not last, recurrent_activation=activation))
        stack.append(keras.layers.Dropout(settings.dropout))
    stack.append(keras.layers.Dense(settings.n_predictions))
    stack.append(keras.layers.Activation("linear"))
    model = keras.Sequential(stack, name="telemanom")
    model.compile(loss=settings.loss, optimizer=settings.optimizer)
    return model


def to_lstm_weights(model: Any, channel: str, l_s: int, source: str = "trained") -> LstmWeights:
    """The engine's view of a built Keras model (LSTM and Dense layers in model order)."""
    import keras

    layers: list[LstmLayer] = []
    activations: set[RecurrentActivation] = set()
    dense: list[np.ndarray] | None = None
    for layer in model.layers:
        if isinstance(layer, keras.layers.LSTM):
            kernel, recurrent, bias = (np.asarray(w, dtype=np.float32) for w in layer.get_weights())
            layers.append(LstmLayer(kernel, recurrent, bias))
            activations.add(_activation_name(layer.cell.recurrent_activation, channel))
        elif isinstance(layer, keras.layers.Dense):
            dense = [np.asarray(w, dtype=np.float32) for w in layer.get_weights()]
    if dense is None or len(activations) != 1:
        raise WeightsError(f"channel {channel}: the Keras model is not a Telemanom LSTM stack")
    return LstmWeights(channel, tuple(layers), dense[0], dense[1], activations.pop(), l_s, source)


def _activation_name(function: Any, channel: str) -> RecurrentActivation:
    if function is keras2_hard_sigmoid:
        return "hard_sigmoid_keras2"
    if getattr(function, "__name__", "") == "sigmoid":
        return "sigmoid"
    raise WeightsError(
        f"channel {channel}: recurrent activation {function!r} is neither sigmoid nor Keras 2's hard sigmoid"
    )


def from_lstm_weights(weights: LstmWeights, settings: ModelSettings) -> Any:
    """A Keras model holding the given weights (to compare with Keras ``predict``)."""
    layout = settings.model_copy(update={"layers": weights.units, "n_predictions": weights.n_predictions})
    model = build_model(layout, weights.n_features, weights.recurrent_activation)
    lstm = [layer for layer in model.layers if layer.__class__.__name__ == "LSTM"]
    for layer, values in zip(lstm, weights.layers, strict=True):
        layer.set_weights([values.kernel, values.recurrent_kernel, values.bias])
    dense = next(layer for layer in model.layers if layer.__class__.__name__ == "Dense")
    dense.set_weights([weights.dense_kernel, weights.dense_bias])
    return model
