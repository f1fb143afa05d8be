"""Evaluation: metrics and the few-step benchmark."""
