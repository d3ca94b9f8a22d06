"""Buy-till-you-die baselines (BG/NBD, Pareto/NBD) fitted on a panel, through ``lifetimes``.

The reference forecasts of customer-base analysis: each customer buys at a Poisson rate while
"alive" and drops out for good at some point (after any purchase, BG/NBD; at an exponential
time, Pareto/NBD); rates and dropout vary across customers as gamma / beta mixtures. The fitting
and the conditional expectations are those of the maintained ``lifetimes`` package (an optional
dependency: ``pip install 'nudgegym[forecast]'``).

Unit of a "purchase": a period with at least one purchase (what the learned shop simulates per
period). :func:`rfm_summary` turns the panel into the models' inputs in periods, each purchase
placed in the middle of its period and the observation ending at the start of ``end_period``.

References: Fader, Hardie, Lee (2005), "Counting your customers the easy way: an alternative
to the Pareto/NBD model", Marketing Science 24(2); Schmittlein, Morrison, Colombo (1987),
"Counting your customers: who are they and what will they do next?", Management Science 33(1).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from predictors.errors import ConfigError

#: Model name -> lifetimes fitter class name.
BTYD_MODELS = {"bgnbd": "BetaGeoFitter", "pareto_nbd": "ParetoNBDFitter"}

__all__ = ["BTYD_MODELS", "BTYDBaseline", "BTYDConfig", "rfm_summary"]


def rfm_summary(panel: pd.DataFrame, end_period: int) -> pd.DataFrame:
    """Frequency / recency / age of every customer with a purchase before ``end_period``.

    Returns:
        Indexed by ``user_id`` (sorted): ``frequency`` (purchase periods after the first),
        ``recency`` (periods from the first to the last purchase) and ``T`` (periods from the
        first purchase to the end of observation), purchases at mid-period.

    Example:
        >>> panel = pd.DataFrame({"user_id": [1, 1, 1, 2], "period": [0, 1, 3, 2],
        ...                       "purchases": [1, 0, 2, 1]})
        >>> rfm_summary(panel, 4).to_numpy().tolist()
        [[1.0, 3.0, 3.5], [0.0, 0.0, 1.5]]
    """
    buys = panel.loc[(panel["period"] < end_period) & (panel["purchases"] > 0),
                     ["user_id", "period"]]
    g = buys.groupby("user_id")["period"]
    first, last, n = g.min(), g.max(), g.nunique()
    return pd.DataFrame({"frequency": (n - 1).astype(float),
                         "recency": (last - first).astype(float),
                         "T": (end_period - first - 0.5).astype(float)}).sort_index()


@dataclass(frozen=True)
class BTYDConfig:
    """A buy-till-you-die baseline.

    Attributes:
        model: ``bgnbd`` (beta-geometric/NBD) or ``pareto_nbd``.
        penalizer: L2 penalty on the log-parameters (``lifetimes``' ``penalizer_coef``).
    """

    model: str = "bgnbd"
    penalizer: float = 0.0

    def __post_init__(self) -> None:
        if self.model not in BTYD_MODELS:
            raise ConfigError(f"`model` must be one of {list(BTYD_MODELS)}; got {self.model!r}")
        if not self.penalizer >= 0:
            raise ConfigError(f"`penalizer` must be >= 0; got {self.penalizer!r}")


def _lifetimes() -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its pandas options are deprecated, not broken
            import lifetimes
    except ImportError:
        raise ConfigError("the BG/NBD and Pareto/NBD baselines need the `lifetimes` package; "
                          "install it with pip install 'nudgegym[forecast]'") from None
    return lifetimes


class BTYDBaseline:
    """BG/NBD or Pareto/NBD fitted on :func:`rfm_summary` output.

    Example:
        >>> summary = pd.DataFrame({"frequency": [0.0, 2, 5, 1], "recency": [0.0, 10, 30, 4],
        ...                         "T": [20.0, 30, 35, 25]})
        >>> model = BTYDBaseline(BTYDConfig("bgnbd")).fit(summary)  # doctest: +SKIP
        >>> model.expected_purchases(summary, 10).shape  # doctest: +SKIP
        (4,)
    """

    def __init__(self, config: BTYDConfig | None = None) -> None:
        self.config = config or BTYDConfig()

    def fit(self, summary: pd.DataFrame, horizon: float | None = None) -> BTYDBaseline:
        """Maximum-likelihood fit on ``frequency``, ``recency`` and ``T``.

        When the optimiser does not converge, or its forecasts over 1 period and over
        ``horizon`` (default: the longest observation) are not finite (typically a base without
        visible dropout, whose maximum lies on the boundary, where scipy's hypergeometric
        function gives NaN), the fit is retried with the penalizer raised to 1e-3, 1e-2 and
        1e-1 in turn, with a warning; ``penalizer_`` is the one used.
        """
        if len(summary) == 0:
            raise ConfigError("no customers to fit the baseline on (empty summary)")
        lt = _lifetimes()
        cls = getattr(lt, BTYD_MODELS[self.config.model])
        args = [summary[c].to_numpy(float) for c in ("frequency", "recency", "T")]
        tries = [self.config.penalizer] + [p for p in (1e-3, 1e-2, 1e-1)
                                           if p > self.config.penalizer]
        for pen in tries:
            fitter = cls(penalizer_coef=pen)
            try:
                with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                    warnings.simplefilter("ignore")
                    fitter.fit(*args)
                    ok = all(np.isfinite(
                        fitter.conditional_expected_number_of_purchases_up_to_time(t, *args)).all()
                        for t in (1.0, float(horizon or args[2].max())))
            except lt.utils.ConvergenceError:
                ok = False
            if ok:
                break
            if pen == tries[-1]:
                raise ConfigError(f"{self.config.model}: the fit did not converge to finite "
                                  f"forecasts, even with penalizer {pen}")
        if pen != self.config.penalizer:
            warnings.warn(f"{self.config.model}: the fit converged only with penalizer {pen} "
                          f"(asked {self.config.penalizer})", UserWarning, stacklevel=2)
        self.fitter_, self.penalizer_ = fitter, pen
        self.params_ = {k: float(v) for k, v in fitter.params_.items()}
        return self

    def _args(self, summary: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (summary["frequency"].to_numpy(float), summary["recency"].to_numpy(float),
                summary["T"].to_numpy(float))

    def expected_purchases(self, summary: pd.DataFrame, t: float) -> np.ndarray:
        """Expected purchases in the ``t`` periods after the end of observation, ``(n,)``."""
        x, r, age = self._args(summary)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(self.fitter_.conditional_expected_number_of_purchases_up_to_time(
                t, x, r, age), float)

    def p_alive(self, summary: pd.DataFrame) -> np.ndarray:
        """P(the customer is still alive at the end of observation), ``(n,)``."""
        x, r, age = self._args(summary)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(self.fitter_.conditional_probability_alive(x, r, age), float)

    def p_any_purchase(self, summary: pd.DataFrame, t: float) -> np.ndarray:
        """P(at least one purchase in the ``t`` periods after the end of observation), ``(n,)``.

        BG/NBD: a customer drops out only right after a purchase, so the first future purchase
        happens iff the alive customer's next Poisson event falls within ``t``; given alive, the
        rate's posterior is Gamma(r + x, alpha + T), so P = P(alive) x (1 - ((alpha + T) /
        (alpha + T + t))^(r + x)). Pareto/NBD: ``lifetimes``' P(0 purchases up to t).
        """
        x, r, age = self._args(summary)
        if self.config.model == "bgnbd":
            p = self.params_
            stay = ((p["alpha"] + age) / (p["alpha"] + age + t)) ** (p["r"] + x)
            return self.p_alive(summary) * (1.0 - stay)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            none = self.fitter_.conditional_probability_of_n_purchases_up_to_time(0, t, x, r, age)
        return np.clip(1.0 - np.asarray(none, float), 0.0, 1.0)
