"""nudgegym.envs: Gymnasium environments of the shop (the true synthetic world, the learned one,
their VecEnvs)."""

from gymnasium.envs.registration import register, registry

from envs.batched import BatchedVecEnv
from envs.rollout import Rollout, rollout
from envs.shop_env import LearnedShop, ShopEnv, ShopVecEnv, load_learned_shop, make_shop_env
from envs.simulator import ActivityModel, CapConfig, ShopSimulator, StartStates
from envs.synthetic_shop import SyntheticShopEnv
from envs.world_vec_env import WorldVecEnv, world_from_dataset, world_start_states

if "nudgegym/SyntheticShop-v0" not in registry:
    register(id="nudgegym/SyntheticShop-v0", entry_point="envs.synthetic_shop:SyntheticShopEnv")
if "nudgegym/Shop-v0" not in registry:
    register(id="nudgegym/Shop-v0", entry_point="envs.shop_env:make_shop_env")

__all__: list[str] = [
    "ActivityModel",
    "BatchedVecEnv",
    "CapConfig",
    "LearnedShop",
    "Rollout",
    "ShopEnv",
    "ShopSimulator",
    "ShopVecEnv",
    "StartStates",
    "SyntheticShopEnv",
    "WorldVecEnv",
    "load_learned_shop",
    "make_shop_env",
    "rollout",
    "world_from_dataset",
    "world_start_states",
]
