"""Passes: each analyses a Program and yields independent, revertible Edits."""
