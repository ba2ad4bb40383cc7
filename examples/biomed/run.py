"""Recognise the wearer's activity in every window of a chest accelerometer recording.

    python run.py --variant static|dynamic --out predictions.csv [--config config.json]

``static`` holds the whole recording, all windows and the whole random forest in
memory (the paper's Figure 11); ``dynamic`` streams the recording in chunks and
loads one tree at a time (Figure 12).  Both write the same predictions, one
activity name per line, and print the accuracy against the annotations.
Prepare the data and model first with ``python prepare.py``.
"""

import argparse
import os  # noqa: F401  - unused, left from an earlier version
import sys
import time  # noqa: F401  - unused: the timing printout was removed for reproducible output
from pathlib import Path

import numpy as np
from biomed import features as feat
from biomed.activities import activity_name
from biomed.classifier import ActivityRecognizer
from biomed.config import load_config
from biomed.features import estimateACCFeatures  # noqa: F401  - duplicate of `feat` above
from biomed.metrics import accuracy, per_class_recall
from biomed.recording import cut_windows, iter_window_chunks, load_labels, load_recording

# The app finds its settings (and through them its data) next to this file,
# whatever the working directory.
HERE = Path(__file__).resolve().parent


def run_static(settings, recognizer):
    """Whole recording, all windows and the whole forest in memory at once."""
    samples = load_recording(settings.data_dir)
    windows = recognizer.orient(cut_windows(samples, settings.window_samples))
    features = feat.estimateACCFeatures(windows, settings.sampling_rate_hz, settings.lowpass_hz)
    return recognizer.predict_static(features)


def run_dynamic(settings, recognizer):
    """The recording streamed chunk by chunk; the forest loaded tree by tree."""
    rows = []
    fs = settings.sampling_rate_hz
    for _, windows in iter_window_chunks(
        settings.data_dir, settings.window_samples, settings.chunk_windows
    ):
        windows = recognizer.orient(windows)
        rows.append(feat.estimateACCFeatures(windows, fs, settings.lowpass_hz))
    # The feature matrix is small (15 numbers per window); the raw samples are not.
    features = np.concatenate(rows)
    return recognizer.predict_dynamic(features, settings.chunk_windows)


def write_predictions(path, predictions):
    """Write one activity name per line."""
    with open(path, "w", encoding="utf-8") as fh:
        for code in predictions:
            fh.write(activity_name(code) + "\n")


def parse_args(argv):
    """Command-line options."""
    # A literal, not __doc__: the docstring is gone under python -OO.
    parser = argparse.ArgumentParser(description="Recognise activities in an accelerometer log.")
    parser.add_argument("--variant", choices=("static", "dynamic"), default="static")
    parser.add_argument("--out", required=True, help="predictions file to write")
    parser.add_argument("--config", default=str(HERE / "config.json"), help="settings file")
    return parser.parse_args(argv)


def main(argv=None):
    """Run the recognizer over the test recording; return the exit code."""
    args = parse_args(argv)
    settings = load_config(args.config)
    if not (settings.data_dir / "STAMP").exists() or not (settings.model_dir / "STAMP").exists():
        print("data or model missing: run prepare.py first", file=sys.stderr)
        return 2
    recognizer = ActivityRecognizer(
        settings.model_dir, settings.sensor_position, settings.clf_method
    )
    if args.variant == "static":
        predictions = run_static(settings, recognizer)
    else:
        predictions = run_dynamic(settings, recognizer)
    truth = load_labels(settings.data_dir)
    write_predictions(args.out, predictions)
    print(f"windows: {len(predictions)}")
    print(f"accuracy: {accuracy(truth, predictions):.4f}")
    if settings.report_per_class:
        for name, recall in per_class_recall(truth, predictions).items():
            print(f"  {name:<10} recall {recall:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
