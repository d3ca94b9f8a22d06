"""The synthetic shop: a world with known truth, its logging policies, generator and rollouts."""
