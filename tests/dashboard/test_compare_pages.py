"""Compare versions: the page shows the API's comparison, which SciPy confirms, in plain words."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import stats

from dashboard.views.compare import comparison_verdict
from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.metrics.reports import ComparisonSide, VersionComparison
from tests.conftest import outcome, prediction
from tests.monitoring.metrics.test_compare_traffic import confounded_rows, ingest

pytestmark = pytest.mark.django_db
XSS = "<script>alert(1)</script>"
# Candidate minus baseline: 150 of 200 correct against 120 of 200.
CORRECT = {"1.0.0": 150, "1.1.0": 120}
SIZE = 200


def revenue(version: str, i: int) -> float:
    return 50.0 + (i % 7) * 3 + (4.0 if version == "1.1.0" else 0.0)


@pytest.fixture
def two_versions(model):
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    records, labels = [], []
    for v, version in enumerate(CORRECT):
        for i in range(SIZE):
            pid = v * SIZE + i
            at = now - timedelta(hours=2 + i % 48)
            records.append(
                prediction(pid, at=at, model_version=version, segment=XSS if i % 2 else "web")
            )
            labels.append(
                outcome(
                    pid,
                    at=now - timedelta(minutes=30),
                    outcome=int(i < CORRECT[version]),
                    values={"revenue": revenue(version, i)},
                )
            )
    records_ingest(model=model, kind="predictions", records=records, enqueue_jobs=False)
    records_ingest(model=model, kind="outcomes", records=labels, enqueue_jobs=False)
    jobs_run(model_id=model.pk)
    return model


def p_shown(p_value: float) -> str:
    return "&lt; 0.0001" if p_value < 1e-4 else f"{p_value:.4f}"


def cells(html: str, table: str) -> list[str]:
    body = html[html.index(f'id="{table}"') :].split("</table>")[0]
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td>(.*?)</td>", body, re.S)]


def test_the_page_shows_the_apis_numbers_which_scipy_confirms(two_versions, viewer):
    query = {"metric": "accuracy", "baseline": "1.0.0", "candidate": "1.1.0"}
    html = viewer.get("/models/churn/compare/", query).content.decode()
    api = viewer.get("/api/v1/models/churn/compare", query).json()
    # SciPy on the same counts: the pooled z-test is Pearson's chi-square without correction.
    table = [[150, 50], [120, 80]]
    _, p_value, _, _ = stats.chi2_contingency(table, correction=False)
    pooled = 270 / 400
    mde = (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * math.sqrt(pooled * (1 - pooled) / 100)
    assert api["difference"] == pytest.approx(-0.15)
    assert api["p_value"] == pytest.approx(p_value, rel=1e-9)
    assert api["mde"] == pytest.approx(mde, rel=1e-9)
    difference, interval, shown_p, shown_mde, powered, relative = cells(html, "difference")
    assert difference.startswith("-15.000") and "points" in difference
    se = math.sqrt(0.75 * 0.25 / 200 + 0.6 * 0.4 / 200)
    low, high = (-0.15 - 1.959964 * se) * 100, (-0.15 + 1.959964 * se) * 100
    assert interval == f"{low:.3f} to {high:.3f}"
    assert shown_p == p_shown(p_value)
    assert shown_mde == f"{mde * 100:.3f}"
    assert powered.startswith("yes") and relative == "-20.00%"
    assert cells(html, "comparison")[:3] == ["1.0.0", "0.7500", "200"]
    verdict = f"The candidate 1.1.0 is worse by 15 points on Accuracy (p = {p_value:.2g}); "
    verdict += f"a change under {mde * 100:.3g} points would not be visible with this traffic."
    assert verdict in html


def test_means_are_compared_with_welchs_t_test(two_versions, viewer):
    query = {"metric": "value:revenue", "baseline": "1.0.0", "candidate": "1.1.0"}
    html = viewer.get("/models/churn/compare/", query).content.decode()
    base = np.array([revenue("1.0.0", i) for i in range(SIZE)])
    cand = np.array([revenue("1.1.0", i) for i in range(SIZE)])
    welch = stats.ttest_ind(cand, base, equal_var=False)
    difference, _, shown_p, _, _, _ = cells(html, "difference")
    assert difference.startswith("4.000")
    assert shown_p == p_shown(welch.pvalue)
    assert "The candidate 1.1.0 is better by 4 on Revenue per labelled prediction" in html


def test_a_segment_and_window_narrow_the_comparison(two_versions, viewer):
    html = viewer.get(
        "/models/churn/compare/",
        {
            "metric": "accuracy",
            "baseline": "1.0.0",
            "candidate": "1.1.0",
            "segment": "web",
            "days": "all",
        },
    ).content.decode()
    assert cells(html, "comparison")[2] == "100"  # every other prediction is on "web"
    assert "segment “web”" in html


def test_the_verdict_says_when_the_traffic_cannot_tell(two_versions, viewer):
    comparison = VersionComparison(
        "accuracy",
        ComparisonSide("a", 0.70, 50),
        ComparisonSide("b", 0.71, 50),
        difference=0.01,
        p_value=0.8,
        mde=0.25,
        powered=False,
        ci_low=-0.1,
        ci_high=0.12,
    )
    verdict = comparison_verdict(comparison)
    assert verdict.startswith("No clear difference on Accuracy")
    assert "a change under 25 points would not be visible with this traffic" in verdict
    empty = comparison_verdict(replace(comparison, difference=None, p_value=None, mde=None))
    assert empty.startswith("Not enough data to compare Accuracy")


def test_bad_choices_get_a_message(two_versions, viewer):
    for query in ({"baseline": "9.9"}, {"metric": "predictions"}, {"days": "x"}):
        response = viewer.get("/models/churn/compare/", query)
        assert response.status_code == 400
        assert 'class="error"' in response.content.decode()


def test_a_model_with_one_version_says_so(model, viewer):
    records_ingest(model=model, kind="predictions", records=[prediction(1)], enqueue_jobs=False)
    html = viewer.get("/models/churn/compare/").content.decode()
    assert "a comparison needs two" in html


def test_the_model_and_versions_pages_link_here(two_versions, viewer):
    assert "/models/churn/compare/" in viewer.get("/models/churn/").content.decode()
    assert "/models/churn/compare/" in viewer.get("/models/churn/versions/").content.decode()


def test_segment_names_are_escaped(two_versions, viewer):
    response = viewer.get("/models/churn/compare/", {"segment": XSS})
    html = response.content.decode()
    assert response.status_code == 200
    assert XSS not in html and "&lt;script&gt;" in html


def test_the_page_names_the_confound_and_compares_the_shared_traffic(model, viewer):
    # given 1.0.0 alone for two weeks, a two-day canary of 1.1.0, then 1.1.0 alone
    frame = confounded_rows()
    ingest(model, frame)
    query = {"metric": "accuracy", "baseline": "1.0.0", "candidate": "1.1.0", "days": "all"}
    # when
    html = viewer.get("/models/churn/compare/", query).content.decode()
    api = viewer.get("/api/v1/models/churn/compare", query).json()
    # then the note comes first, in words, and the shared comparison is the API's
    note = html[html.index('id="confound"') :].split("</p>")[0]
    assert "1.0.0 served 1-16 May 2026, 1.1.0 served 15-28 May 2026" in note
    assert html.index('id="confound"') < html.index('role="status"')
    assert "Over all their traffic, the candidate 1.1.0 is worse by" in html
    shared = api["shared_traffic"]
    rows = cells(html, "shared-comparison")
    assert rows[:3] == [
        "1.0.0",
        f"{shared['baseline']['value']:.4f}",
        f"{shared['baseline']['n']:,}",
    ]
    assert f"{shared['candidate']['value']:.4f}" in rows


def test_versions_that_served_the_same_traffic_get_no_confound_note(two_versions, viewer):
    query = {"metric": "accuracy", "baseline": "1.0.0", "candidate": "1.1.0"}
    html = viewer.get("/models/churn/compare/", query).content.decode()
    assert 'id="confound"' not in html and 'id="shared-comparison"' not in html
