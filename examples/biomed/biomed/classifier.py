"""The activity recognizer: a pre-trained classifier over window features.

Two ways of running the same random forest (paper section 5.3.1):

* :meth:`ActivityRecognizer.predict_static` loads the whole forest and predicts
  every window at once (Figure 11);
* :meth:`ActivityRecognizer.predict_dynamic` loads one tree at a time and feeds
  it the features chunk by chunk (Figure 12), accumulating the trees'
  probabilities in the forest's own order so the vote is bit-identical.

The constructor is the paper's Listing 2: its branches depend on the
configuration, and for the chest sensor it returns early.
"""

import json
import pickle
import warnings

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import SVC

FOREST_FILE = "forest.pkl"
TREES_DIR = "trees"
TREES_META = "meta.json"

# Classifiers the field trials compared; the deployment ships the forest only.
CLASSIFIERS = {
    "rf": ("forest.pkl", RandomForestClassifier),
    "svm": ("svm.pkl", SVC),
    "knn": ("knn.pkl", KNeighborsClassifier),
}


class ActivityRecognizer:
    """Wraps the trained model of one sensor position (the paper's class ``AR``)."""

    def __init__(self, model_path, sensor_position, clf_method):
        self.model_path = model_path
        self.sensor_position = sensor_position
        # Configuration files written before the SVM trials have no classifier
        # entry: they meant the random forest.
        if clf_method is None:
            clf_method = "rf"
        if clf_method not in CLASSIFIERS:
            raise ValueError(f"unknown classifier {clf_method!r}")
        self.clf_method = clf_method
        # Axis permutation and signs that map this sensor's frame onto the chest
        # frame the models were trained in.
        self.axis_order = (0, 1, 2)
        self.axis_sign = (1.0, 1.0, 1.0)
        if sensor_position == "chest":
            return
        if sensor_position == "wrist":
            # The wrist unit lies flat with x along the forearm.
            self.axis_order = (1, 0, 2)
            self.axis_sign = (-1.0, 1.0, 1.0)
        elif sensor_position == "hip":
            # The belt clip turns the board a quarter turn about the vertical axis.
            self.axis_order = (0, 2, 1)
            self.axis_sign = (1.0, 1.0, -1.0)
        else:
            raise ValueError(f"unknown sensor position {sensor_position!r}")
        warnings.warn(
            f"the models were trained on chest recordings; {sensor_position} accuracy is lower",
            stacklevel=2,
        )

    def orient(self, windows):
        """Map windows ``(n, samples, 3)`` from the sensor's frame to the chest frame."""
        if self.axis_order == (0, 1, 2) and self.axis_sign == (1.0, 1.0, 1.0):
            return windows
        return windows[:, :, list(self.axis_order)] * np.asarray(self.axis_sign)

    def load_model(self):
        """Unpickle the whole trained model of the configured classifier."""
        filename, expected = CLASSIFIERS[self.clf_method]
        with open(self.model_path / filename, "rb") as fh:
            model = pickle.load(fh)
        if not isinstance(model, expected):
            raise TypeError(f"{filename} holds a {type(model).__name__}, not {expected.__name__}")
        return model

    def predict_static(self, features):
        """Predict all windows with the whole model in memory (Figure 11)."""
        model = self.load_model()
        return model.predict(features)

    def predict_dynamic(self, features, chunk_rows):
        """Predict all windows loading one tree at a time, ``chunk_rows`` rows per call.

        Mirrors ``RandomForestClassifier.predict``: the trees' probabilities are
        summed in estimator order in float64, divided by the number of trees and
        the class with the highest mean wins, so the predictions are identical.
        """
        if self.clf_method != "rf":
            # Only a forest decomposes into independently loadable parts.
            return self.predict_static(features)
        trees_dir = self.model_path / TREES_DIR
        with open(trees_dir / TREES_META, encoding="utf-8") as fh:
            meta = json.load(fh)
        classes = np.asarray(meta["classes"])
        n_rows = len(features)
        proba = np.zeros((n_rows, len(classes)), dtype=np.float64)
        for index in range(meta["n_estimators"]):
            with open(trees_dir / meta["files"][index], "rb") as fh:
                tree = pickle.load(fh)
            for start in range(0, n_rows, chunk_rows):
                stop = min(start + chunk_rows, n_rows)
                proba[start:stop] += tree.predict_proba(features[start:stop])
            # Drop the tree before the next one is unpickled, so at most one is resident.
            del tree
        proba /= meta["n_estimators"]
        return classes.take(np.argmax(proba, axis=1), axis=0)

    def describe(self):
        """A one-line summary of the deployment, for the device log."""
        return f"{self.clf_method} model for the {self.sensor_position} sensor at {self.model_path}"
