"""Corrections for testing many hypotheses at once."""

from __future__ import annotations

import numpy as np


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), in the order given.

    q_(i) = min over j >= i of p_(j) * m / j on the sorted p-values, capped at 1: a slice with
    q < 0.05 is a finding among a list whose expected share of false findings is 5%.
    """
    m = p_values.size
    if m == 0:
        return np.array([], dtype=float)
    order = np.argsort(p_values, kind="stable")
    scaled = p_values[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    q_values = np.empty(m, dtype=float)
    q_values[order] = adjusted
    return q_values
