"""Per-feature drift decisions and dataset drift, with Evidently's default tests.

Numerical features default to KS (p < 0.05) when the reference has at most 1000 non-missing
values and to the normed Wasserstein distance (>= 0.1) above; categorical features to chi-square
(p < 0.05) and Jensen-Shannon (>= 0.1). PSI on the reference's deciles (or categories plus one
unseen bin) is reported beside every test. Method and threshold can be overridden per feature.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from monitoring.stats import distances as d
from monitoring.stats.histograms import (
    DECILES,
    HistogramRows,
    NumericHistogram,
    NumericReference,
    category_counts,
    rebin_counts_rows,
)
from monitoring.stats.moments import Moments

Kind = Literal["numerical", "categorical"]
SMALL_REFERENCE_ROWS = 1000
DEFAULT_THRESHOLDS: dict[str, float] = {
    "ks": 0.05,
    "chisquare": 0.05,
    "wasserstein": 0.1,
    "psi": 0.1,
    "jensenshannon": 0.1,
    "hellinger": 0.1,
}
P_VALUE_METHODS = frozenset({"ks", "chisquare"})
NUMERICAL_METHODS = frozenset({"ks", "wasserstein", "psi", "jensenshannon", "hellinger"})
CATEGORICAL_METHODS = frozenset({"chisquare", "psi", "jensenshannon", "hellinger"})
# How each method reads to a person.
METHOD_NAMES = {
    "ks": "Kolmogorov-Smirnov",
    "wasserstein": "Wasserstein distance (normed)",
    "psi": "PSI",
    "jensenshannon": "Jensen-Shannon distance",
    "hellinger": "Hellinger distance",
    "chisquare": "chi-square",
}


def method_name(method: str | None) -> str:
    """A drift method in words; an unknown key as it is."""
    return METHOD_NAMES.get(method, method or "")


DATASET_DRIFT_SHARE = 0.5


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's drift test. Statistics are None when the current window has no values.

    ``max_error`` bounds the error of a statistic computed from histograms where a bound is known
    (KS); ``unseen_share`` is the share of current values in categories the reference lacked.
    """

    name: str
    kind: Kind
    method: str
    statistic: float | None
    p_value: float | None
    threshold: float
    drifted: bool | None
    psi: float | None
    n_ref: int
    n_cur: int
    missing_cur: int
    unseen_share: float | None = None
    max_error: float | None = None


@dataclass(frozen=True)
class DatasetDrift:
    """Share of drifted features among those that could be tested."""

    n_features: int
    n_tested: int
    n_drifted: int
    share_drifted: float | None
    share_threshold: float
    drifted: bool | None


def default_method(*, kind: Kind, n_ref: int) -> str:
    small = n_ref <= SMALL_REFERENCE_ROWS
    if kind == "numerical":
        return "ks" if small else "wasserstein"
    return "chisquare" if small else "jensenshannon"


def is_drifted(*, method: str, statistic: float, p_value: float | None, threshold: float) -> bool:
    if method in P_VALUE_METHODS:
        return bool(p_value is not None and p_value < threshold)
    return bool(statistic >= threshold)


# (statistic, p_value, max_error)
Outcome = tuple[float, float | None, float | None]


def decile_tests(ref_deciles, cur_deciles) -> dict[str, Callable[[], Outcome]]:
    """The tests on the reference's decile bins, alike for raw values and aggregates."""
    return {
        "psi": lambda: (d.psi_from_counts(ref_deciles, cur_deciles), None, None),
        "jensenshannon": lambda: (
            d.jensenshannon_from_counts(ref_deciles, cur_deciles),
            None,
            None,
        ),
        "hellinger": lambda: (d.hellinger_from_counts(ref_deciles, cur_deciles), None, None),
    }


def numeric_feature_drift(
    *,
    name: str,
    reference: NumericReference,
    current: NumericHistogram,
    method: str | None = None,
    threshold: float | None = None,
    with_p_value: bool = True,
) -> FeatureDrift:
    """Drift of a numerical feature from stored aggregates (the app's path).

    ``with_p_value=False`` leaves KS's p-value NaN (and the verdict with it): for bootstraps of
    the statistic, where the exact p-value would dominate the cost.
    """
    ref = reference.histogram
    ref_deciles = d.decile_counts_from_histogram(ref, reference.deciles)
    cur_deciles = d.decile_counts_from_histogram(current, reference.deciles)
    tests: dict[str, Callable[[], Outcome]] = {
        "ks": lambda: _ks_outcome(d.ks_from_histograms(ref, current, with_p_value=with_p_value)),
        "wasserstein": lambda: (d.wasserstein_normed_from_histograms(ref, current), None, None),
        **decile_tests(ref_deciles, cur_deciles),
    }
    return _decide(
        name=name,
        kind="numerical",
        tests=tests,
        sizes=(ref.n, current.n, current.missing),
        psi=lambda: d.psi_from_counts(ref_deciles, cur_deciles),
        method=method,
        threshold=threshold,
    )


def numeric_feature_drift_rows(
    *,
    name: str,
    reference: NumericReference,
    current: HistogramRows,
    method: str | None = None,
    threshold: float | None = None,
) -> list[FeatureDrift]:
    """`numeric_feature_drift` of each row of `current` (a feature's windows), every
    statistic computed for all rows at once."""
    ref = reference.histogram
    ref_deciles = d.decile_counts_from_histogram(ref, reference.deciles)
    cur_deciles = rebin_counts_rows(current, reference.deciles)
    tests: dict[str, Callable[[], RowsOutcome]] = {
        "ks": lambda: d.ks_rows(ref, current),
        "wasserstein": lambda: (d.wasserstein_normed_rows(ref, current), None, None),
        **decile_tests_rows(ref_deciles, cur_deciles),
    }
    return _decide_rows(
        name=name,
        kind="numerical",
        tests=tests,
        sizes=(ref.n, current.n, current.missing),
        psi=lambda: d.psi_rows(ref_deciles, cur_deciles),
        method=method,
        threshold=threshold,
    )


# (statistics, p-values, max errors) of many rows
RowsOutcome = tuple[np.ndarray, np.ndarray | None, np.ndarray | None]


def decile_tests_rows(ref_deciles, cur_rows) -> dict[str, Callable[[], RowsOutcome]]:
    """`decile_tests` of each row of current counts."""
    return {
        "psi": lambda: (d.psi_rows(ref_deciles, cur_rows), None, None),
        "jensenshannon": lambda: (d.jensenshannon_rows(ref_deciles, cur_rows), None, None),
        "hellinger": lambda: (d.hellinger_rows(ref_deciles, cur_rows), None, None),
    }


def numeric_feature_drift_raw(
    *,
    name: str,
    ref_values: ArrayLike,
    cur_values: ArrayLike,
    method: str | None = None,
    threshold: float | None = None,
) -> FeatureDrift:
    """Drift of a numerical feature from raw values, with exact KS and Wasserstein."""
    # Sorting once serves every test: KS and Wasserstein walk the sorted arrays, the deciles
    # and their counts are binary searches.
    ref, _ = d.sorted_present(ref_values)
    cur, missing_cur = d.sorted_present(cur_values)
    edges = np.unique(np.quantile(ref, DECILES)) if ref.size else np.array([], dtype=float)
    ref_deciles = d.decile_counts_sorted(ref, edges)
    cur_deciles = d.decile_counts_sorted(cur, edges)
    tests: dict[str, Callable[[], Outcome]] = {
        "ks": lambda: _ks_outcome(d.ks_sorted(ref, cur)),
        "wasserstein": lambda: (d.wasserstein_normed_sorted(ref, cur), None, None),
        **decile_tests(ref_deciles, cur_deciles),
    }
    return _decide(
        name=name,
        kind="numerical",
        tests=tests,
        sizes=(ref.size, cur.size, missing_cur),
        psi=lambda: d.psi_from_counts(ref_deciles, cur_deciles),
        method=method,
        threshold=threshold,
    )


def categorical_feature_drift(
    *,
    name: str,
    ref_counts: Mapping[Hashable, int],
    cur_counts: Mapping[Hashable, int],
    missing_cur: int = 0,
    method: str | None = None,
    threshold: float | None = None,
) -> FeatureDrift:
    """Drift of a categorical feature from category counts (missing values counted apart)."""
    ref_bins, cur_bins = d.categorical_bins(ref_counts, cur_counts)
    tests: dict[str, Callable[[], Outcome]] = {
        "chisquare": lambda: (*d.chisquare_categorical(ref_counts, cur_counts), None),
        "psi": lambda: (d.psi_from_counts(ref_bins, cur_bins), None, None),
        "jensenshannon": lambda: (d.jensenshannon_from_counts(ref_bins, cur_bins), None, None),
        "hellinger": lambda: (d.hellinger_from_counts(ref_bins, cur_bins), None, None),
    }
    result = _decide(
        name=name,
        kind="categorical",
        tests=tests,
        sizes=(int(ref_bins.sum()), int(cur_bins.sum()), missing_cur),
        psi=lambda: d.psi_from_counts(ref_bins, cur_bins),
        method=method,
        threshold=threshold,
    )
    unseen = d.unseen_share(ref_counts, cur_counts)
    return replace(result, unseen_share=None if np.isnan(unseen) else unseen)


def categorical_feature_drift_rows(
    *,
    name: str,
    ref_counts: Mapping[Hashable, int],
    cur_counts: list[Mapping[Hashable, int]],
    missing_cur: ArrayLike,
    method: str | None = None,
    threshold: float | None = None,
) -> list[FeatureDrift]:
    """`categorical_feature_drift` of each window's category counts, all at once."""
    _, cur_rows = d.category_rows(ref_counts, cur_counts)
    ref_bins, cur_bins = d.categorical_bins_rows(ref_counts, cur_rows)
    tests: dict[str, Callable[[], RowsOutcome]] = {
        "chisquare": lambda: (*d.chisquare_rows(ref_counts, cur_rows), None),
        **decile_tests_rows(ref_bins, cur_bins),
    }
    results = _decide_rows(
        name=name,
        kind="categorical",
        tests=tests,
        sizes=(int(ref_bins.sum()), cur_bins.sum(axis=1), np.asarray(missing_cur)),
        psi=lambda: d.psi_rows(ref_bins, cur_bins),
        method=method,
        threshold=threshold,
    )
    unseen = d.unseen_share_rows(ref_counts, cur_rows)
    return [
        replace(r, unseen_share=None if np.isnan(u) else float(u))
        for r, u in zip(results, unseen, strict=True)
    ]


def categorical_feature_drift_raw(
    *,
    name: str,
    ref_values: Iterable[Hashable],
    cur_values: Iterable[Hashable],
    method: str | None = None,
    threshold: float | None = None,
) -> FeatureDrift:
    """Drift of a categorical feature from raw values; None and NaN count as missing."""
    ref_counts, _ = category_counts(ref_values)
    cur_counts, missing_cur = category_counts(cur_values)
    return categorical_feature_drift(
        name=name,
        ref_counts=ref_counts,
        cur_counts=cur_counts,
        missing_cur=missing_cur,
        method=method,
        threshold=threshold,
    )


def dataset_drift(
    results: Sequence[FeatureDrift], *, share_threshold: float = DATASET_DRIFT_SHARE
) -> DatasetDrift:
    """The dataset drifts when at least ``share_threshold`` of the tested features drift.

    Features that could not be tested (empty current window) are left out of the share.
    """
    tested = [r for r in results if r.drifted is not None]
    n_drifted = sum(bool(r.drifted) for r in tested)
    share = n_drifted / len(tested) if tested else None
    return DatasetDrift(
        n_features=len(results),
        n_tested=len(tested),
        n_drifted=n_drifted,
        share_drifted=share,
        share_threshold=share_threshold,
        drifted=None if share is None else share >= share_threshold,
    )


def _ks_outcome(result: d.KsResult) -> Outcome:
    return result.statistic, result.p_value, result.max_error


def _decide(
    *,
    name: str,
    kind: Kind,
    tests: Mapping[str, Callable[[], Outcome]],
    sizes: tuple[int, int, int],
    psi: Callable[[], float],
    method: str | None,
    threshold: float | None,
) -> FeatureDrift:
    n_ref, n_cur, missing_cur = sizes
    method = method or default_method(kind=kind, n_ref=n_ref)
    if method not in tests:
        raise ValueError(f"method {method!r} does not apply to a {kind} feature")
    threshold = DEFAULT_THRESHOLDS[method] if threshold is None else threshold
    common = dict(
        name=name,
        kind=kind,
        method=method,
        threshold=threshold,
        n_ref=n_ref,
        n_cur=n_cur,
        missing_cur=missing_cur,
    )
    if n_ref == 0 or n_cur == 0:
        return FeatureDrift(**common, statistic=None, p_value=None, drifted=None, psi=None)
    statistic, p_value, max_error = tests[method]()
    return FeatureDrift(
        **common,
        statistic=statistic,
        p_value=p_value,
        drifted=is_drifted(
            method=method, statistic=statistic, p_value=p_value, threshold=threshold
        ),
        psi=psi(),
        max_error=max_error,
    )


def _decide_rows(
    *,
    name: str,
    kind: Kind,
    tests: Mapping[str, Callable[[], RowsOutcome]],
    sizes: tuple[int, np.ndarray, np.ndarray],
    psi: Callable[[], np.ndarray],
    method: str | None,
    threshold: float | None,
) -> list[FeatureDrift]:
    """`_decide` for each row: one method for all (it depends on the reference alone)."""
    n_ref, n_cur, missing_cur = sizes
    method = method or default_method(kind=kind, n_ref=n_ref)
    if method not in tests:
        raise ValueError(f"method {method!r} does not apply to a {kind} feature")
    threshold = DEFAULT_THRESHOLDS[method] if threshold is None else threshold
    rows = len(n_cur)
    if n_ref == 0 or rows == 0 or not np.any(n_cur):
        statistic = p_value = max_error = psi_value = [None] * rows
    else:
        statistic, p_value, max_error = tests[method]()
        psi_value = psi()
    results = []
    for i in range(rows):
        common = dict(
            name=name,
            kind=kind,
            method=method,
            threshold=threshold,
            n_ref=n_ref,
            n_cur=int(n_cur[i]),
            missing_cur=int(missing_cur[i]),
        )
        if n_ref == 0 or n_cur[i] == 0:
            results.append(
                FeatureDrift(**common, statistic=None, p_value=None, drifted=None, psi=None)
            )
            continue
        value = float(statistic[i])
        p = None if p_value is None else float(p_value[i])
        results.append(
            FeatureDrift(
                **common,
                statistic=value,
                p_value=p,
                drifted=is_drifted(method=method, statistic=value, p_value=p, threshold=threshold),
                psi=float(psi_value[i]),
                max_error=None if max_error is None else float(max_error[i]),
            )
        )
    return results


# --- model outputs: score and prediction against the reference's ---

MEAN_SHIFT_THRESHOLD = 0.1


def mean_shift_drift(
    *, name: str, reference: Moments, current: Moments, threshold: float = MEAN_SHIFT_THRESHOLD
) -> FeatureDrift:
    """Drift of a numerical output (score, regression prediction) from its moments alone.

    The statistic is |mean_cur - mean_ref| / std_ref (population std, floored as Wasserstein's
    norm). It is a lower bound of the normed Wasserstein distance (W1 >= |mean difference|),
    so at the same 0.1 threshold a shift it flags, Wasserstein would flag too; a change of
    shape that keeps the mean is not seen. The p-value is Welch's t-test, for reference.
    """
    common = dict(
        name=name,
        kind="numerical",
        method="mean_shift",
        threshold=threshold,
        psi=None,
        n_ref=reference.n,
        n_cur=current.n,
        missing_cur=0,
    )
    if reference.n == 0 or current.n == 0:
        return FeatureDrift(**common, statistic=None, p_value=None, drifted=None)
    population_std = np.sqrt(max(reference.total_sq / reference.n - reference.mean**2, 0.0))
    statistic = abs(current.mean - reference.mean) / max(population_std, d.MIN_NORM_STD)
    p_value = None
    if reference.n > 1 and current.n > 1 and reference.variance + current.variance > 0:
        p_value = float(
            stats.ttest_ind_from_stats(
                current.mean,
                current.std,
                current.n,
                reference.mean,
                reference.std,
                reference.n,
                equal_var=False,
            ).pvalue
        )
    return FeatureDrift(
        **common,
        statistic=float(statistic),
        p_value=p_value,
        drifted=bool(statistic >= threshold),
    )


# --- per-model overrides ---


@dataclass(frozen=True)
class Override:
    """A drift method and, optionally, its threshold (None: the method's default)."""

    method: str
    threshold: float | None = None


@dataclass(frozen=True)
class DriftSettings:
    """A model's drift overrides: per kind of feature, per feature, and the dataset share.

    A feature's own override wins over its kind's; without either the default test applies.
    """

    numerical: Override | None = None
    categorical: Override | None = None
    features: Mapping[str, Override] = field(default_factory=dict)
    share_threshold: float = DATASET_DRIFT_SHARE

    def override_for(self, name: str, kind: Kind) -> Override | None:
        """The override for this feature; a feature override whose method does not fit the
        feature's kind is skipped (the kind's override or the default applies; see ``misfit``).
        """
        own = self.features.get(name)
        if own is not None and own.method in _methods_for(kind):
            return own
        return self.numerical if kind == "numerical" else self.categorical

    def misfit(self, name: str, kind: Kind) -> str | None:
        """Why the feature's own override was not used, if it was not."""
        own = self.features.get(name)
        if own is None or own.method in _methods_for(kind):
            return None
        return f"override method {own.method!r} does not apply to a {kind} feature"


NO_SETTINGS = DriftSettings()


def drift_settings_parse(data: Mapping | None) -> DriftSettings:
    """Validate the stored or posted form of the settings; ValueError names the bad field.

    ``{"numerical": {"method": "psi", "threshold": 0.2}, "categorical": {...},
    "features": {"age": {"method": "ks", "threshold": 0.01}}, "share_threshold": 0.5}``,
    every key optional.
    """
    if not data:
        return NO_SETTINGS
    if not isinstance(data, Mapping):
        raise ValueError("drift: must be an object")
    unknown = set(data) - {"numerical", "categorical", "features", "share_threshold"}
    if unknown:
        raise ValueError(f"drift: unknown keys {sorted(unknown)}")
    features = data.get("features") or {}
    if not isinstance(features, Mapping):
        raise ValueError("drift.features: must be an object of feature name to override")
    share = data.get("share_threshold", DATASET_DRIFT_SHARE)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
        raise ValueError("drift.share_threshold: must be a number in (0, 1]")
    return DriftSettings(
        numerical=_override_parse(data.get("numerical"), "drift.numerical", NUMERICAL_METHODS),
        categorical=_override_parse(
            data.get("categorical"), "drift.categorical", CATEGORICAL_METHODS
        ),
        features={
            str(name): _override_parse(
                value, f"drift.features.{name}", NUMERICAL_METHODS | CATEGORICAL_METHODS
            )
            for name, value in features.items()
        },
        share_threshold=float(share),
    )


def drift_settings_json(settings: DriftSettings) -> dict:
    """The stored form: what ``drift_settings_parse`` reads back."""
    body: dict = {"share_threshold": settings.share_threshold}
    for key in ("numerical", "categorical"):
        value = getattr(settings, key)
        if value is not None:
            body[key] = asdict(value)
    body["features"] = {name: asdict(value) for name, value in settings.features.items()}
    return body


def _override_parse(value, where: str, methods: frozenset[str]) -> Override | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: must be an object with method and threshold")
    unknown = set(value) - {"method", "threshold"}
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    method = value.get("method")
    if method not in methods:
        raise ValueError(f"{where}.method: one of {sorted(methods)} (a threshold needs its method)")
    threshold = value.get("threshold")
    if threshold is None:
        return Override(method)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise ValueError(f"{where}.threshold: must be a number")
    if method in P_VALUE_METHODS and not 0 < threshold < 1:
        raise ValueError(f"{where}.threshold: a p-value threshold lies in (0, 1)")
    if threshold < 0 or not np.isfinite(threshold):
        raise ValueError(f"{where}.threshold: must be a finite number >= 0")
    return Override(method, float(threshold))


def _methods_for(kind: Kind) -> frozenset[str]:
    return NUMERICAL_METHODS if kind == "numerical" else CATEGORICAL_METHODS
