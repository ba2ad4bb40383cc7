"""Activity recognition from a chest-worn accelerometer (IoT biomedical application).

The package is deliberately shaped like the research code it imitates (the IMEC
wearable application of the memtrim paper, section 5.3): a features module that
also carries ECG code the deployment never calls, an autoregressive-model module
of which one function is used, a classifier wrapper with configuration-dependent
branches, and a few leftover imports.  memtrim's passes are expected to find all
of that; do not tidy it up.
"""

__version__ = "1.3.0"
