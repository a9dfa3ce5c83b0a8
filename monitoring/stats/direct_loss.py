"""Regression performance estimated before the outcomes: direct loss estimation (DLE), as
NannyML's, from a model of each prediction's expected absolute and squared error.

NannyML fits LightGBM on the features and the prediction to predict |error| and error^2. The
app has neither LightGBM nor scikit-learn at run time, so the error model here is the closed
form of what boosting with stumps converges to: an additive model, one piecewise-linear curve
per numerical input (through knots at the reference's minimum, deciles and maximum, held
flat beyond them, plus a level for a missing value), one level per category of a categorical
input (its `MAX_CATEGORIES` most frequent; every other, unseen or missing category shares one
level), fitted by ridge least squares (penalty `RIDGE` on every coefficient but the
intercept). It is a linear model of a few hundred coefficients: fitted in one solve, stored as
JSON, applied to a chunk's rows with one `np.interp` per input, and tested against
scikit-learn's `SplineTransformer` and `Ridge` on the same rows. It has no interactions
between inputs; a loss that depends on two inputs jointly is estimated by their sum.

Each row's expected |error| a and error^2 s are clipped at 0. Within a row the spread follows
the reference's (a scale family): Var(|error| | x) = k_abs * a^2 and Var(error^2 | x) =
k_sq * s^2, with k the reference's sum of squared deviations over the sum of squared
expectations. A window's realised MAE then has mean sum(a) / n and variance sum(k_abs * a^2)
/ n^2 while the relation between inputs and errors holds, plus the error model's own: the
standard error of the reference's mean level, sqrt(sum((|error| - a)^2)) / n_reference,
squared (without it a large window's interval is too narrow: its outcomes' noise shrinks
with its size, the model's fitting error does not). The interval says where the realised
value should fall, and a realised value outside it says the relation has changed. Rows are
summed per hour by the jobs (`LossSums`), so a window is a sum of stored sums.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from monitoring.stats.moments import CONFIDENCE, Estimate, z_value

LOSS_METRICS = ("mae", "rmse")
KNOTS = 11  # minimum, deciles, maximum
MAX_CATEGORIES = 20
RIDGE = 1.0
FIT_BATCH_ROWS = 20_000  # rows of the design matrix in memory at once while fitting
PREDICTION = "(prediction)"  # the model's output, an input of the error model like a feature


@dataclass(frozen=True)
class Inputs:
    """Rows of the error model's inputs: the numeric prediction, numerical features (NaN where
    missing) and categorical features as codes into keys (-1 where missing)."""

    prediction: np.ndarray
    numbers: dict[str, np.ndarray] = field(default_factory=dict)
    categories: dict[str, tuple[np.ndarray, list[str]]] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.prediction.size

    def numeric(self, name: str) -> np.ndarray:
        if name == PREDICTION:
            return self.prediction
        values = self.numbers.get(name)
        return np.full(len(self), np.nan) if values is None else values


@dataclass(frozen=True)
class Curve:
    """A numerical input's term: knots, a coefficient per knot and one for missing."""

    name: str
    knots: np.ndarray
    coef: np.ndarray
    missing: float = 0.0

    @property
    def size(self) -> int:
        return self.knots.size + 1

    def basis(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row: the left knot's column, the weight of the right one (linear
        interpolation, constant beyond the outer knots), and whether the value is missing."""
        missing = np.isnan(values)
        clipped = np.clip(values, self.knots[0], self.knots[-1])  # NaN stays NaN
        clipped[missing] = self.knots[0]
        left = np.clip(
            np.searchsorted(self.knots, clipped, side="right") - 1, 0, self.knots.size - 2
        )
        width = self.knots[left + 1] - self.knots[left]
        return left, (clipped - self.knots[left]) / width, missing

    def locate(self, inputs: Inputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.basis(inputs.numeric(self.name))

    def value_at(self, located: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        """The curve at located rows: its coefficients interpolated (`np.interp`'s value,
        without a second search for the knots of the same rows)."""
        left, right_weight, missing = located
        curve = self.coef[left] + (self.coef[left + 1] - self.coef[left]) * right_weight
        return np.where(missing, self.missing, curve)

    def columns(self, inputs: Inputs, rows: slice) -> np.ndarray:
        left, right_weight, missing = self.basis(inputs.numeric(self.name)[rows])
        block = np.zeros((left.size, self.size))
        at = np.arange(left.size)
        block[at, left] = np.where(missing, 0.0, 1 - right_weight)
        block[at, left + 1] += np.where(missing, 0.0, right_weight)
        block[:, -1] = missing
        return block

    def with_coef(self, coef: np.ndarray) -> Curve:
        return Curve(self.name, self.knots, coef[:-1], float(coef[-1]))

    def as_json(self) -> dict:
        return {
            "name": self.name,
            "knots": self.knots.tolist(),
            "coef": self.coef.tolist(),
            "missing": self.missing,
        }


@dataclass(frozen=True)
class Levels:
    """A categorical input's term: a coefficient per known category and one for the rest."""

    name: str
    keys: list[str]
    coef: np.ndarray
    other: float = 0.0

    @property
    def size(self) -> int:
        return len(self.keys) + 1

    def index(self, inputs: Inputs) -> np.ndarray:
        """Each row's column: its category's, else the last (other, unseen or missing)."""
        codes, keys = inputs.categories.get(self.name, (np.full(len(inputs), -1), []))
        position = {key: i for i, key in enumerate(self.keys)}
        of_key = np.array([position.get(key, len(self.keys)) for key in keys] + [len(self.keys)])
        return of_key[np.where(codes >= 0, codes, len(keys))]

    def locate(self, inputs: Inputs) -> np.ndarray:
        return self.index(inputs)

    def value_at(self, index: np.ndarray) -> np.ndarray:
        return np.append(self.coef, self.other)[index]

    def columns(self, inputs: Inputs, rows: slice) -> np.ndarray:
        index = self.index(inputs)[rows]
        block = np.zeros((index.size, self.size))
        block[np.arange(index.size), index] = 1.0
        return block

    def with_coef(self, coef: np.ndarray) -> Levels:
        return Levels(self.name, self.keys, coef[:-1], float(coef[-1]))

    def as_json(self) -> dict:
        return {
            "name": self.name,
            "keys": self.keys,
            "coef": self.coef.tolist(),
            "other": self.other,
        }


Term = Curve | Levels


@dataclass(frozen=True)
class Additive:
    """An intercept plus a term per input."""

    intercept: float
    terms: list[Term]

    def __call__(self, inputs: Inputs) -> np.ndarray:
        return self.at([term.locate(inputs) for term in self.terms], len(inputs))

    def at(self, located: list, n: int) -> np.ndarray:
        """The model at rows located by its terms' `locate` (clipped at 0)."""
        total = np.full(n, self.intercept)
        for term, where in zip(self.terms, located, strict=True):
            total += term.value_at(where)
        return np.maximum(total, 0.0)

    def as_json(self) -> dict:
        return {
            "intercept": self.intercept,
            "curves": [t.as_json() for t in self.terms if isinstance(t, Curve)],
            "levels": [t.as_json() for t in self.terms if isinstance(t, Levels)],
        }

    @classmethod
    def from_json(cls, data: dict) -> Additive:
        curves = [
            Curve(c["name"], np.array(c["knots"]), np.array(c["coef"]), c["missing"])
            for c in data["curves"]
        ]
        levels = [
            Levels(c["name"], list(c["keys"]), np.array(c["coef"]), c["other"])
            for c in data["levels"]
        ]
        return cls(data["intercept"], [*curves, *levels])


@dataclass(frozen=True)
class ErrorModel:
    """Expected |error| and error^2 of a row, with the spread of each around its expectation."""

    absolute: Additive
    squared: Additive
    spread_abs: float  # k_abs: Var(|error| | x) = k_abs * a^2
    spread_sq: float
    level_abs: float  # standard error of the reference's mean |error| level
    level_sq: float

    def as_json(self) -> dict:
        return {
            "absolute": self.absolute.as_json(),
            "squared": self.squared.as_json(),
            "spread_abs": self.spread_abs,
            "spread_sq": self.spread_sq,
            "level_abs": self.level_abs,
            "level_sq": self.level_sq,
        }

    def expected(self, inputs: Inputs) -> tuple[np.ndarray, np.ndarray]:
        """Each row's expected |error| and error^2: the two models share their terms' knots
        and categories, so each input is located once for both."""
        located = [term.locate(inputs) for term in self.absolute.terms]
        return self.absolute.at(located, len(inputs)), self.squared.at(located, len(inputs))

    @classmethod
    def from_json(cls, data: dict) -> ErrorModel:
        return cls(
            Additive.from_json(data["absolute"]),
            Additive.from_json(data["squared"]),
            data["spread_abs"],
            data["spread_sq"],
            data["level_abs"],
            data["level_sq"],
        )


def terms_shape(inputs: Inputs) -> list[Term]:
    """The terms of the inputs, coefficients zero: a curve per numerical input with at least
    two distinct values (knots at its quantiles), levels per categorical input."""
    terms: list[Term] = []
    for name in [PREDICTION, *sorted(inputs.numbers)]:
        values = inputs.numeric(name)
        if np.isnan(values).all():
            continue
        knots = np.unique(np.nanpercentile(values, 100 * np.linspace(0, 1, KNOTS)))
        if knots.size >= 2:
            terms.append(Curve(name, knots, np.zeros(knots.size)))
    for name in sorted(inputs.categories):
        codes, keys = inputs.categories[name]
        counts = np.bincount(codes[codes >= 0], minlength=len(keys))
        frequent = sorted(np.argsort(-counts, kind="stable")[:MAX_CATEGORIES].tolist())
        chosen = [keys[i] for i in frequent if counts[i]]
        terms.append(Levels(name, chosen, np.zeros(len(chosen))))
    return terms


def ridge_fit(terms: list[Term], inputs: Inputs, targets: np.ndarray) -> list[Additive]:
    """Ridge fits with an unpenalised intercept of each target column on the terms' columns,
    as scikit-learn's `Ridge`: centred normal equations, built a batch of rows at a time."""
    n, width = len(inputs), sum(term.size for term in terms)
    if not width:  # no input varies: the mean error of the reference
        return [Additive(float(mean), []) for mean in targets.mean(axis=0)]
    gram, cross = np.zeros((width, width)), np.zeros((width, targets.shape[1]))
    sums = np.zeros(width)
    for start in range(0, n, FIT_BATCH_ROWS):
        rows = slice(start, start + FIT_BATCH_ROWS)
        design = np.hstack([term.columns(inputs, rows) for term in terms])
        gram += design.T @ design
        cross += design.T @ targets[rows]
        sums += design.sum(axis=0)
    means, target_means = sums / n, targets.mean(axis=0)
    gram -= n * np.outer(means, means)
    cross -= n * np.outer(means, target_means)
    coef = np.linalg.solve(gram + RIDGE * np.eye(width), cross)
    intercepts = target_means - means @ coef
    fitted = []
    for column in range(targets.shape[1]):
        bounds = np.cumsum([0] + [term.size for term in terms])
        fitted.append(
            Additive(
                float(intercepts[column]),
                [
                    term.with_coef(coef[bounds[i] : bounds[i + 1], column])
                    for i, term in enumerate(terms)
                ],
            )
        )
    return fitted


def spread(observed: np.ndarray, expected: np.ndarray) -> float:
    """k with Var(observed | x) = k * expected^2, from the reference's residuals."""
    scale = float(expected @ expected)
    return float(np.sum((observed - expected) ** 2) / scale) if scale else 0.0


def level_error(observed: np.ndarray, expected: np.ndarray) -> float:
    """The standard error of the fitted mean level: the residuals' root sum of squares over
    the reference's size."""
    return float(np.sqrt(np.sum((observed - expected) ** 2)) / observed.size)


def error_model_fit(inputs: Inputs, outcome: np.ndarray) -> ErrorModel | None:
    """The error model of labelled reference rows (prediction and outcome both numbers);
    None without two such rows."""
    judged = ~np.isnan(inputs.prediction) & ~np.isnan(outcome)
    if judged.sum() < 2:
        return None
    inputs = inputs_take(inputs, judged)
    error = inputs.prediction - outcome[judged]
    absolute, squared = ridge_fit(
        terms_shape(inputs), inputs, np.column_stack([np.abs(error), error**2])
    )
    a, s = absolute(inputs), squared(inputs)
    return ErrorModel(
        absolute,
        squared,
        spread(np.abs(error), a),
        spread(error**2, s),
        level_error(np.abs(error), a),
        level_error(error**2, s),
    )


def inputs_take(inputs: Inputs, keep: np.ndarray) -> Inputs:
    return Inputs(
        inputs.prediction[keep],
        {name: values[keep] for name, values in inputs.numbers.items()},
        {name: (codes[keep], keys) for name, (codes, keys) in inputs.categories.items()},
    )


def inputs_concat(parts: list[Inputs]) -> Inputs:
    """Rows of several reads one after the other (each categorical column on the union of
    the parts' keys)."""
    numbers = {
        name: np.concatenate([part.numeric(name) for part in parts])
        for name in sorted({name for part in parts for name in part.numbers})
    }
    categories = {}
    for name in sorted({name for part in parts for name in part.categories}):
        keys = sorted({key for part in parts for key in part.categories.get(name, ((), []))[1]})
        position = {key: i for i, key in enumerate(keys)}
        codes = []
        for part in parts:
            part_codes, part_keys = part.categories.get(name, (np.full(len(part), -1), []))
            of_key = np.array([position[key] for key in part_keys] + [-1], dtype=np.int64)
            codes.append(of_key[np.where(part_codes >= 0, part_codes, len(part_keys))])
        categories[name] = (np.concatenate(codes), keys)
    prediction = np.concatenate([part.prediction for part in parts])
    return Inputs(prediction, numbers, categories)


# --- a window's estimate from its sums ---

EXPECTED_FIELDS = (
    "n",  # rows with a numeric prediction
    "abs",  # sum of expected |error|
    "abs_var",  # sum of Var(|error| | x)
    "abs_level",  # sum of the error model's level standard error (n times it, per model)
    "sq",  # sum of expected error^2
    "sq_var",
    "sq_level",
)
SUM_FIELDS = (
    *EXPECTED_FIELDS,
    *(f"judged_{name}" for name in EXPECTED_FIELDS),  # the same over rows with an outcome
    "realised_abs",  # sum of |error| over the judged rows
    "realised_sq",
)


@dataclass(frozen=True)
class LossSums:
    """What a window's estimate and gap need, summed over its rows (layout `SUM_FIELDS`)."""

    values: np.ndarray

    def __add__(self, other: LossSums) -> LossSums:
        return LossSums(self.values + other.values)

    def __getattr__(self, name: str) -> float:
        if name in SUM_FIELDS:
            return float(self.values[SUM_FIELDS.index(name)])
        raise AttributeError(name)

    def judged_only(self) -> LossSums:
        """The judged rows' expectations in place of all rows'."""
        values = self.values.copy()
        width = len(EXPECTED_FIELDS)
        values[:width] = self.values[width : 2 * width]
        return LossSums(values)


def loss_sums(
    model: ErrorModel, inputs: Inputs, outcome: np.ndarray, group: np.ndarray, groups: int
):
    """Per group of rows (``group[i]`` is row i's, of ``groups``): the `SUM_FIELDS`, as an
    array of shape (groups, len(SUM_FIELDS)). Rows without a numeric prediction are left out."""
    scored = ~np.isnan(inputs.prediction)
    inputs, outcome, group = inputs_take(inputs, scored), outcome[scored], group[scored]
    a, s = model.expected(inputs)
    a_var, s_var = model.spread_abs * a**2, model.spread_sq * s**2
    judged = ~np.isnan(outcome)
    error = np.where(judged, inputs.prediction - np.nan_to_num(outcome), 0.0)
    ones = np.ones(a.size)
    columns = [ones, a, a_var, model.level_abs * ones, s, s_var, model.level_sq * ones]
    columns += [judged * column for column in columns]
    columns += [np.abs(error), error**2]
    return np.column_stack(
        [np.bincount(group, weights=column, minlength=groups) for column in columns]
    )


def loss_estimate(sums: LossSums, metric: str, *, confidence: float = CONFIDENCE) -> Estimate:
    """The window's estimated MAE or RMSE with the interval its realised value should fall
    in (RMSE: the square root of the mean squared error's bounds)."""
    n = int(sums.n)
    if not n:
        return Estimate(None, None, None, 0)
    if metric == "mae":
        total, variance, level = sums.abs, sums.abs_var, sums.abs_level
    else:
        total, variance, level = sums.sq, sums.sq_var, sums.sq_level
    # The outcomes' noise around the rows' expectations, and the model's fitting error of
    # their level (taken as shared by every row: an upper bound across versions).
    half = z_value(confidence) * np.sqrt(variance / n**2 + (level / n) ** 2)
    mean = total / n
    if metric == "mae":
        return Estimate(mean, max(mean - half, 0.0), mean + half, n)
    if metric != "rmse":
        raise ValueError(f"no estimate of {metric!r}")
    return Estimate(
        float(np.sqrt(mean)), float(np.sqrt(max(mean - half, 0.0))), float(np.sqrt(mean + half)), n
    )


def loss_gap(sums: LossSums, metric: str, *, confidence: float = CONFIDENCE) -> Estimate:
    """Realised minus estimated over the window's judged rows, with the interval the gap
    falls in by chance while the error model holds."""
    n = int(sums.judged_n)
    if not n:
        return Estimate(None, None, None, 0)
    estimate = loss_estimate(sums.judged_only(), metric, confidence=confidence)
    realised = sums.realised_abs / n if metric == "mae" else float(np.sqrt(sums.realised_sq / n))
    return Estimate(
        realised - estimate.value, estimate.low - estimate.value, estimate.high - estimate.value, n
    )
