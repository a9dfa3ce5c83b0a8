"""What Canary knows about each metric: the one place that names a metric's label, kind and tasks.

(Being filled in: for now only the words a person reads.)
"""

from __future__ import annotations


def metric_label(key: str) -> str:
    """The words a person reads for a metric key ("ROC AUC", "Missing rate of tenure_months")."""
    return key.replace("_", " ").capitalize()
