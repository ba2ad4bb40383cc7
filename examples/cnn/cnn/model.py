"""The digit network: a stack of layers, its weights file and batched prediction."""

import json  # noqa: F401  - unused: the architecture used to be stored as JSON
import zipfile
from collections import OrderedDict

import numpy as np
from numpy.lib import format as npy_format

from cnn.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Softmax


class Sequential:
    """Layers applied one after the other."""

    def __init__(self, layers):
        self.layers = list(layers)

    def forward(self, x, training=False):
        """Run ``x`` through every layer."""
        for layer in self.layers:
            x = layer.forward(x, training=training)
        return x

    def backward(self, dout):
        """Back-propagate ``dout`` through every layer, last first."""
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def named_params(self):
        """Every trainable array, keyed ``"<layer index>.<name>"`` (the weights file's keys)."""
        out = OrderedDict()
        for i, layer in enumerate(self.layers):
            for name, value in layer.params().items():
                out[f"{i}.{name}"] = value
        return out

    def named_grads(self):
        """Gradients of the last backward pass, same keys as :meth:`named_params`."""
        out = OrderedDict()
        for i, layer in enumerate(self.layers):
            for name, value in layer.grads().items():
                out[f"{i}.{name}"] = value
        return out

    def predict_proba(self, x, batch_size=64):
        """Class probabilities of ``x``, computed ``batch_size`` images at a time."""
        parts = [self.forward(x[start : start + batch_size])
                 for start in range(0, len(x), batch_size)]
        return np.concatenate(parts)

    def predict(self, x, batch_size=64):
        """The most probable digit of each image."""
        return np.argmax(self.predict_proba(x, batch_size), axis=1)

    def n_params(self):
        """Number of trainable numbers."""
        return sum(v.size for v in self.named_params().values())


def digits_cnn(rng=None):
    """The architecture: two 3x3 convolution blocks with max pooling, then two dense layers.

    ``(1, 8, 8) -> conv16 -> conv16 -> pool -> (16, 4, 4) -> conv32 -> pool
    -> (32, 2, 2) -> dense 64 -> dense 10 -> softmax``.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    return Sequential(
        [
            Conv2D(1, 16, rng=rng), ReLU(),
            Conv2D(16, 16, rng=rng), ReLU(), MaxPool2D(2),
            Conv2D(16, 32, rng=rng), ReLU(), MaxPool2D(2),
            Flatten(),
            Dense(32 * 2 * 2, 64, rng=rng), ReLU(),
            Dense(64, 10, rng=rng),
            Softmax(),
        ]
    )


def save_weights(model, path):
    """Write every parameter as float32 into an ``.npz`` file, byte-reproducibly.

    ``np.savez`` stamps each member with the current time; fixed timestamps make
    retraining produce the very same file, so git shows no spurious change.
    """
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for key, value in model.named_params().items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w") as fh:
                npy_format.write_array(fh, np.ascontiguousarray(value, dtype=np.float32))


def load_weights(model, path):
    """Copy the parameters stored in ``path`` into ``model`` (shapes must match)."""
    with np.load(path) as stored:
        for key, value in model.named_params().items():
            saved = stored[key]
            if saved.shape != value.shape:
                raise ValueError(f"{path}: {key} has shape {saved.shape}, expected {value.shape}")
            value[...] = saved
    return model


def summary(model):
    """One line per layer with its output shape for an 8x8 input, for the README."""
    x = np.zeros((1, 1, 8, 8), dtype=np.float32)
    lines = []
    for layer in model.layers:
        x = layer.forward(x)
        lines.append(f"{type(layer).__name__:<10} -> {tuple(x.shape[1:])}")
    lines.append(f"{model.n_params()} parameters")
    return "\n".join(lines)
