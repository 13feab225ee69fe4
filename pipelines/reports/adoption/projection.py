"""When does the rollout reach the target? A logistic adoption curve fitted to the monthly connected counts.

Model. Each registered facility connects at a time T drawn from a logistic distribution,
F(t) = 1 / (1 + exp(-(t - midpoint) / scale)): adoption of a new technology across a fixed population follows
the familiar S-curve (slow start, fast middle, saturation), and the EHR adoption survey since 2008 has this shape.
The ceiling is 100 % of registered facilities — the roadmap's premise that (almost) all connect; a lower real
ceiling makes the projection optimistic, which the report says beside it.

Fit. The monthly series of cumulative connected counts C(t_0) ≤ … ≤ C(t_K) out of N registered is read as
grouped event times: C(t_0) facilities connected by t_0, C(t_k) − C(t_(k−1)) in each month, N − C(t_K) not yet.
Maximum likelihood over (midpoint, log scale) with a damped Newton method (numpy only; derivatives by central
differences — two parameters, a smooth function). Unlike least squares on the cumulative curve, whose monthly
points are not independent, each facility enters the likelihood once, so the inverse Hessian is an honest
covariance (given facilities connect independently of each other).

Interval. The date the curve reaches level L is t* = midpoint + scale · logit(L); its 95 % interval comes from
the delta method on (midpoint, log scale). The known-answer tests in tests/reports/test_projection.py check
both the point and the interval's coverage on simulated rollouts.
"""

import math
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

DAYS_PER_MONTH = 365.2425 / 12
Z95 = 1.959963984540054


def months_between(origin: date, day: date) -> float:
    return (day - origin).days / DAYS_PER_MONTH


def date_after(origin: date, months: float) -> date | None:
    """origin + months; None beyond the calendar (a curve that never gets there in any useful sense)."""
    if not math.isfinite(months) or abs(months) > 12 * 500:
        return None
    return origin + timedelta(days=round(months * DAYS_PER_MONTH))


def _log_sigmoid(z: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -z)


def log_likelihood(theta: np.ndarray, times: np.ndarray, counts: np.ndarray, total: int) -> float:
    """Grouped logistic event-time log-likelihood (constant terms dropped); theta = (midpoint, log scale)."""
    midpoint, log_scale = theta
    if not abs(log_scale) < 700:  # a scale beyond a double: no curve (a Newton step may propose one)
        return -math.inf
    z = (times - midpoint) / math.exp(log_scale)
    increments = np.diff(counts)
    value = counts[0] * _log_sigmoid(z[0]) if counts[0] else 0.0
    if len(z) > 1:
        gap = np.diff(z)  # > 0: times increase
        # log(F(b) − F(a)) = log σ(z_b) + log σ(−z_a) + log(1 − e^(−(z_b − z_a))): stable near 0 and near 1
        interval = _log_sigmoid(z[1:]) + _log_sigmoid(-z[:-1]) + np.log(-np.expm1(-gap))
        value += float(np.sum(np.where(increments > 0, increments * interval, 0.0)))
    rest = total - counts[-1]
    if rest:
        value += rest * _log_sigmoid(-z[-1])
    return float(value)


def _derivatives(f, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and Hessian of f at theta by central differences."""
    h = np.array([1e-4 * max(1.0, abs(theta[0])), 1e-4])
    grad = np.zeros(2)
    hess = np.zeros((2, 2))
    f0 = f(theta)
    for i in range(2):
        e = np.zeros(2)
        e[i] = h[i]
        fp, fm = f(theta + e), f(theta - e)
        grad[i] = (fp - fm) / (2 * h[i])
        hess[i, i] = (fp - 2 * f0 + fm) / h[i] ** 2
    e0, e1 = np.array([h[0], 0.0]), np.array([0.0, h[1]])
    hess[0, 1] = hess[1, 0] = (f(theta + e0 + e1) - f(theta + e0 - e1) - f(theta - e0 + e1)
                               + f(theta - e0 - e1)) / (4 * h[0] * h[1])
    return grad, hess


@dataclass(frozen=True)
class LogisticFit:
    origin: date  # t = 0
    midpoint: float  # months after origin at which half of the facilities are connected
    scale: float  # months; the curve goes from 12 % to 88 % in 4 scales
    covariance: np.ndarray  # of (midpoint, log scale)
    total: int

    def share_at(self, months: float) -> float:
        return 1.0 / (1.0 + math.exp(-(months - self.midpoint) / self.scale))

    def share_band(self, months: float, z: float = Z95) -> tuple[float, float]:
        """Pointwise interval of F(t) (delta method on the logit scale)."""
        logit = (months - self.midpoint) / self.scale
        gradient = np.array([-1.0 / self.scale, -logit])  # d logit / d(midpoint, log scale)
        sd = math.sqrt(max(float(gradient @ self.covariance @ gradient), 0.0))
        return 1 / (1 + math.exp(-(logit - z * sd))), 1 / (1 + math.exp(-(logit + z * sd)))

    def months_to_reach(self, level: float) -> float:
        return self.midpoint + self.scale * math.log(level / (1 - level))

    def reach_interval(self, level: float, z: float = Z95) -> tuple[float, float]:
        gradient = np.array([1.0, self.scale * math.log(level / (1 - level))])
        sd = math.sqrt(max(float(gradient @ self.covariance @ gradient), 0.0))
        centre = self.months_to_reach(level)
        return centre - z * sd, centre + z * sd

    def reach_dates(self, level: float) -> tuple[date | None, date | None, date | None]:
        """(point, 95 % low, 95 % high) dates at which the curve reaches `level`."""
        low, high = self.reach_interval(level)
        return (date_after(self.origin, self.months_to_reach(level)), date_after(self.origin, low),
                date_after(self.origin, high))


def _initial_guess(times: np.ndarray, counts: np.ndarray, total: int, loglik) -> np.ndarray:
    """Least squares on logit(C/N) where 0 < C < N (the linearised curve), else the best of a coarse grid."""
    share = counts / total
    inside = (share > 0) & (share < 1)
    if inside.sum() >= 2 and np.ptp(times[inside]) > 0:
        slope, intercept = np.polyfit(times[inside], np.log(share[inside] / (1 - share[inside])), 1)
        if slope > 0:
            return np.array([-intercept / slope, math.log(1 / slope)])
    span = max(float(np.ptp(times)), 1.0)
    grid = [np.array([m, math.log(s)]) for m in np.linspace(times[0] - 2 * span, times[-1] + 10 * span, 61)
            for s in (0.5, 1, 2, 4, 8, 16, 32, 64, 128)]
    return max(grid, key=loglik)


def fit_adoption_curve(origin: date, month_ends: list[date], cumulative: list[int], total: int,
                       max_iterations: int = 200) -> LogisticFit | None:
    """Fit F to the monthly cumulative counts out of `total`; None when the data cannot identify a curve:
    fewer than three non-empty groups (nobody or everybody connected, or all in one month) or no convergence."""
    if total <= 0 or len(month_ends) != len(cumulative) or not month_ends:
        return None
    times = np.array([months_between(origin, d) for d in month_ends], dtype=float)
    counts = np.maximum.accumulate(np.clip(np.array(cumulative, dtype=float), 0, total))  # corrections never un-connect
    groups = [counts[0], *np.diff(counts), total - counts[-1]]
    if sum(1 for g in groups if g > 0) < 3:
        return None

    def loglik(theta: np.ndarray) -> float:
        return log_likelihood(theta, times, counts, total)

    theta = _initial_guess(times, counts, total, loglik)
    current, damping = loglik(theta), 1e-3
    for _ in range(max_iterations):
        grad, hess = _derivatives(loglik, theta)
        step = np.linalg.solve(-hess + damping * np.eye(2), grad) if np.all(np.isfinite(hess)) else grad
        candidate = theta + step
        value = loglik(candidate)
        if np.isfinite(value) and value >= current:
            converged = abs(value - current) < 1e-10 and np.max(np.abs(step)) < 1e-7
            theta, current, damping = candidate, value, max(damping / 10, 1e-12)
            if converged:
                break
        else:
            damping *= 10
            if damping > 1e12:
                break
    _, hess = _derivatives(loglik, theta)
    information = -hess
    if not np.all(np.isfinite(information)) or np.linalg.det(information) <= 0 or information[0, 0] <= 0:
        return None
    covariance = np.linalg.inv(information)
    return LogisticFit(origin, float(theta[0]), math.exp(theta[1]), covariance, int(total))
