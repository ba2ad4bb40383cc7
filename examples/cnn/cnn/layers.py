"""Network layers with forward and backward passes, on ``(batch, channels, height, width)``.

Each layer caches what its backward pass needs during ``forward(x, training=True)``.
Inference only calls ``forward``; the backward passes exist for ``train.py``.
Batch normalisation, dropout, average pooling and the other activations were
tried while designing the network and are not in the final model.
"""

import math  # noqa: F401  - unused since the initialisers moved to numpy's generator

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


class Layer:
    """Base class: a layer without parameters that passes its input through."""

    def params(self):
        """Names and arrays of the trainable parameters (none by default)."""
        return {}

    def grads(self):
        """Gradients of the parameters, same keys as :meth:`params`."""
        return {}

    def forward(self, x, training=False):
        """Output of the layer for input ``x``."""
        return x

    def backward(self, dout):
        """Gradient with respect to the input, given the gradient of the output."""
        return dout


class Conv2D(Layer):
    """2-D convolution, stride 1, zero "same" padding, via im2col and one matrix product."""

    def __init__(self, in_channels, out_channels, kernel=3, rng=None):
        self.kernel = kernel
        self.pad = kernel // 2
        fan_in = in_channels * kernel * kernel
        rng = rng if rng is not None else np.random.default_rng(0)
        # He initialisation keeps the activations' scale through ReLU layers.
        self.w = (rng.standard_normal((out_channels, in_channels, kernel, kernel))
                  * np.sqrt(2.0 / fan_in)).astype(np.float32)
        self.b = np.zeros(out_channels, dtype=np.float32)
        self._cache = None

    def params(self):
        """Kernel ``w`` (out, in, k, k) and bias ``b`` (out,)."""
        return {"w": self.w, "b": self.b}

    def grads(self):
        """Gradients from the last backward pass."""
        return {"w": self.dw, "b": self.db}

    def _columns(self, x):
        n, c, h, w = x.shape
        p = self.pad
        padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        # (n, c, h, w, k, k) view -> (n*h*w, c*k*k) rows, one per output pixel.
        windows = sliding_window_view(padded, (self.kernel, self.kernel), axis=(2, 3))
        return windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * h * w, c * self.kernel**2)

    def forward(self, x, training=False):
        """Convolve ``x`` (n, in, h, w) into (n, out, h, w)."""
        n, _, h, w = x.shape
        cols = self._columns(x)
        out = cols @ self.w.reshape(len(self.w), -1).T + self.b
        if training:
            self._cache = (x.shape, cols)
        return out.reshape(n, h, w, -1).transpose(0, 3, 1, 2)

    def backward(self, dout):
        """Accumulate ``dw``, ``db``; return the gradient of the input (col2im)."""
        shape, cols = self._cache
        n, c, h, w = shape
        k, p = self.kernel, self.pad
        flat = dout.transpose(0, 2, 3, 1).reshape(n * h * w, -1)
        self.dw = (flat.T @ cols).reshape(self.w.shape)
        self.db = flat.sum(axis=0)
        dcols = (flat @ self.w.reshape(len(self.w), -1)).reshape(n, h, w, c, k, k)
        dpadded = np.zeros((n, c, h + 2 * p, w + 2 * p), dtype=dout.dtype)
        for i in range(k):
            for j in range(k):
                dpadded[:, :, i : i + h, j : j + w] += dcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
        return dpadded[:, :, p : p + h, p : p + w]


class ReLU(Layer):
    """Rectified linear unit."""

    def forward(self, x, training=False):
        """``max(x, 0)``."""
        if training:
            self._mask = x > 0
        return np.maximum(x, 0)

    def backward(self, dout):
        """Pass the gradient where the input was positive."""
        return dout * self._mask


class MaxPool2D(Layer):
    """Non-overlapping max pooling (the window is also the stride)."""

    def __init__(self, size=2):
        self.size = size

    def forward(self, x, training=False):
        """Maximum of every ``size`` x ``size`` block."""
        n, c, h, w = x.shape
        s = self.size
        blocks = x.reshape(n, c, h // s, s, w // s, s)
        out = blocks.max(axis=(3, 5))
        if training:
            # Ties send the gradient to every maximum; rare with real-valued inputs.
            self._mask = blocks == out[:, :, :, None, :, None]
        return out

    def backward(self, dout):
        """Route the gradient to the position of each block's maximum."""
        grad = self._mask * dout[:, :, :, None, :, None]
        n, c, hs, s, ws, _ = grad.shape
        return grad.reshape(n, c, hs * s, ws * s)


class Flatten(Layer):
    """``(n, c, h, w) -> (n, c*h*w)``."""

    def forward(self, x, training=False):
        """Flatten all but the batch axis."""
        self._shape = x.shape
        return x.reshape(len(x), -1)

    def backward(self, dout):
        """Restore the input's shape."""
        return dout.reshape(self._shape)


class Dense(Layer):
    """Fully connected layer ``x @ w + b``."""

    def __init__(self, n_in, n_out, rng=None):
        rng = rng if rng is not None else np.random.default_rng(0)
        self.w = (rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)).astype(np.float32)
        self.b = np.zeros(n_out, dtype=np.float32)

    def params(self):
        """Weights ``w`` (in, out) and bias ``b`` (out,)."""
        return {"w": self.w, "b": self.b}

    def grads(self):
        """Gradients from the last backward pass."""
        return {"w": self.dw, "b": self.db}

    def forward(self, x, training=False):
        """Affine map of each row."""
        if training:
            self._x = x
        return x @ self.w + self.b

    def backward(self, dout):
        """Accumulate ``dw``, ``db``; return the gradient of the input."""
        self.dw = self._x.T @ dout
        self.db = dout.sum(axis=0)
        return dout @ self.w.T


class Softmax(Layer):
    """Class probabilities from scores; its gradient is folded into the loss in training."""

    def forward(self, x, training=False):
        """Row-wise softmax, shifted by the row maximum to avoid overflow."""
        z = x - x.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


# ---- layers tried during design, not part of the final network ----


class BatchNorm2D(Layer):
    """Per-channel batch normalisation with running statistics for inference."""

    def __init__(self, channels, momentum=0.9, eps=1e-5):
        self.gamma = np.ones(channels, dtype=np.float32)
        self.beta = np.zeros(channels, dtype=np.float32)
        self.running_mean = np.zeros(channels, dtype=np.float32)
        self.running_var = np.ones(channels, dtype=np.float32)
        self.momentum = momentum
        self.eps = eps

    def params(self):
        """Scale ``gamma`` and shift ``beta``."""
        return {"gamma": self.gamma, "beta": self.beta}

    def grads(self):
        """Gradients from the last backward pass."""
        return {"gamma": self.dgamma, "beta": self.dbeta}

    def forward(self, x, training=False):
        """Normalise each channel by batch (training) or running (inference) statistics."""
        if training:
            mean = x.mean(axis=(0, 2, 3))
            var = x.var(axis=(0, 2, 3))
            self.running_mean = self.momentum * self.running_mean + (1 - self.momentum) * mean
            self.running_var = self.momentum * self.running_var + (1 - self.momentum) * var
        else:
            mean, var = self.running_mean, self.running_var
        inv = 1.0 / np.sqrt(var + self.eps)
        xhat = (x - mean[None, :, None, None]) * inv[None, :, None, None]
        if training:
            self._cache = (xhat, inv)
        return self.gamma[None, :, None, None] * xhat + self.beta[None, :, None, None]

    def backward(self, dout):
        """Gradient through the batch statistics."""
        xhat, inv = self._cache
        m = dout.shape[0] * dout.shape[2] * dout.shape[3]
        self.dgamma = (dout * xhat).sum(axis=(0, 2, 3))
        self.dbeta = dout.sum(axis=(0, 2, 3))
        dxhat = dout * self.gamma[None, :, None, None]
        return (inv[None, :, None, None] / m) * (
            m * dxhat
            - dxhat.sum(axis=(0, 2, 3), keepdims=True)
            - xhat * (dxhat * xhat).sum(axis=(0, 2, 3), keepdims=True)
        )


class Dropout(Layer):
    """Inverted dropout: zero a fraction ``rate`` of activations in training only."""

    def __init__(self, rate=0.25, rng=None):
        self.rate = rate
        self.rng = rng if rng is not None else np.random.default_rng(0)

    def forward(self, x, training=False):
        """Identity at inference; random mask scaled by ``1/(1-rate)`` in training."""
        if not training:
            return x
        self._mask = (self.rng.random(x.shape) >= self.rate) / (1.0 - self.rate)
        return x * self._mask

    def backward(self, dout):
        """Gradient through the same mask."""
        return dout * self._mask


class AvgPool2D(Layer):
    """Non-overlapping average pooling."""

    def __init__(self, size=2):
        self.size = size

    def forward(self, x, training=False):
        """Mean of every ``size`` x ``size`` block."""
        n, c, h, w = x.shape
        s = self.size
        return x.reshape(n, c, h // s, s, w // s, s).mean(axis=(3, 5))

    def backward(self, dout):
        """Spread each gradient evenly over its block."""
        s = self.size
        return np.repeat(np.repeat(dout, s, axis=2), s, axis=3) / (s * s)


class LeakyReLU(Layer):
    """ReLU with a small slope ``alpha`` for negative inputs."""

    def __init__(self, alpha=0.01):
        self.alpha = alpha

    def forward(self, x, training=False):
        """``x`` where positive, ``alpha * x`` elsewhere."""
        if training:
            self._x = x
        return np.where(x > 0, x, self.alpha * x)

    def backward(self, dout):
        """Slope 1 or ``alpha``."""
        return np.where(self._x > 0, dout, self.alpha * dout)


class Sigmoid(Layer):
    """Logistic activation."""

    def forward(self, x, training=False):
        """``1 / (1 + exp(-x))``."""
        out = 1.0 / (1.0 + np.exp(-x))
        if training:
            self._out = out
        return out

    def backward(self, dout):
        """``out * (1 - out)`` times the incoming gradient."""
        return dout * self._out * (1.0 - self._out)
