"""Classify the test digits with the trained numpy CNN.

    python run.py --out predictions.txt [--weights weights.npz] [--batch-size 64]

Writes one predicted digit per line and prints the accuracy on the fixed test
split.  The weights are ``weights.npz`` beside this file (made by ``train.py``).
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from cnn.data import test_set
from cnn.model import digits_cnn, load_weights

HERE = Path(__file__).resolve().parent


def parse_args(argv):
    """Command-line options."""
    # A literal, not __doc__: the docstring is gone under python -OO.
    parser = argparse.ArgumentParser(description="Classify the test digits with the numpy CNN.")
    parser.add_argument("--out", required=True, help="predictions file to write")
    parser.add_argument("--weights", default=str(HERE / "weights.npz"))
    parser.add_argument("--batch-size", type=int, default=64)
    return parser.parse_args(argv)


def main(argv=None):
    """Run inference over the test set; return the exit code."""
    args = parse_args(argv)
    images, labels = test_set()
    model = load_weights(digits_cnn(), args.weights)
    predicted = model.predict(images, batch_size=args.batch_size)
    with open(args.out, "w", encoding="utf-8") as fh:
        fh.writelines(f"{d}\n" for d in predicted)
    print(f"images: {len(labels)}")
    print(f"accuracy: {np.mean(predicted == labels):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
