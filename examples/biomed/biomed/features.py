"""Per-window features of the wearable's sensors.

:func:`estimateACCFeatures` turns accelerometer windows into the 15 features
the activity model was trained on.  The ECG half of the module (QRS detection,
heart-rate variability) belongs to the patch's second sensor, which this
deployment does not read: :func:`estimateECGFeatures` is never called (the
paper's Listing 2).
"""

import functools

import numpy as np
from scipy import signal as sps
from scipy import stats
from scipy.interpolate import interp1d

from biomed.ar import estimateAR

N_ACC_FEATURES = 15

# Step frequencies of walking and running (about 0.6-3.5 Hz) carry most of the
# power of ambulatory windows; the band ratio separates them from fidgeting.
GAIT_BAND_HZ = (0.6, 3.5)


@functools.lru_cache(maxsize=8)
def _lowpass(fs, cutoff_hz, order=2):
    # The filter design is the same for every call: compute it once.
    return sps.butter(order, cutoff_hz, btype="low", fs=fs)


def estimateACCFeatures(windows, fs, lowpass_hz=0.5):
    """Return the 15 activity features of each accelerometer window, one row per window.

    ``windows`` is ``(n_windows, n_samples, 3)``.  Gravity is separated from body
    motion by a zero-phase low-pass filter; the features are the gravity
    orientation (3), body motion per axis (3), magnitude statistics (4), spectral
    shape (2), two AR coefficients and the trunk inclination.  Every operation
    works along the samples of one window, so a window's features do not depend
    on which other windows are in the batch.
    """
    # (n_windows, 3, n_samples), contiguous: filters and reductions run along rows.
    w = np.ascontiguousarray(np.swapaxes(np.asarray(windows, dtype=np.float64), 1, 2))
    b, a = _lowpass(fs, lowpass_hz)
    gravity = sps.filtfilt(b, a, w, axis=-1)
    body = w - gravity

    g_mean = gravity.mean(axis=-1)
    body_std = body.std(axis=-1)
    # Spelled out rather than summed over the axis dimension, to fix the order of additions.
    body_mag = np.sqrt(body[:, 0] ** 2 + body[:, 1] ** 2 + body[:, 2] ** 2)
    magnitude = np.sqrt(w[:, 0] ** 2 + w[:, 1] ** 2 + w[:, 2] ** 2)
    mag_std = magnitude.std(axis=-1)

    freqs, power = sps.welch(magnitude, fs=fs, nperseg=64, axis=-1)
    power = power[:, 1:]  # the DC bin only says the window was detrended
    freqs = freqs[1:]
    total = power.sum(axis=-1)
    moving = total > 0.0
    dominant = np.where(moving, freqs[np.argmax(power, axis=-1)], 0.0)
    in_band = (freqs >= GAIT_BAND_HZ[0]) & (freqs <= GAIT_BAND_HZ[1])
    band_ratio = np.divide(
        power[:, in_band].sum(axis=-1), total, out=np.zeros_like(total), where=moving
    )

    # Higher moments are undefined for a flat signal (a sensor stuck at one value).
    varying = mag_std > 0.0
    kurt = np.zeros(len(w))
    skew = np.zeros(len(w))
    if varying.any():
        kurt[varying] = stats.kurtosis(magnitude[varying], axis=-1)
        skew[varying] = stats.skew(magnitude[varying], axis=-1)

    ar = estimateAR(body_mag, order=4)
    g_norm = np.sqrt(g_mean[:, 0] ** 2 + g_mean[:, 1] ** 2 + g_mean[:, 2] ** 2)
    inclination = np.degrees(np.arccos(np.clip(g_mean[:, 0] / g_norm, -1.0, 1.0)))

    return np.column_stack(
        [
            g_mean, body_std,
            body_mag.mean(axis=-1), mag_std,
            dominant, band_ratio, kurt, skew,
            ar[:, 0], ar[:, 1], inclination,
        ]
    )


# ---- ECG (pasted in from the heart-rate project, with its own imports) ----

import numpy as np  # noqa: E402, F811  - duplicate of the import at the top


def estimateECGFeatures(ecg, fs):
    """Heart-rate and heart-rate-variability features of one ECG segment.

    Never called by this deployment: the chest patch's ECG channel is not used
    for activity recognition.
    """
    peaks = detect_qrs(ecg, fs)
    if peaks.size < 3:
        return {"hr_bpm": np.nan, "sdnn_ms": np.nan, "rmssd_ms": np.nan, "lf_hf": np.nan}
    rr = np.diff(peaks) / fs
    features = {"hr_bpm": 60.0 / rr.mean()}
    features.update(hrv_time_domain(rr))
    features.update(hrv_frequency_domain(rr))
    features["qrs_width_ms"] = qrs_width(ecg, peaks, fs)
    return features


def detect_qrs(ecg, fs):
    """Sample indices of the R peaks of ``ecg`` (a simplified Pan-Tompkins detector)."""
    ecg = np.asarray(ecg, dtype=np.float64)
    b, a = sps.butter(2, [5.0, 15.0], btype="band", fs=fs)
    filtered = sps.filtfilt(b, a, ecg)
    slope = np.diff(filtered, prepend=filtered[0])
    energy = slope * slope
    width = max(1, int(0.15 * fs))
    integrated = np.convolve(energy, np.ones(width) / width, mode="same")
    threshold = 0.3 * np.percentile(integrated, 99)
    # A refractory period of 250 ms keeps T waves from counting as beats.
    peaks, _ = sps.find_peaks(integrated, height=threshold, distance=int(0.25 * fs))
    return peaks


def hrv_time_domain(rr):
    """SDNN, RMSSD and pNN50 of RR intervals given in seconds."""
    rr_ms = np.asarray(rr) * 1000.0
    succ = np.diff(rr_ms)
    return {
        "sdnn_ms": float(np.std(rr_ms, ddof=1)),
        "rmssd_ms": float(np.sqrt(np.mean(succ * succ))),
        "pnn50": float(np.mean(np.abs(succ) > 50.0)),
    }


def hrv_frequency_domain(rr, resample_hz=4.0):
    """LF and HF power and their ratio, from RR intervals resampled evenly."""
    t = np.cumsum(rr)
    even_t = np.arange(t[0], t[-1], 1.0 / resample_hz)
    if even_t.size < 16:
        return {"lf": np.nan, "hf": np.nan, "lf_hf": np.nan}
    rr_even = interp1d(t, rr, kind="cubic")(even_t)
    freqs, power = sps.welch(rr_even - rr_even.mean(), fs=resample_hz,
                             nperseg=min(256, rr_even.size))
    lf = np.trapezoid(power[(freqs >= 0.04) & (freqs < 0.15)])
    hf = np.trapezoid(power[(freqs >= 0.15) & (freqs < 0.4)])
    return {"lf": float(lf), "hf": float(hf), "lf_hf": float(lf / hf) if hf > 0 else np.nan}


def qrs_width(ecg, peaks, fs):
    """Median QRS duration in milliseconds, from the half-amplitude width of each R peak."""
    widths, _, _, _ = sps.peak_widths(np.abs(np.asarray(ecg, dtype=np.float64)), peaks, 0.5)
    return float(np.median(widths) / fs * 1000.0)


def respiration_rate(window, fs):
    """Breaths per minute from the slow chest movement of an accelerometer window.

    Only meaningful while the wearer is still; the night-time monitor uses it.
    """
    w = np.asarray(window, dtype=np.float64)
    b, a = sps.butter(2, [0.1, 0.7], btype="band", fs=fs)
    chest = sps.filtfilt(b, a, w[:, 2])
    freqs, power = sps.periodogram(chest, fs=fs)
    return float(60.0 * freqs[np.argmax(power)])
