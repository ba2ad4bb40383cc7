"""The activity classes the recognizer distinguishes, with the codes of the paper."""

# Codes as in the original application (lying = 1 ... biking = 6); the model is
# trained on these codes and the predictions file shows the names.
ACTIVITIES = {
    1: "lying",
    2: "sedentary",
    3: "dynamic",
    4: "walking",
    5: "running",
    6: "biking",
}

# Activities in which the wearer is upright and moving: used by the step
# counter of the phone companion app, not by the recognizer itself.
AMBULATORY = frozenset({4, 5})


def activity_name(code):
    """Return the name of an activity code, e.g. ``4 -> 'walking'``."""
    return ACTIVITIES[int(code)]


def activity_code(name):
    """Return the code of an activity name, e.g. ``'walking' -> 4``."""
    for code, known in ACTIVITIES.items():
        if known == name:
            return code
    raise KeyError(name)


def is_ambulatory(code):
    """Tell whether an activity code is one where the wearer walks or runs."""
    return int(code) in AMBULATORY
