"""Zero-shot learning: the benchmark (attributes, folds, features, splits), ESZSL, and the runner of `vaelab zsl`."""
