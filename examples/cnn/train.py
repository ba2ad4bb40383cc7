"""Train the digit CNN once, deterministically, and write ``weights.npz``.

    python train.py [--out weights.npz] [--epochs 20]

Plain numpy: mini-batch Adam on the cross-entropy loss, a fixed seed for the
initial weights and the batch order.  The shipped ``weights.npz`` was made by
this script; the app itself never trains.  Takes well under a minute.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from cnn import data
from cnn.model import digits_cnn, save_weights, summary

HERE = Path(__file__).resolve().parent
SEED = 8  # the digits are 8x8


def check_against_sklearn():
    """Make sure our reader returns exactly what ``sklearn.datasets.load_digits`` does."""
    from sklearn.datasets import load_digits

    images, labels = data.load_digits()
    reference = load_digits()
    if not (np.array_equal(images, reference.images) and np.array_equal(labels, reference.target)):
        raise SystemExit("cnn.data.load_digits disagrees with sklearn.datasets.load_digits")


class Adam:
    """Adam optimiser updating the model's arrays in place."""

    def __init__(self, params, lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        self.params = params
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0

    def step(self, grads):
        """Apply one update from ``grads`` (same keys as the parameters)."""
        self.t += 1
        c1 = 1.0 - self.beta1**self.t
        c2 = 1.0 - self.beta2**self.t
        for key, param in self.params.items():
            g = grads[key]
            self.m[key] = self.beta1 * self.m[key] + (1.0 - self.beta1) * g
            self.v[key] = self.beta2 * self.v[key] + (1.0 - self.beta2) * g * g
            update = self.lr * (self.m[key] / c1) / (np.sqrt(self.v[key] / c2) + self.eps)
            param -= update.astype(param.dtype)


def train(epochs, batch_size=32):
    """Fit the network on the training split; return the model."""
    rng = np.random.default_rng(SEED)
    model = digits_cnn(rng)
    images, labels = data.train_set()
    targets = data.one_hot(labels)
    optimiser = Adam(model.named_params())
    for _ in range(epochs):
        for idx in data.batches(len(images), batch_size, rng):
            probs = model.forward(images[idx], training=True)
            # Softmax and cross-entropy together: the gradient of the scores is
            # simply probabilities minus targets (Softmax.backward passes it on).
            model.backward((probs - targets[idx]) / len(idx))
            optimiser.step(model.named_grads())
    return model


def main(argv=None):
    """Train, report train and test accuracy, save the weights."""
    parser = argparse.ArgumentParser(description="Train the digit CNN and write its weights.")
    parser.add_argument("--out", default=str(HERE / "weights.npz"))
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args(argv)
    check_against_sklearn()
    model = train(args.epochs)
    train_images, train_labels = data.train_set()
    test_images, test_labels = data.test_set()
    train_acc = np.mean(model.predict(train_images) == train_labels)
    test_acc = np.mean(model.predict(test_images) == test_labels)
    save_weights(model, args.out)
    print(summary(model))
    print(f"train accuracy {train_acc:.4f}, test accuracy {test_acc:.4f}, wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
