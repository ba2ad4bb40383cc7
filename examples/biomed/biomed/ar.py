"""Autoregressive (AR) models of short accelerometer signals.

The recognizer only uses :func:`estimateAR` (Yule-Walker coefficients as
features).  The rest of the module served the offline analysis notebooks: Burg
estimation, model-order selection, AR spectra and forecasting.  It is the
paper's Listing 3 example: code hierarchy reduction should move ``estimateAR``
into its user and drop this module.
"""

import numpy as np
from scipy import signal as sps


def estimateAR(x, order=4):
    """Yule-Walker estimate of the AR coefficients of each row of ``x``.

    ``x`` is ``(..., n_samples)``; the result is ``(..., order)``.  A constant
    row, whose autocovariance matrix is singular, gets zero coefficients.
    """
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=-1, keepdims=True)
    n = x.shape[-1]
    # Biased autocovariance, lags 0..order: the biased estimator keeps the
    # Toeplitz matrix positive definite.
    r = np.stack([(x[..., : n - k] * x[..., k:]).sum(axis=-1) for k in range(order + 1)], axis=-1)
    r /= n
    lags = np.abs(np.subtract.outer(np.arange(order), np.arange(order)))
    toeplitz = r[..., lags]
    rhs = r[..., 1:].copy()
    singular = r[..., 0] <= 0.0
    toeplitz[singular] = np.eye(order)
    rhs[singular] = 0.0
    return np.linalg.solve(toeplitz, rhs[..., None])[..., 0]


def estimate_ar_burg(x, order=4):
    """Burg estimate of the AR coefficients and the final prediction error power."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean()
    f = x[1:].copy()
    b = x[:-1].copy()
    a = np.zeros(0)
    err = np.dot(x, x) / x.size
    for _ in range(order):
        den = np.dot(f, f) + np.dot(b, b)
        k = 0.0 if den == 0.0 else 2.0 * np.dot(f, b) / den
        a = np.concatenate([a - k * a[::-1], [k]])
        f, b = f[1:] - k * b[1:], b[:-1] - k * f[:-1]
        err *= 1.0 - k * k
    return a, err


def ar_residuals(x, coefficients):
    """One-step prediction errors of ``x`` under the AR model ``coefficients``."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean()
    taps = np.concatenate([[1.0], -np.asarray(coefficients)])
    return sps.lfilter(taps, [1.0], x)[len(coefficients) :]


def select_ar_order(x, max_order=12):
    """Choose the AR order minimising Akaike's information criterion."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    best_order, best_aic = 1, np.inf
    for order in range(1, max_order + 1):
        coefficients = estimateAR(x, order)
        residuals = ar_residuals(x, coefficients)
        sigma2 = np.mean(residuals**2)
        if sigma2 <= 0.0:
            return order
        aic = n * np.log(sigma2) + 2 * order
        if aic < best_aic:
            best_order, best_aic = order, aic
    return best_order


def ar_power_spectrum(coefficients, sigma2, fs, n_freqs=128):
    """Power spectral density of an AR process, on ``n_freqs`` points up to Nyquist."""
    taps = np.concatenate([[1.0], -np.asarray(coefficients)])
    freqs, h = sps.freqz([1.0], taps, worN=n_freqs, fs=fs)
    return freqs, sigma2 * np.abs(h) ** 2 / fs


def ar_forecast(x, coefficients, steps):
    """Forecast ``steps`` future samples of ``x`` with the AR model ``coefficients``."""
    history = list(np.asarray(x, dtype=np.float64) - np.mean(x))
    order = len(coefficients)
    out = []
    for _ in range(steps):
        nxt = float(np.dot(coefficients, history[-1 : -order - 1 : -1]))
        history.append(nxt)
        out.append(nxt)
    return np.asarray(out) + np.mean(x)
