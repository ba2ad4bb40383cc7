"""Generate the biomed example's data and train its model, deterministically.

    python prepare.py [--force]

Writes, beside this file (both folders are git-ignored and regenerated):

* ``data/test_xyz.npy``    the test recording: 197,633 samples of x, y, z (g) at 32 Hz
* ``data/test_labels.npy`` the annotated activity of each of its 1,544 windows
* ``model/forest.pkl``     the whole random forest (static variant)
* ``model/trees/``         each tree in its own pickle plus ``meta.json`` (dynamic variant)

The recordings are synthetic but shaped like a chest patch's: per activity a
trunk orientation (gravity), a periodic gait or pedalling component, breathing,
fidgeting and sensor noise, with per-subject mounting tilt and gait
differences.  Training uses eight simulated subjects, the test recording a
ninth, so the accuracy is that of an unseen wearer.  Nothing is redone when a
``STAMP`` with the same generator and library versions is already present.
"""

import argparse
import json
import pickle
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
from biomed.features import estimateACCFeatures
from scipy import signal as sps

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / "data"
MODEL_DIR = HERE / "model"

# Bump when the generator or the training changes: the stamp then differs and
# the next run regenerates everything.
GENERATOR_VERSION = "1"
SEED = 5_3_2023  # fixed: data and model must be identical on every machine

FS = 32.0  # Hz
WINDOW = 128  # samples per window (4 s)
TEST_SAMPLES = 197_633  # the paper's recording: 1,544 complete windows + 1 sample
TRAIN_SUBJECTS = 8
TRAIN_WINDOWS_PER_SUBJECT = 2800
ANNOTATION_ERRORS = 0.03  # fraction of mislabelled training windows
N_ESTIMATORS = 20
FOREST_SEED = 1544

# Activity codes as in biomed.activities: 1 lying, 2 sedentary, 3 dynamic,
# 4 walking, 5 running, 6 biking.  How often each occurs and how long a bout
# lasts (in windows) roughly follow a day of a patient wearing the patch.
ACTIVITY_WEIGHTS = {1: 0.20, 2: 0.30, 3: 0.15, 4: 0.20, 5: 0.07, 6: 0.08}
BOUT_WINDOWS = {1: (10, 60), 2: (8, 50), 3: (4, 20), 4: (4, 30), 5: (3, 15), 6: (6, 30)}


def stamp_text():
    """What the outputs were made with; a different text means they are stale."""
    return (
        f"generator={GENERATOR_VERSION} seed={SEED} numpy={version('numpy')} "
        f"scipy={version('scipy')} scikit-learn={version('scikit-learn')}\n"
    )


def up_to_date():
    """Tell whether every output exists and both stamps match this generator."""
    expected = stamp_text()
    for stamp in (DATA_DIR / "STAMP", MODEL_DIR / "STAMP"):
        if not stamp.is_file() or stamp.read_text(encoding="utf-8") != expected:
            return False
    needed = [DATA_DIR / "test_xyz.npy", DATA_DIR / "test_labels.npy", MODEL_DIR / "forest.pkl"]
    needed += [MODEL_DIR / "trees" / f"tree_{i:02d}.pkl" for i in range(N_ESTIMATORS)]
    needed.append(MODEL_DIR / "trees" / "meta.json")
    return all(p.is_file() for p in needed)


# ---------------------------------------------------------------- generator


def subject_profile(rng):
    """Per-wearer traits: how the patch sits on the chest and how the person moves."""
    tilt = np.radians(rng.normal(0.0, 8.0, size=3))
    return {
        "mount": rotation(*tilt),
        "gait_freq": rng.uniform(0.9, 1.1),
        "gait_amp": rng.uniform(0.8, 1.25),
        "posture": rng.normal(0.0, 8.0),  # habitual forward lean, degrees
        "noise": rng.uniform(0.8, 1.3),
    }


def rotation(a, b, c):
    """Rotation matrix from three small angles (radians) about x, y and z."""
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    rx = np.array([[1, 0, 0], [0, ca, -sa], [0, sa, ca]])
    ry = np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
    rz = np.array([[cc, -sc, 0], [sc, cc, 0], [0, 0, 1]])
    return rz @ ry @ rx


def bouts(rng, n_samples):
    """A sequence of (activity, samples) bouts covering ``n_samples`` samples.

    Bouts start anywhere, not on window boundaries: some windows straddle two
    activities and are labelled with the one that fills most of them.
    """
    codes = np.array(sorted(ACTIVITY_WEIGHTS))
    weights = np.array([ACTIVITY_WEIGHTS[c] for c in codes])
    out, total, previous = [], 0, None
    while total < n_samples:
        code = previous
        while code == previous:  # a new bout is a different activity
            code = int(rng.choice(codes, p=weights))
        lo, hi = BOUT_WINDOWS[code]
        length = int(rng.integers(lo, hi + 1) * WINDOW * rng.uniform(0.75, 1.25))
        length = min(length, n_samples - total)
        out.append((code, length))
        total += length
        previous = code
    return out


def smooth_noise(rng, n, cutoff_hz, sigma):
    """Band-limited Gaussian noise: white noise through a low-pass filter, rescaled."""
    b, a = sps.butter(2, cutoff_hz, btype="low", fs=FS)
    x = sps.lfilter(b, a, rng.normal(size=n + 64))[64:]
    std = x.std()
    return x * (sigma / std) if std > 0 else x


def per_window(rng, n, p, value, otherwise=1.0):
    """An envelope of ``n`` samples that is ``value`` in a random fraction ``p`` of 4 s blocks."""
    n_blocks = -(-n // WINDOW)
    factors = np.where(rng.random(n_blocks) < p, value, otherwise)
    env = np.repeat(factors, WINDOW)[:n]
    if n < 16:  # a bout cut short at the end of the recording
        return env
    # Half-second ramps: people do not start and stop moving instantaneously.
    return np.convolve(env, np.ones(16) / 16, mode="same")


def gait(rng, t, freq, amp, harmonic, lateral, ap):
    """Vertical, lateral and antero-posterior trunk acceleration of a periodic gait."""
    n = t.size
    # Cadence wanders a few percent over a bout.
    inst = freq * (1.0 + smooth_noise(rng, n, 0.05, 0.03))
    phase = 2.0 * np.pi * np.cumsum(inst) / FS + rng.uniform(0, 2 * np.pi)
    vertical = amp * (np.sin(phase) + harmonic * np.sin(2 * phase + 0.6))
    side = lateral * amp * np.sin(0.5 * phase)  # sway repeats every stride (two steps)
    forward = ap * amp * np.sin(phase + np.pi / 2)
    return np.stack([vertical, side, forward])


def bout_signal(rng, code, n, subject):
    """Acceleration (3, n) in the body frame (x up, y left, z forward) of one bout."""
    t = np.arange(n) / FS
    body = np.zeros((3, n))
    breathing = np.zeros((3, n))
    breathing[2] = 0.008 * np.sin(2 * np.pi * rng.uniform(0.2, 0.35) * t + rng.uniform(0, 6.3))

    if code == 1:  # lying
        pose = rng.choice(4, p=[0.45, 0.25, 0.1, 0.2])
        # Supine, on a side, prone, or propped up on pillows (close to reclined sitting).
        pitch = {0: 90.0, 1: rng.normal(20.0, 10.0), 2: -90.0, 3: rng.uniform(40.0, 70.0)}[pose]
        roll = {0: 0.0, 1: rng.choice([-80.0, 80.0]), 2: 0.0, 3: rng.normal(0.0, 10.0)}[pose]
        pitch += rng.normal(0.0, 10.0)
        drift = 4.0
        body += breathing * 1.5
        # Turning over in bed now and then.
        body += smooth_noise(rng, 3 * n, 3.0, 0.12).reshape(3, n) * per_window(
            rng, n, 0.04, 1.0, 0.0
        )
    elif code == 2:  # sitting: upright to reclined, fidgeting
        pitch = rng.normal(-15.0, 18.0) + subject["posture"]
        roll = rng.normal(0.0, 8.0)
        drift = 8.0
        body += breathing
        body += smooth_noise(rng, 3 * n, 2.0, rng.uniform(0.01, 0.04)).reshape(3, n)
        body += smooth_noise(rng, 3 * n, 3.0, rng.uniform(0.05, 0.15)).reshape(3, n) * per_window(
            rng, n, 0.2, 1.0, 0.0
        )
    elif code == 3:  # standing activities: chores, bending, shuffling about
        pitch = rng.normal(10.0, 15.0) + subject["posture"]
        roll = rng.normal(0.0, 8.0)
        drift = rng.uniform(5.0, 30.0)
        # Standing still between tasks looks like sitting upright.
        busy = per_window(rng, n, 0.3, 0.15)
        body += smooth_noise(rng, 3 * n, 3.0, rng.uniform(0.04, 0.18)).reshape(3, n) * busy
        # A few steps between tasks look like slow walking.
        steps = gait(rng, t, rng.uniform(1.3, 1.8) * subject["gait_freq"], 0.15, 0.3, 0.4, 0.5)
        body += steps * per_window(rng, n, 0.3, 1.0, 0.0)
    elif code == 4:  # walking
        pitch = rng.normal(5.0, 5.0) + subject["posture"]
        roll = rng.normal(0.0, 4.0)
        drift = 3.0
        freq = rng.uniform(1.4, 2.1) * subject["gait_freq"]
        amp = rng.uniform(0.1, 0.4) * subject["gait_amp"]
        # Stopping at a crossing or a door: some windows are mostly standing.
        body += gait(rng, t, freq, amp, 0.35, 0.4, 0.5) * per_window(rng, n, 0.15, 0.25)
        body += smooth_noise(rng, 3 * n, 5.0, 0.04).reshape(3, n)
    elif code == 5:  # running
        pitch = rng.normal(12.0, 5.0) + subject["posture"]
        roll = rng.normal(0.0, 4.0)
        drift = 3.0
        freq = rng.uniform(2.4, 3.1) * subject["gait_freq"]
        amp = rng.uniform(0.7, 1.4) * subject["gait_amp"]
        body += gait(rng, t, freq, amp, 0.5, 0.3, 0.4)
        body += smooth_noise(rng, 3 * n, 8.0, 0.1).reshape(3, n)
    else:  # biking: forward lean, pedalling sway, road vibration
        pitch = rng.uniform(20.0, 45.0) + subject["posture"]
        roll = rng.normal(0.0, 5.0)
        drift = 5.0
        cadence = rng.uniform(0.9, 1.5)
        pedal = gait(rng, t, cadence, rng.uniform(0.04, 0.1), 0.2, 1.5, 0.3)
        body += pedal * per_window(rng, n, 0.2, 0.0)  # coasting
        b, a = sps.butter(2, 5.0, btype="high", fs=FS)
        road = sps.lfilter(b, a, rng.normal(size=(3, n)), axis=1)
        body += road * rng.uniform(0.02, 0.12)

    # Slowly drifting trunk orientation gives the gravity component.
    slow = 2 * np.pi * rng.uniform(0.005, 0.03) * t + rng.uniform(0, 2 * np.pi)
    th = np.radians(pitch + drift * np.sin(slow))
    ph = np.radians(roll + 0.5 * drift * np.cos(1.3 * slow))
    gravity = np.stack([np.cos(th) * np.cos(ph), np.sin(ph), np.sin(th) * np.cos(ph)])
    return gravity + body


def recording(rng, n_samples, subject):
    """A continuous recording of one subject: samples ``(n, 3)`` and per-window labels."""
    parts, sample_labels = [], []
    for code, length in bouts(rng, n_samples):
        parts.append(bout_signal(rng, code, length, subject))
        sample_labels.append(np.full(length, code, dtype=np.int8))
    body_frame = np.concatenate(parts, axis=1)
    xyz = (subject["mount"] @ body_frame).T
    xyz += rng.normal(0.0, 0.01 * subject["noise"], size=xyz.shape)  # sensor noise
    # 12-bit converter at +-8 g: 1/256 g steps.
    xyz = np.round(xyz * 256.0) / 256.0
    # A window is annotated with the activity that fills most of it.
    complete = n_samples // WINDOW
    per_sample = np.concatenate(sample_labels)[: complete * WINDOW].reshape(complete, WINDOW)
    codes = np.array(sorted(ACTIVITY_WEIGHTS), dtype=np.int8)
    counts = (per_sample[:, :, None] == codes).sum(axis=1)
    labels = codes[np.argmax(counts, axis=1)]
    return np.ascontiguousarray(xyz), labels


# ---------------------------------------------------------------- training


def train(rng):
    """Fit the forest on the training subjects' windows."""
    from sklearn.ensemble import RandomForestClassifier

    rows, targets = [], []
    for _ in range(TRAIN_SUBJECTS):
        subject = subject_profile(rng)
        xyz, labels = recording(rng, TRAIN_WINDOWS_PER_SUBJECT * WINDOW, subject)
        windows = xyz.reshape(-1, WINDOW, 3)
        rows.append(estimateACCFeatures(windows, FS))
        # The training campaign was annotated by hand from diaries: a few
        # windows carry the wrong activity.
        wrong = rng.random(len(labels)) < ANNOTATION_ERRORS
        shift = rng.integers(1, len(ACTIVITY_WEIGHTS), size=len(labels))
        noisy = (labels.astype(np.int64) - 1 + shift) % len(ACTIVITY_WEIGHTS) + 1
        targets.append(np.where(wrong, noisy, labels))
    features = np.concatenate(rows)
    y = np.concatenate(targets).astype(np.int64)
    forest = RandomForestClassifier(
        n_estimators=N_ESTIMATORS, max_depth=None, random_state=FOREST_SEED, n_jobs=1
    )
    forest.fit(features, y)
    return forest


def save_model(forest):
    """Write the whole forest and each tree separately, with the trees' metadata."""
    trees_dir = MODEL_DIR / "trees"
    trees_dir.mkdir(parents=True, exist_ok=True)
    with open(MODEL_DIR / "forest.pkl", "wb") as fh:
        pickle.dump(forest, fh, protocol=pickle.HIGHEST_PROTOCOL)
    files = []
    for i, tree in enumerate(forest.estimators_):
        name = f"tree_{i:02d}.pkl"
        with open(trees_dir / name, "wb") as fh:
            pickle.dump(tree, fh, protocol=pickle.HIGHEST_PROTOCOL)
        files.append(name)
    meta = {
        "classes": [int(c) for c in forest.classes_],
        "n_estimators": len(forest.estimators_),
        "n_features": int(forest.n_features_in_),
        "files": files,
    }
    (trees_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def main(argv=None):
    """Generate and train unless the outputs are already up to date."""
    parser = argparse.ArgumentParser(description="Generate the biomed data and train its model.")
    parser.add_argument("--force", action="store_true", help="regenerate even if up to date")
    args = parser.parse_args(argv)
    if not args.force and up_to_date():
        print("biomed: data and model up to date")
        return 0
    for stamp in (DATA_DIR / "STAMP", MODEL_DIR / "STAMP"):
        stamp.unlink(missing_ok=True)
    DATA_DIR.mkdir(exist_ok=True)
    MODEL_DIR.mkdir(exist_ok=True)

    # Independent streams, so changing the training set leaves the test recording alone.
    train_rng, test_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(SEED).spawn(2))
    xyz, labels = recording(test_rng, TEST_SAMPLES, subject_profile(test_rng))
    np.save(DATA_DIR / "test_xyz.npy", xyz)
    np.save(DATA_DIR / "test_labels.npy", labels)
    forest = train(train_rng)
    save_model(forest)

    # Stamps last: an interrupted run leaves no stamp and is redone next time.
    for stamp in (DATA_DIR / "STAMP", MODEL_DIR / "STAMP"):
        stamp.write_text(stamp_text(), encoding="utf-8")
    print(f"biomed: wrote {len(labels)} test windows and {N_ESTIMATORS} trees")
    return 0


if __name__ == "__main__":
    sys.exit(main())
