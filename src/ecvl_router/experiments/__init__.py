"""Experiments of the paper, each runnable on any Response Score Dataset."""
