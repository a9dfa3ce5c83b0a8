"""The error model of direct loss estimation against scikit-learn's splines, one-hot
categories and ridge on the same rows, with missing values and more categories than it keeps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge
from sklearn.preprocessing import OneHotEncoder, SplineTransformer

from monitoring.stats.direct_loss import Inputs, LossSums, error_model_fit, loss_gap, loss_sums


def generated(rng, n: int):
    x1 = rng.normal(0, 1, n)
    x1[rng.uniform(size=n) < 0.1] = np.nan  # a tenth missing
    x2 = rng.exponential(1.0, n)
    weights = 0.85 ** np.arange(25)
    cat = rng.choice(25, n, p=weights / weights.sum())
    spread = 0.5 + 0.4 * np.nan_to_num(np.abs(x1), nan=2.0) + 0.2 * x2 + 0.05 * (cat % 4)
    prediction = 3 + x2 + np.nan_to_num(x1)
    outcome = prediction + rng.normal(0, 1, n) * spread
    return prediction, x1, x2, cat, outcome


def inputs_of(prediction, x1, x2, cat) -> Inputs:
    keys = [f"c{k:02d}" for k in range(25)]
    return Inputs(prediction, {"x1": x1, "x2": x2}, {"cat": (cat.astype(np.int64), keys)})


def sklearn_design(prediction, x1, x2, cat, fitted=None):
    """Splines of degree 1 on 11 quantile knots (flat beyond), a missing indicator for x1,
    one-hot of the 20 most frequent categories and one column for the rest."""
    present = ~np.isnan(x1)
    if fitted is None:
        top = pd.Series(cat).value_counts().index[:20]
        fitted = {
            name: SplineTransformer(
                n_knots=11, degree=1, knots="quantile", extrapolation="constant"
            ).fit(values.reshape(-1, 1))
            for name, values in (("p", prediction), ("x1", x1[present]), ("x2", x2))
        }
        fitted["top"] = set(top.tolist())
        fitted["cat"] = OneHotEncoder(handle_unknown="ignore").fit(
            np.array(["other", *[str(c) for c in top]]).reshape(-1, 1)
        )
    kept = np.array([str(c) if c in fitted["top"] else "other" for c in cat]).reshape(-1, 1)
    x1_columns = fitted["x1"].transform(np.nan_to_num(x1).reshape(-1, 1)) * present[:, None]
    design = np.hstack(
        [
            fitted["p"].transform(prediction.reshape(-1, 1)),
            x1_columns,
            (~present)[:, None].astype(float),
            fitted["x2"].transform(x2.reshape(-1, 1)),
            fitted["cat"].transform(kept).toarray(),
        ]
    )
    return design, fitted


def test_the_error_model_is_sklearns_splines_and_ridge_on_the_same_rows():
    rng = np.random.default_rng(5)
    prediction, x1, x2, cat, outcome = generated(rng, 6000)
    counts = np.sort(np.bincount(cat))[::-1]
    assert counts[19] > counts[20]  # the 20 kept categories are well defined

    model = error_model_fit(inputs_of(prediction, x1, x2, cat), outcome)

    design, fitted = sklearn_design(prediction, x1, x2, cat)
    error = prediction - outcome
    absolute = Ridge(alpha=1.0).fit(design, np.abs(error))
    squared = Ridge(alpha=1.0).fit(design, error**2)
    # on new rows, some beyond the reference's range and of categories it never saw
    new = list(generated(np.random.default_rng(6), 2000))
    new[2] = new[2] * 1.5
    new[3] = np.where(np.arange(2000) % 50 == 0, 24, new[3])
    inputs = inputs_of(*new[:4])
    new_design, _ = sklearn_design(*new[:4], fitted=fitted)
    np.testing.assert_allclose(
        model.absolute(inputs), np.maximum(absolute.predict(new_design), 0), atol=1e-9
    )
    np.testing.assert_allclose(
        model.squared(inputs), np.maximum(squared.predict(new_design), 0), atol=1e-9
    )
    a = np.maximum(absolute.predict(design), 0)
    assert model.spread_abs == pytest.approx(np.sum((np.abs(error) - a) ** 2) / np.sum(a**2))


def test_a_window_of_rows_sums_to_its_estimate_and_gap():
    rng = np.random.default_rng(7)
    prediction, x1, x2, cat, outcome = generated(rng, 4000)
    model = error_model_fit(inputs_of(prediction, x1, x2, cat), outcome)
    prediction, x1, x2, cat, outcome = generated(rng, 900)
    outcome[::3] = np.nan  # two thirds labelled
    inputs = inputs_of(prediction, x1, x2, cat)
    # summed in three groups, then added up, as hours into a day
    parts = loss_sums(model, inputs, outcome, np.arange(900) % 3, 3)
    sums = sum((LossSums(row) for row in parts[1:]), LossSums(parts[0]))

    gap = loss_gap(sums, "mae")

    judged = ~np.isnan(outcome)
    a = model.absolute(inputs)[judged]
    realised = np.abs(prediction - outcome)[judged].mean()
    assert gap.n == judged.sum()
    assert gap.value == pytest.approx(realised - a.mean(), abs=1e-12)
    half = 1.959964 * np.sqrt(model.spread_abs * np.sum(a**2) / a.size**2 + model.level_abs**2)
    assert gap.high == pytest.approx(half, rel=1e-5)


def test_without_any_varying_input_the_estimate_is_the_references_mean_error():
    rng = np.random.default_rng(9)
    outcome = rng.normal(5, 2, 500)
    model = error_model_fit(Inputs(np.full(500, 5.0)), outcome)
    estimate = model.absolute(Inputs(np.full(10, 5.0)))
    np.testing.assert_allclose(estimate, np.abs(5.0 - outcome).mean())
