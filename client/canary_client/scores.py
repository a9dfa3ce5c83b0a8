"""A multiclass prediction's `scores` from what a classifier gives, as the server takes them."""

from __future__ import annotations

from collections.abc import Iterable

from canary_client.profile import label_text


def python_value(value):
    """A NumPy scalar as its Python number (json cannot send np.float32 or np.int64)."""
    return value.item() if hasattr(value, "item") else value


def class_scores(classes: Iterable, probabilities: Iterable) -> dict[str, float]:
    """One prediction's `scores`: each class (scikit-learn's `classes_`) to its probability (a
    row of `predict_proba`), class names in the server's text form (1, 1.0 and True all read
    "1", so they match the `prediction` logged beside them) and probabilities as floats."""
    classes, probabilities = list(classes), list(probabilities)
    if len(classes) != len(probabilities):
        raise ValueError(f"{len(classes)} classes but {len(probabilities)} probabilities")
    return {
        label_text(python_value(name)): float(python_value(p))
        for name, p in zip(classes, probabilities, strict=True)
    }
