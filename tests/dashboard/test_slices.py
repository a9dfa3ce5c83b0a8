"""The rows page compares the selected slice with the version's reference, per feature."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from monitoring.metrics.rows import RowFilter, rows_filtered
from monitoring.metrics.slices import slice_compare
from tests.monitoring.metrics.test_statistics import (
    DAY0,
    reference_and_shifted_stored,
)

pytestmark = pytest.mark.django_db
XSS = "<script>alert(1)</script>"


@pytest.fixture
def stored(model):
    return reference_and_shifted_stored(model)


SLICE = {"start": DAY0.isoformat(), "feature": "plan", "category": "basic"}


def test_the_slice_is_tested_against_the_reference_as_scipy_does(stored, model):
    reference, current = stored
    chosen = current[current["plan"] == "basic"]
    filters = RowFilter(start=DAY0, feature="plan", category="basic")
    result = slice_compare(
        model=model, rows=rows_filtered(model=model, filters=filters), version=None
    )
    assert result.version == "1.0.0" and result.baseline.kind == "training"
    assert result.rows == len(chosen) and not result.capped
    age = next(f for f in result.features if f.name == "age")
    # A reference of 800 rows: KS, exact from the version's bins, as ks_2samp on the raw values.
    ks = stats.ks_2samp(reference["age"].dropna(), chosen["age"].dropna())
    assert age.drift.method == "ks"
    assert age.drift.statistic == pytest.approx(ks.statistic, abs=1e-12)
    assert age.drift.p_value == pytest.approx(ks.pvalue, rel=1e-6)
    values = chosen["age"].dropna().to_numpy()
    assert age.current.n == values.size and age.current.missing == chosen["age"].isna().sum()
    assert age.current.text == f"mean {values.mean():.4g}, sd {values.std():.4g}"
    ref_values = reference["age"].dropna().to_numpy()
    assert age.reference.text == f"mean {ref_values.mean():.4g}, sd {ref_values.std():.4g}"
    plan = next(f for f in result.features if f.name == "plan")
    assert plan.drift.drifted and plan.current.text == "basic 100%"
    assert result.drifted == (["age", "plan"] if age.drift.drifted else ["plan"])


def test_the_rows_page_shows_the_comparison(stored, viewer):
    reference, current = stored
    html = viewer.get("/models/churn/rows/", SLICE).content.decode()
    section = html[html.index('id="slice"') :]
    assert "against the registered reference (800 rows)" in section
    chosen = current[current["plan"] == "basic"]
    ks = stats.ks_2samp(reference["age"].dropna(), chosen["age"].dropna())
    assert f"{ks.statistic:.3f}" in section  # shown to 4 places
    assert "basic 100%" in section and "state-firing" in section  # plan: drifted


def test_a_slice_that_cannot_be_compared_says_why(stored, viewer):
    html = viewer.get("/models/churn/rows/", {"version": "9.9"}).content.decode()
    assert "Not compared: churn has no version" in html
    empty = viewer.get("/models/churn/rows/", {"start": "2999-01-01T00:00:00Z"})
    assert "Not compared: the slice has no rows" in empty.content.decode()


def test_feature_and_category_names_are_escaped(stored, viewer):
    html = viewer.get(
        "/models/churn/rows/", {"feature": XSS, "category": XSS, "segment": XSS}
    ).content.decode()
    assert XSS not in html


def test_the_slice_side_is_bounded(stored, model, monkeypatch):
    import monitoring.metrics.slices as slices

    monkeypatch.setattr(slices, "SLICE_MAX_ROWS", 100)
    result = slice_compare(
        model=model, rows=rows_filtered(model=model, filters=RowFilter()), version="1.0.0"
    )
    assert result.rows == 100 and result.capped
    assert np.isfinite(next(f for f in result.features if f.name == "age").drift.statistic)
