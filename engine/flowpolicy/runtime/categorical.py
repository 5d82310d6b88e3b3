"""Drift statistics of categorical columns, from two exact frequency tables.

Each is 0 for identical shares and grows with drift, so levels read the same way as for KS D
(the highest threshold reached):

- ``linf``: the largest difference of one category's share, max_c |p_c - q_c| (in [0, 1]; the
  categorical counterpart of KS D, as Vertex AI uses it);
- ``psi``: the population stability index sum_c (p_c - q_c) ln(p_c / q_c), each share floored
  at :data:`PSI_FLOOR` so a category missing on one side stays finite (>= 0, unbounded;
  rules of thumb: 0.1 moderate, 0.25 large);
- ``chi2``: 1 - p, where p is the p-value of Pearson's chi-square test of homogeneity of the
  2 x K table of counts (K categories seen on either side, K - 1 degrees of freedom). With
  millions of rows tiny differences give p near 0: prefer linf or psi there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: Shares below this count as this in the PSI (Evidently and others use the same floor).
PSI_FLOOR = 1e-4


def categorical_statistic(statistic: str, current: Mapping[Any, int],
                          reference: Mapping[Any, int]) -> tuple[float, dict[str, float]]:
    """(value, details) of ``statistic`` for two non-empty frequency tables."""
    n_current, n_reference = sum(current.values()), sum(reference.values())
    categories = list(dict.fromkeys([*reference, *current]))
    shares = [(current.get(c, 0) / n_current, reference.get(c, 0) / n_reference)
              for c in categories]
    if statistic == "linf":
        return max(abs(p - q) for p, q in shares), {}
    if statistic == "psi":
        value = 0.0
        for p, q in shares:
            p, q = max(p, PSI_FLOOR), max(q, PSI_FLOOR)
            value += (p - q) * math.log(p / q)
        return value, {}
    chi2, dof = _chi2_homogeneity(current, reference, categories, n_current, n_reference)
    p_value = chi2_survival(chi2, dof)
    return 1.0 - p_value, {"chi2": chi2, "dof": dof, "p_value": p_value}


def _chi2_homogeneity(current: Mapping[Any, int], reference: Mapping[Any, int],
                      categories: list, n_current: int, n_reference: int) -> tuple[float, int]:
    total = n_current + n_reference
    chi2 = 0.0
    for category in categories:
        column = current.get(category, 0) + reference.get(category, 0)
        for observed, row in ((current.get(category, 0), n_current),
                              (reference.get(category, 0), n_reference)):
            expected = row * column / total
            chi2 += (observed - expected) ** 2 / expected
    return chi2, len(categories) - 1


def chi2_survival(x: float, dof: int) -> float:
    """P(X >= x) for X chi-square with ``dof`` degrees of freedom (1 when dof is 0)."""
    if dof <= 0 or x <= 0:
        return 1.0
    return _upper_gamma_regularized(dof / 2, x / 2)


def _upper_gamma_regularized(a: float, x: float) -> float:
    """Q(a, x) = Gamma(a, x) / Gamma(a): the power series of P below a + 1, else the
    continued fraction of Q (Lentz's method), each to full double precision."""
    log_prefix = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:
        term = total = 1 / a
        denominator = a
        while abs(term) > abs(total) * 1e-17:
            denominator += 1
            term *= x / denominator
            total += term
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    tiny = 1e-300
    b = x + 1 - a
    c, d = 1 / tiny, 1 / b
    fraction = d
    for i in range(1, 100_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        fraction *= delta
        if abs(delta - 1) < 1e-16:
            break
    return math.exp(log_prefix) * fraction
