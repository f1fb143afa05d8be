"""Sampling: the sampler registry, solvers, grids, noise, the one generate path, peers."""
