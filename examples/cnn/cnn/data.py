"""The handwritten digits bundled with scikit-learn, and their fixed train/test split.

The file is the one ``sklearn.datasets.load_digits`` reads (1,797 images of 8x8
pixels, values 0-16, and their digit).  It is read directly, without importing
scikit-learn: the package would cost some 110 MB of memory for one CSV file,
and inference must run on numpy alone.  ``train.py`` checks that both readers
agree.
"""

import gzip
import importlib.util
from pathlib import Path

import numpy as np

N_CLASSES = 10
IMAGE_SIDE = 8
TEST_SIZE = 450  # a quarter of the 1,797 images
SPLIT_SEED = 1797  # fixed: the split is part of the experiment


def digits_file():
    """Path of ``digits.csv.gz`` inside the installed scikit-learn (found, not imported)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-learn is not installed: it provides the digits data")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"


def load_digits():
    """All images ``(1797, 8, 8)`` as float64 in 0..16, and their digits ``(1797,)``."""
    with gzip.open(digits_file(), "rt") as fh:
        raw = np.loadtxt(fh, delimiter=",")
    images = raw[:, :-1].reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    labels = raw[:, -1].astype(np.int64)
    return images, labels


def split(n_items, test_size=TEST_SIZE, seed=SPLIT_SEED):
    """Indices ``(train, test)`` of a fixed random split of ``n_items`` items."""
    order = np.random.default_rng(seed).permutation(n_items)
    return np.sort(order[test_size:]), np.sort(order[:test_size])


def to_network_input(images):
    """Scale pixels to 0..1 and add the channel axis: ``(n, 1, 8, 8)`` float32."""
    return (np.asarray(images, dtype=np.float32) / np.float32(16.0))[:, None, :, :]


def test_set():
    """The test images (network input) and their digits."""
    images, labels = load_digits()
    _, test = split(len(labels))
    return to_network_input(images[test]), labels[test]


def train_set():
    """The training images (network input) and their digits."""
    images, labels = load_digits()
    train, _ = split(len(labels))
    return to_network_input(images[train]), labels[train]


def one_hot(labels, n_classes=N_CLASSES):
    """Rows of zeros with a one at each label: ``(n, n_classes)`` float32."""
    out = np.zeros((len(labels), n_classes), dtype=np.float32)
    out[np.arange(len(labels)), labels] = 1.0
    return out


def batches(n_items, batch_size, rng=None):
    """Slices covering ``range(n_items)`` in batches; shuffled index arrays if ``rng`` is given."""
    if rng is None:
        for start in range(0, n_items, batch_size):
            yield slice(start, min(start + batch_size, n_items))
        return
    order = rng.permutation(n_items)
    for start in range(0, n_items, batch_size):
        yield order[start : start + batch_size]


def random_shift(images, rng, max_shift=1):
    """Shift each image by up to ``max_shift`` pixels (training-time augmentation).

    Tried while tuning the network; the final weights were trained without it.
    """
    out = np.zeros_like(images)
    side = images.shape[-1]
    for i, img in enumerate(images):
        dy, dx = rng.integers(-max_shift, max_shift + 1, size=2)
        ys = slice(max(dy, 0), side + min(dy, 0))
        xs = slice(max(dx, 0), side + min(dx, 0))
        yd = slice(max(-dy, 0), side + min(-dy, 0))
        xd = slice(max(-dx, 0), side + min(-dx, 0))
        out[i, ..., ys, xs] = img[..., yd, xd]
    return out
