"""nudgegym.envs: Gymnasium environments of the shop (the true synthetic world, the learned one)."""

__all__: list[str] = []
