"""Agreement between predicted and annotated activities."""

import numpy as np

from biomed.activities import ACTIVITIES


def accuracy(truth, predicted):
    """Fraction of windows whose prediction equals the annotation."""
    truth = np.asarray(truth)
    predicted = np.asarray(predicted)
    return float(np.mean(truth == predicted))


def per_class_recall(truth, predicted):
    """Recall of every activity present in ``truth``, keyed by activity name."""
    truth = np.asarray(truth)
    predicted = np.asarray(predicted)
    out = {}
    for code, name in ACTIVITIES.items():
        mask = truth == code
        if mask.any():
            out[name] = float(np.mean(predicted[mask] == code))
    return out


def confusion_matrix(truth, predicted):
    """Counts of (annotated, predicted) activity pairs, rows and columns in code order."""
    codes = sorted(ACTIVITIES)
    index = {code: i for i, code in enumerate(codes)}
    out = np.zeros((len(codes), len(codes)), dtype=np.int64)
    for t, p in zip(truth, predicted, strict=True):
        out[index[int(t)], index[int(p)]] += 1
    return out


def macro_f1(truth, predicted):
    """Unweighted mean of the per-activity F1 scores."""
    cm = confusion_matrix(truth, predicted)
    tp = np.diag(cm).astype(np.float64)
    precision = np.divide(tp, cm.sum(axis=0), out=np.zeros_like(tp), where=cm.sum(axis=0) > 0)
    recall = np.divide(tp, cm.sum(axis=1), out=np.zeros_like(tp), where=cm.sum(axis=1) > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(f1[cm.sum(axis=1) > 0].mean())
