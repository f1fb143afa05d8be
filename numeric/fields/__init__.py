"""Numeric fields: schedule kernels, field providers (Gaussian, mixture, converted)."""
