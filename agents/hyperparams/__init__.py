"""Default SB3 hyperparameters per algorithm (YAML, rl-zoo style), shipped as package data."""
