"""nudgegym.agents: policies, training, evaluation, off-policy evaluation, export and the CLI."""

__all__: list[str] = []
