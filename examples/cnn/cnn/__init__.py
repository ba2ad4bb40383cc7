"""A small convolutional network for 8x8 handwritten digits, in plain numpy.

``layers`` holds the building blocks (forward and backward passes), ``model``
the network and its weights file, ``data`` the digits and their fixed split.
Inference needs numpy only.
"""

__version__ = "0.4.0"
