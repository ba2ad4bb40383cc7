"""memtrim: shrink the memory footprint of Python applications for edge devices."""

__version__ = "0.1.0"
