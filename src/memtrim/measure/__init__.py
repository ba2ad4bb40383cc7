"""Measuring: the child harness, the parent sampler, import costs, arenas, energy."""
