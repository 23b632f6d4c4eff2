"""The learning layer: routing tasks, training recipes, thresholds, cross-validation, evaluation and bundles."""
