"""The same fit whatever the number of torch threads.

A fit with a fixed seed could end in a different model with 1 or 2 intra-op threads: the
forward pass is identical, but three kinds of reduction split their sum across threads, so the
last bits of the gradients depend on the thread count and training (early stopping above all)
amplifies them:

* the weight gradient of every linear / recurrent layer is a matrix product that reduces over
  all rows of the batch, and MKL splits that reduction between threads. MKL's strict
  *conditional numerical reproducibility* mode (``MKL_CBWR=AUTO,STRICT``) makes its matrix
  products bitwise identical for any thread count; it must be chosen before MKL's first call,
  so importing :mod:`predictors.models` sets it (unless the variable is already set);
* the scale and shift gradients of ``nn.LayerNorm`` (torch's fused backward reduces over rows
  per thread): :class:`ThreadStableLayerNorm` computes them through elementwise ops whose
  reduction is split over the output columns instead;
* full reductions (``tensor.sum()``) of more than torch's grain size (32,768 elements), as in
  the loss means and the global gradient norm: :func:`stable_sum` sums blocks column-wise.
"""

from __future__ import annotations

import ctypes
import os
import warnings
from pathlib import Path

#: The MKL setting of bitwise-reproducible matrix products for any thread count.
MKL_CBWR_STRICT = "AUTO,STRICT"
_CBWR_STRICT_FLAG = 0x10000


def request_reproducible_blas() -> None:
    """Ask MKL for strict reproducibility (effective only before its first matrix product)."""
    os.environ.setdefault("MKL_CBWR", MKL_CBWR_STRICT)


request_reproducible_blas()

import torch  # noqa: E402  (MKL reads MKL_CBWR lazily, at its first call)
from torch import nn  # noqa: E402

_BLOCK = 1024


def blas_is_reproducible() -> bool | None:
    """Whether MKL runs in strict reproducible mode; ``None`` when torch does not use MKL."""
    if not torch.backends.mkl.is_available():
        return None
    lib = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        get = ctypes.CDLL(str(lib)).mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return None
    get.restype = ctypes.c_int
    return bool(get(-1) & _CBWR_STRICT_FLAG)  # -1: MKL_CBWR_ALL (branch and mode)


def warn_if_thread_dependent(num_threads: int) -> None:
    """Warn when a multi-threaded CPU fit may depend on the thread count."""
    if num_threads != 1 and blas_is_reproducible() is False:
        warnings.warn("MKL is not in strict reproducible mode (MKL ran before nudgegym was "
                      "imported, or MKL_CBWR is set to another value): this fit may differ "
                      "with another number of torch threads; set MKL_CBWR=AUTO,STRICT or "
                      "num_threads=1", stacklevel=3)


def stable_sum(x: torch.Tensor) -> torch.Tensor:
    """``x.sum()`` with a summation order that does not depend on the thread count."""
    flat = x.reshape(-1)
    pad = (-flat.numel()) % _BLOCK
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    return flat.view(-1, _BLOCK).sum(dim=0).sum()


def clip_grad_norm_stable(params: list[nn.Parameter], max_norm: float) -> torch.Tensor:
    """``nn.utils.clip_grad_norm_`` (L2) with a thread-independent norm."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    total = torch.sqrt(sum(stable_sum(g.detach().float() ** 2) for g in grads))
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.detach().mul_(coef.to(g.dtype))
    return total


class ThreadStableLayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` whose scale/shift gradients do not depend on the thread count.

    Same parameters and state-dict keys as ``nn.LayerNorm``; the affine part is applied
    elementwise after an affine-free normalisation.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = nn.functional.layer_norm(x, self.normalized_shape, None, None, self.eps)
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y


def make_layer_norms_thread_stable(module: nn.Module) -> nn.Module:
    """Swap every affine ``nn.LayerNorm`` inside ``module`` for :class:`ThreadStableLayerNorm`."""
    for name, child in list(module.named_children()):
        if type(child) is nn.LayerNorm and child.elementwise_affine:
            new = ThreadStableLayerNorm(child.normalized_shape, eps=child.eps,
                                        bias=child.bias is not None)
            new.load_state_dict(child.state_dict())
            setattr(module, name, new)
        else:
            make_layer_norms_thread_stable(child)
    return module
