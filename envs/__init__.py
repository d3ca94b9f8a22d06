"""nudgegym.envs: Gymnasium environments of the shop (the true synthetic world, the learned one)."""

from gymnasium.envs.registration import register, registry

from envs.synthetic_shop import SyntheticShopEnv

if "nudgegym/SyntheticShop-v0" not in registry:
    register(id="nudgegym/SyntheticShop-v0", entry_point="envs.synthetic_shop:SyntheticShopEnv")

__all__: list[str] = ["SyntheticShopEnv"]
