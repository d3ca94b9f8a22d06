r"""The synthetic shop's true dynamics: segments, latent traits, state, one-period model, step.

Every user belongs to a latent segment and draws personal traits around the segment's profile
(Gaussian noise of ``trait_noise`` on logits, multiplicative log-normal noise on sensitivities).
The dynamic state of user ``i`` at the start of a period is habit ``h``, fatigue ``f``, coupon
conditioning ``c``, the email/push unsubscribe flags and the churn flag (absorbing).

One period with action ``a`` (channel ``ch(a)``, discount rate ``d(a)``, send cost ``k(a)``)::

    delivered  D = alive * [ch(a) is email and not email_unsub  or  ch(a) is push and
                             push_opt_in and not push_unsub]  (coupons travel by email)
    coupon     C = D * d(a)                                  (discount actually received)
    response   r = D * resp_ch * exp(-phi * s_f * f)         (fatigue dampens; resp < 0 for
                                                              sleeping dogs)
    visit      p_v = sigmoid(v0 + w_hv * h + r + lam * s_c * C)
    buy|visit  p_b = sigmoid(b0 + w_hb * h - kappa * c + 10 * s_c * C / (1 + omega * c))
    purchase   p_p = p_v * p_b,  basket ~ LogNormal(mu, sigma),  E[basket] = exp(mu + sigma^2/2)
    revenue    R = basket if purchase else 0                 (gross, at list price)
    events     visit; views 1 + Geometric(mean 1.5, +1 if buying); cart if buying, else
               w.p. 0.25; fav w.p. 0.1; unsubscribe event when a channel unsubscribes
    reward     = R - k(a) - C * R                            (send cost + redeemed discount)
    fatigue    f' = rho_f * f + D
    unsub      P(unsubscribe ch(a)) = D * sigmoid(u0 + psi * s_f * f')
    churn      P(churn) = alive * sigmoid(q0 + gamma * s_f * f' + q_contact * D - eta * h)
    habit      h' = rho_h * h + 1[purchase]
    condition  c' = rho_c * c + 1[C > 0]

``s_f`` is the user's fatigue sensitivity, ``s_c`` the coupon sensitivity, ``v0, b0, q0, resp_*,
q_contact, mu, sigma`` the personal traits. Churned users produce nothing but sends still cost
(the shop does not observe churn). The long-run traps: purchases build habit (so lost purchases
cost later ones); every contact adds fatigue, which dampens later responses and raises
unsubscribe and churn hazards (strongly for sleeping dogs, whose ``q_contact`` is large);
coupons lift today's purchase but build conditioning that lowers later full-price purchases.
:func:`expected_outcomes` is the exact one-period model given state and action.

What a shop can see of a user's latent response (the mechanisms behind the room a policy has;
``nudgegym room`` measures it, with and without each):

* **Push reach.** Push notifications reach only users who installed the app and allowed them
  (``push_opt_in``, drawn per user with the segment's rate); the shop knows who they are (the
  users table's ``push_opt_in``), as every app publisher does.
* **Personal channel responses.** People of one segment differ most in how they react to
  messages: ``email_response`` and ``push_response`` get a personal deviation of std
  ``response_noise`` (other traits: ``trait_noise``). A user's own response shows in the
  history (the observation's ``email_visit_lift`` / ``push_visit_lift``).
* **CRM attributes** in the users table (:func:`predictors.synthetic.generate.crm_attributes`):
  ``first_order_coupon`` (the first order used the welcome coupon, w.p. ``s_c / (1 + s_c)``),
  ``loyalty_tier`` (from the orders before the log) and ``acquisition_channel`` (weakly
  segment-dependent).

Named worlds (presets, :data:`predictors.synthetic.world_file.PRESETS`; ``nudgegym generate
--world NAME``) switch these mechanisms off in two different ways:

* ``null``: one segment, no trait or response noise, no delayed effects (habit, fatigue,
  conditioning, contact churn and unsubscribes off). A send's effect is the same for everyone
  in every period, so the best fixed-action rule is optimal and no policy beats it.
* ``inert``: one segment, no noise, and every contact response, coupon sensitivity, fatigue
  sensitivity and contact churn zero, sends free. :func:`World.expected_outcomes` gives the
  same visit, purchase, revenue and churn for every action; a coupon only gives its discount
  away. No policy truly beats a coupon-free one (the selection gate's null world).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np
from scipy.special import ndtri

from predictors.config_checks import check_int, check_number
from predictors.contract import ActionSpec, default_catalog
from predictors.features import take_rows


@dataclass(frozen=True)
class SegmentProfile:
    """Mean traits of one latent segment (weekly periods; logits unless stated).

    Attributes:
        name: Segment name.
        share: Population share (shares are normalised over segments).
        visit_logit: ``v0``, base visit logit.
        buy_logit: ``b0``, base purchase-given-visit logit.
        basket_mu: Log-normal ``mu`` of the basket value.
        basket_sigma: Log-normal ``sigma`` of the basket value.
        email_response: Visit-logit lift of a delivered email (negative = pushes away).
        push_response: Visit-logit lift of a delivered push.
        coupon_sensitivity: ``s_c``; a coupon with rate d adds ``10 * s_c * d`` to the buy logit.
        fatigue_sensitivity: ``s_f``; scales fatigue's damping, unsubscribe and churn effects.
        churn_logit: ``q0``, base weekly churn logit.
        contact_churn: ``q_contact``, churn-logit lift of a delivered contact.
        push_opt_in: Share of the segment's users who installed the app and allow push
            notifications (push reaches only them; the shop knows who they are).
    """

    name: str
    share: float
    visit_logit: float
    buy_logit: float
    basket_mu: float
    basket_sigma: float
    email_response: float
    push_response: float
    coupon_sensitivity: float
    fatigue_sensitivity: float
    churn_logit: float
    contact_churn: float = 0.0
    push_opt_in: float = 1.0


def default_segments() -> tuple[SegmentProfile, ...]:
    """Loyal, regular, deal seeker, new, dormant and sleeping-dog customers."""
    S = SegmentProfile
    return (
        S("loyal", 0.10, -1.2, -0.4, 3.7, 0.45, 0.25, 0.20, 0.15, 1.5, -5.5, 0.0, 0.6),
        S("regular", 0.22, -1.5, -0.8, 3.7, 0.45, 0.90, 0.50, 0.35, 1.0, -4.8, 0.0, 0.4),
        S("deal_seeker", 0.20, -1.6, -2.5, 3.3, 0.40, 0.00, 0.00, 2.00, 0.8, -4.8, 0.0, 0.3),
        S("new", 0.16, -0.9, -1.2, 3.6, 0.50, 0.00, 2.00, 0.50, 0.8, -3.2, 0.0, 0.7),
        S("dormant", 0.16, -3.0, -1.0, 3.7, 0.45, 2.00, 0.30, 0.10, 0.7, -4.8, 0.0, 0.15),
        S("sleeping_dog", 0.16, -1.2, -0.4, 3.9, 0.45, -1.00, -1.00, 0.20, 1.5, -5.2, 2.5,
          0.2),
    )


@dataclass(frozen=True)
class WorldConfig:
    """Parameters of the synthetic world (see the module docstring for the equations).

    Attributes:
        segments: Segment profiles.
        actions: Action catalog (kinds, channels, discount rates, costs).
        trait_noise: Std of personal deviations from the segment's logits and sensitivities.
        response_noise: Std of personal deviations from the segment's email and push
            responses (people of one segment differ most in how they react to messages).
        habit_decay: ``rho_h``.
        habit_visit: ``w_hv``.
        habit_buy: ``w_hb``.
        habit_churn: ``eta``.
        fatigue_decay: ``rho_f``.
        fatigue_damping: ``phi``.
        fatigue_churn: ``gamma``.
        unsub_logit: ``u0``.
        fatigue_unsub: ``psi``.
        conditioning_decay: ``rho_c``.
        conditioning_penalty: ``kappa``.
        coupon_visit: ``lam``.
        coupon_habituation: ``omega``.
        burn_in: Unlogged periods simulated before a log or episode starts (realistic states).
    """

    segments: tuple[SegmentProfile, ...] = field(default_factory=default_segments)
    actions: tuple[ActionSpec, ...] = field(default_factory=default_catalog)
    trait_noise: float = 0.3
    response_noise: float = 0.8
    habit_decay: float = 0.6
    habit_visit: float = 0.6
    habit_buy: float = 0.3
    habit_churn: float = 0.8
    fatigue_decay: float = 0.6
    fatigue_damping: float = 0.35
    fatigue_churn: float = 0.6
    unsub_logit: float = -4.8
    fatigue_unsub: float = 0.8
    conditioning_decay: float = 0.8
    conditioning_penalty: float = 0.5
    coupon_visit: float = 3.0
    coupon_habituation: float = 0.5
    burn_in: int = 10

    def __post_init__(self) -> None:
        if not self.segments:
            raise ValueError("WorldConfig.segments must not be empty")
        if any(s.share < 0 for s in self.segments) or sum(s.share for s in self.segments) <= 0:
            raise ValueError("WorldConfig.segments shares must be >= 0 with a positive sum")
        if not self.actions or self.actions[0].kind != "none":
            raise ValueError("WorldConfig.actions must start with a `none` action")
        check_number(self, "habit_decay", "fatigue_decay", "conditioning_decay", ge=0, lt=1)
        check_number(self, "trait_noise", "response_noise", ge=0)
        check_int(self, "burn_in", ge=0)

    @property
    def segment_names(self) -> list[str]:
        """Segment names in index order."""
        return [s.name for s in self.segments]

    def to_dict(self) -> dict:
        """JSON-ready dict (``truth/world.json``)."""
        from dataclasses import asdict

        return asdict(self)


#: Uniforms :meth:`World.step` draws per user and period (one block of this many rows).
STEP_UNIFORMS = 8

#: Personal traits drawn once per user (all arrays of shape (n,)).
TRAITS = ("segment", "visit_logit", "buy_logit", "basket_mu", "basket_sigma", "email_response",
          "push_response", "coupon_sensitivity", "fatigue_sensitivity", "churn_logit",
          "contact_churn", "push_opt_in")
#: Dynamic state (arrays of shape (n,)).
DYNAMIC = ("habit", "fatigue", "conditioning", "email_unsub", "push_unsub", "churned",
           "since_purchase")


@dataclass
class WorldState:
    """Traits and dynamic state of ``n`` users (one array per field, shape (n,))."""

    segment: np.ndarray
    visit_logit: np.ndarray
    buy_logit: np.ndarray
    basket_mu: np.ndarray
    basket_sigma: np.ndarray
    email_response: np.ndarray
    push_response: np.ndarray
    coupon_sensitivity: np.ndarray
    fatigue_sensitivity: np.ndarray
    churn_logit: np.ndarray
    contact_churn: np.ndarray
    push_opt_in: np.ndarray
    habit: np.ndarray
    fatigue: np.ndarray
    conditioning: np.ndarray
    email_unsub: np.ndarray
    push_unsub: np.ndarray
    churned: np.ndarray
    since_purchase: np.ndarray

    @property
    def n(self) -> int:
        """Number of users."""
        return len(self.segment)

    def copy(self) -> WorldState:
        """A deep copy."""
        return replace(self, **{f.name: getattr(self, f.name).copy() for f in fields(self)})

    def subset(self, index: np.ndarray) -> WorldState:
        """The users ``index`` (positions or boolean mask), copied."""
        return WorldState(**{f.name: take_rows(getattr(self, f.name), index)
                             for f in fields(self)})

    def reset_dynamics(self, mask: np.ndarray) -> None:
        """Give users ``mask`` a fresh state (no habit, fatigue or conditioning, subscribed)."""
        for name in ("habit", "fatigue", "conditioning", "since_purchase"):
            getattr(self, name)[mask] = 0.0
        for name in ("email_unsub", "push_unsub", "churned"):
            getattr(self, name)[mask] = False

    def to_columns(self) -> dict[str, np.ndarray]:
        """Field name -> array (for ``truth/`` tables)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Outcomes:
    """Exact one-period expectations per user (arrays of shape (n,))."""

    p_visit: np.ndarray
    p_purchase: np.ndarray
    expected_revenue: np.ndarray
    expected_discount: np.ndarray
    cost: np.ndarray
    expected_reward: np.ndarray
    p_churn: np.ndarray
    p_unsubscribe: np.ndarray


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class World:
    """The synthetic shop: samples users, gives exact one-period expectations, steps users.

    Args:
        config: World parameters.

    Example:
        >>> world = World()
        >>> state = world.sample_users(4, np.random.default_rng(0))
        >>> world.expected_outcomes(state, np.zeros(4, dtype=int)).p_visit.shape
        (4,)
    """

    def __init__(self, config: WorldConfig | None = None) -> None:
        self.config = config or WorldConfig()
        acts = self.config.actions
        self.n_actions = len(acts)
        self.action_names = [a.name for a in acts]
        self._email = np.array([a.channel == "email" for a in acts])
        self._push = np.array([a.channel == "push" for a in acts])
        self._discount = np.array([a.discount_rate if a.kind == "discount" else 0.0
                                   for a in acts])
        self._cost = np.array([a.cost for a in acts], dtype=float)
        seg = self.config.segments
        shares = np.array([s.share for s in seg], dtype=float)
        self._shares = shares / shares.sum()
        self._profile = {t: np.array([getattr(s, t) for s in seg], dtype=float)
                         for t in TRAITS[1:]}

    def sample_users(self, n: int, rng: np.random.Generator,
                     segment: np.ndarray | None = None) -> WorldState:
        """Draw ``n`` users (segments by share unless given) with a fresh dynamic state."""
        if segment is None:
            segment = rng.choice(len(self._shares), size=n, p=self._shares)
        segment = np.asarray(segment, dtype=np.int64)
        p, sd = self._profile, self.config.trait_noise
        traits: dict[str, np.ndarray] = {"segment": segment}
        for t in ("visit_logit", "buy_logit", "churn_logit", "email_response", "push_response"):
            noise = self.config.response_noise if t.endswith("_response") else sd
            traits[t] = p[t][segment] + noise * rng.standard_normal(n)
        traits["basket_mu"] = p["basket_mu"][segment] + 0.2 * rng.standard_normal(n)
        traits["basket_sigma"] = p["basket_sigma"][segment]
        for t in ("coupon_sensitivity", "fatigue_sensitivity", "contact_churn"):
            traits[t] = p[t][segment] * np.exp(sd * rng.standard_normal(n) - sd**2 / 2)
        traits["push_opt_in"] = (rng.random(n) < p["push_opt_in"][segment]).astype(float)
        dyn = {name: np.zeros(n) for name in ("habit", "fatigue", "conditioning",
                                              "since_purchase")}
        flags = {name: np.zeros(n, dtype=bool) for name in ("email_unsub", "push_unsub",
                                                            "churned")}
        return WorldState(**traits, **dyn, **flags)

    def _drivers(self, s: WorldState, action: np.ndarray) -> dict[str, np.ndarray]:
        """Logits and hazards shared by expected_outcomes and step."""
        c = self.config
        action = np.asarray(action, dtype=np.int64)
        alive = ~s.churned
        email, push = self._email[action], self._push[action]
        reach = (s.push_opt_in > 0.5) & ~s.push_unsub
        delivered = alive & ((email & ~s.email_unsub) | (push & reach))
        coupon = np.where(delivered, self._discount[action], 0.0)
        resp = np.where(email, s.email_response, s.push_response)
        r = delivered * resp * np.exp(-c.fatigue_damping * s.fatigue_sensitivity * s.fatigue)
        p_visit = alive * _sigmoid(s.visit_logit + c.habit_visit * s.habit + r
                                   + c.coupon_visit * s.coupon_sensitivity * coupon)
        cond = c.conditioning_penalty * s.conditioning
        lift = 10.0 * s.coupon_sensitivity * coupon / (1.0 + c.coupon_habituation
                                                        * s.conditioning)
        p_buy = _sigmoid(s.buy_logit + c.habit_buy * s.habit - cond + lift)
        fatigue_next = c.fatigue_decay * s.fatigue + delivered
        p_unsub = delivered * _sigmoid(c.unsub_logit + c.fatigue_unsub * s.fatigue_sensitivity
                                       * fatigue_next)
        p_churn = alive * _sigmoid(s.churn_logit + c.fatigue_churn * s.fatigue_sensitivity
                                   * fatigue_next + s.contact_churn * delivered
                                   - c.habit_churn * s.habit)
        return dict(action=action, delivered=delivered, coupon=coupon, email=email, push=push,
                    p_visit=p_visit, p_buy=p_buy, fatigue_next=fatigue_next, p_unsub=p_unsub,
                    p_churn=p_churn)

    def expected_outcomes(self, state: WorldState, action: np.ndarray) -> Outcomes:
        """Exact one-period expectations of taking ``action`` (shape (n,)) in ``state``.

        Revenue is unconditional (no purchase counts as 0); ``expected_reward`` subtracts the
        send cost and the expected redeemed discount.
        """
        d = self._drivers(state, action)
        p_purchase, revenue, discount, cost = self._expectation(state, d)
        return Outcomes(p_visit=d["p_visit"], p_purchase=p_purchase, expected_revenue=revenue,
                        expected_discount=discount, cost=cost,
                        expected_reward=revenue - cost - discount, p_churn=d["p_churn"],
                        p_unsubscribe=d["p_unsub"])

    def _expectation(self, s: WorldState, d: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        """Purchase probability, expected revenue, expected discount and send cost, (n,)."""
        p_purchase = d["p_visit"] * d["p_buy"]
        basket = np.exp(s.basket_mu + s.basket_sigma**2 / 2)
        revenue = p_purchase * basket
        discount = d["coupon"] * revenue
        return p_purchase, revenue, discount, self._cost[d["action"]]

    def expected_reward_table(self, state: WorldState) -> np.ndarray:
        """Expected one-period reward of every action, shape (n, n_actions)."""
        return np.stack([self.expected_outcomes(state, np.full(state.n, a)).expected_reward
                         for a in range(self.n_actions)], axis=1)

    @staticmethod
    def draw_uniforms(n: int, rng: np.random.Generator) -> np.ndarray:
        """The block of uniforms :meth:`step` draws for ``n`` users, shape (STEP_UNIFORMS, n)."""
        return rng.random((STEP_UNIFORMS, n))

    def step(self, state: WorldState, action: np.ndarray, rng: np.random.Generator | None,
             uniforms: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Simulate one period in place; return the observable outcome of every user.

        Args:
            state: The users, updated in place.
            action: Action index per user, shape (n,).
            rng: Generator of the period's draws: one block of :data:`STEP_UNIFORMS` x n
                uniforms, whatever the actions (common random numbers across policies).
            uniforms: That block, drawn by the caller instead (:meth:`draw_uniforms`), e.g.
                columns of a larger batch's block, so a subset of a batch steps exactly
                as it would inside it; ``rng`` is then not used.

        Returns:
            Dict of (n,) arrays: ``visits, views, carts, favs, purchases`` (event counts),
            ``revenue`` (gross), ``discount`` (redeemed), ``cost`` (send cost + discount),
            ``reward``, ``expected_reward`` (the period's exact expected reward given the
            state and action, :meth:`expected_outcomes`), ``unsub_email``/``unsub_push``
            (unsubscribed during this period), ``churned`` (churned at the end of this
            period), ``delivered``.
        """
        c = self.config
        s = state
        d = self._drivers(s, action)
        n = s.n
        _, e_revenue, e_discount, e_cost = self._expectation(s, d)
        # one fixed-size block of uniforms per period: runs of different policies with the
        # same seed share their random numbers (common random numbers, paired comparisons)
        if uniforms is None:
            u = self.draw_uniforms(n, rng)
        else:
            u = np.asarray(uniforms)
            if u.shape != (STEP_UNIFORMS, n):
                raise ValueError(f"`uniforms` must have shape ({STEP_UNIFORMS}, {n}); "
                                 f"got {u.shape}")
        visited = u[0] < d["p_visit"]
        purchased = visited & (u[1] < d["p_buy"])
        basket = np.exp(s.basket_mu + s.basket_sigma * ndtri(u[5]))
        revenue = np.where(purchased, np.round(basket, 2), 0.0)
        discount = np.round(d["coupon"] * revenue, 2)
        views = visited * (1 + np.floor(-np.log1p(-u[6]) * (1.5 + purchased)))
        carts = purchased + (visited & ~purchased & (u[2] < 0.25))
        favs = visited & (u[7] < 0.1)
        unsub = u[3] < d["p_unsub"]
        churn = u[4] < d["p_churn"]
        cost = self._cost[d["action"]] + discount
        unsub_email = unsub & d["email"]
        unsub_push = unsub & d["push"]

        s.fatigue = d["fatigue_next"]
        s.habit = c.habit_decay * s.habit + purchased
        s.conditioning = c.conditioning_decay * s.conditioning + (d["coupon"] > 0)
        s.since_purchase = np.where(purchased, 0.0, s.since_purchase + 1.0)
        s.email_unsub = s.email_unsub | unsub_email
        s.push_unsub = s.push_unsub | unsub_push
        s.churned = s.churned | churn
        return dict(visits=visited.astype(np.int64), views=views.astype(np.int64),
                    carts=carts.astype(np.int64), favs=favs.astype(np.int64),
                    purchases=purchased.astype(np.int64), revenue=revenue, discount=discount,
                    cost=cost, reward=revenue - cost,
                    expected_reward=e_revenue - e_cost - e_discount, unsub_email=unsub_email,
                    unsub_push=unsub_push, churned=churn, delivered=d["delivered"],
                    action=d["action"])
