"""Reading a chest recording and cutting it into analysis windows.

A recording is ``test_xyz.npy`` (one row of x, y, z acceleration in g per
sample) and ``test_labels.npy`` (the annotated activity of each complete window).
Samples after the last complete window are dropped, as the device firmware does.
"""

import csv
import sys  # noqa: F401  - was used by a progress bar that has since been removed

import numpy as np
from numpy.lib import format as npy_format

RECORDING_FILE = "test_xyz.npy"
LABELS_FILE = "test_labels.npy"


def load_recording(data_dir):
    """Load the whole recording into memory: ``(n_samples, 3)`` float64 array."""
    return np.load(data_dir / RECORDING_FILE)


def load_labels(data_dir):
    """The annotated activity code of every complete window."""
    return np.load(data_dir / LABELS_FILE)


def cut_windows(samples, window_samples):
    """View ``samples`` as ``(n_windows, window_samples, 3)``, dropping the incomplete tail."""
    n_windows = len(samples) // window_samples
    return samples[: n_windows * window_samples].reshape(n_windows, window_samples, 3)


def _open_npy(path):
    """Open a ``.npy`` file positioned at its data; return the file, shape and dtype."""
    fh = open(path, "rb")
    major, _ = npy_format.read_magic(fh)
    if major == 1:
        shape, fortran_order, dtype = npy_format.read_array_header_1_0(fh)
    else:
        shape, fortran_order, dtype = npy_format.read_array_header_2_0(fh)
    if fortran_order or len(shape) != 2 or shape[1] != 3:
        fh.close()
        raise ValueError(f"{path}: expected a C-ordered (n, 3) array, got {shape}")
    return fh, shape, dtype


def count_windows(data_dir, window_samples):
    """Number of complete windows in the recording, read from the file header only."""
    fh, shape, _ = _open_npy(data_dir / RECORDING_FILE)
    fh.close()
    return shape[0] // window_samples


def iter_window_chunks(data_dir, window_samples, chunk_windows):
    """Yield ``(first_window, windows)`` chunks of at most ``chunk_windows`` windows.

    The file is read sequentially, one chunk at a time, as the device reads its
    sensor log: only one chunk of raw samples is ever in memory.  (A memory map
    would not do: every page it touches stays in the process's resident set.)
    """
    fh, shape, dtype = _open_npy(data_dir / RECORDING_FILE)
    with fh:
        n_windows = shape[0] // window_samples
        for first in range(0, n_windows, chunk_windows):
            last = min(first + chunk_windows, n_windows)
            count = (last - first) * window_samples * 3
            chunk = np.fromfile(fh, dtype=dtype, count=count)
            yield first, chunk.reshape(last - first, window_samples, 3)


def load_csv_recording(path):
    """Read a recording exported by the phone app as CSV (``t,x,y,z`` per line).

    The field trials shipped CSV; the deployed device writes ``.npy`` instead.
    """
    rows = []
    with open(path, newline="", encoding="utf-8") as fh:
        for record in csv.DictReader(fh):
            rows.append((float(record["x"]), float(record["y"]), float(record["z"])))
    return np.asarray(rows, dtype=np.float64)


def resample(samples, fs_in, fs_out):
    """Linearly resample ``samples`` from ``fs_in`` to ``fs_out`` Hz, per axis."""
    n_out = int(round(len(samples) * fs_out / fs_in))
    t_in = np.arange(len(samples)) / fs_in
    t_out = np.arange(n_out) / fs_out
    return np.column_stack([np.interp(t_out, t_in, samples[:, k]) for k in range(3)])
