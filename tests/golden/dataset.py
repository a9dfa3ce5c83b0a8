"""The golden dataset: three models fed through the public API, day by day, on a frozen clock.

Only stable entry points are used, so the recorded answers survive a restructuring of the code:
the HTTP API (ingestion, factory, alert rules and every GET), `accounts.services.api_key_create`
for the key and the `run_jobs` management command for the pipeline. Nothing from `monitoring` or
`factory` is imported.

`build(client)` stores the data (call it inside `freeze_time`, it moves the clock itself) and
`answers(client)` asks every GET and returns `[{"path", "status", "body"}]`, with the volatile
fields normalised (see `VOLATILE`).
"""

from __future__ import annotations

import io
import json
import math
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import numpy as np
from django.core.management import call_command
from django.urls import get_resolver
from rest_framework.test import APIClient

from accounts.services import api_key_create

SEED = 20260216
START = datetime(2026, 2, 16, tzinfo=UTC)  # a Monday: day and week windows line up
DAYS = 15
NOW = START + timedelta(days=DAYS, hours=6)  # the clock of the last run_jobs and of the GETs
SHIFT_DAY = 8  # from this day on: inputs drift and churn's old version loses accuracy
ROLLOUT_DAY = 4  # churn 1.1.0 becomes a 20% canary
WIDEN_DAY, ROLLBACK_DAY = 9, 10  # 1.1.0 raised to 50%, then rolled back to 20%
NEW_VERSION_DAY = 6  # demand and topic start serving an unregistered second version
STEP_DAYS = 3  # data is sent, and the jobs run, every 3 days

LINEAGE = {
    "training_data": {
        "uri": "s3://bucket/churn/2026-01.parquet",
        "sha256": "a" * 64,
        "rows": 120000,
        "start": "2026-01-01T00:00:00Z",
        "end": "2026-02-01T00:00:00Z",
    },
    "code_version": "git:4f2a9c1",
    "parameters": {"max_depth": 6, "learning_rate": 0.1},
    "validation": {"scheme": "kfold", "k": 5, "metrics": {"roc_auc": 0.81, "accuracy": 0.77}},
    "compute": {"instance": "m5.xlarge", "duration_s": 1800},
}

# Fields whose value differs on every run, replaced before comparison (everything else is exact):
# - `batch_id` (quarantine list, CSV and NDJSON) and `run_id` (rule evaluations) are uuid4s drawn
#   at ingestion and at each evaluation run. They are replaced by "uuid-N", numbered by first
#   appearance over the whole recording, so which records share a batch is still compared.
# - `duration_ms` of a rule evaluation is wall-clock time (perf_counter): replaced by null.
# - the order of an alert's `notifications`: they are ordered by `created_at` alone, and under a
#   frozen clock a firing and a resolved message of one run share it, so PostgreSQL answers them
#   in either order from run to run. They are sorted (by content) before comparison.
VOLATILE = ("batch_id", "run_id", "duration_ms", "notifications")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def day_start(day: int) -> datetime:
    return START + timedelta(days=day)


class Feed:
    """Records waiting to be sent, each with the instant it becomes known."""

    def __init__(self):
        self.predictions: list[tuple[datetime, dict]] = []
        self.outcomes: list[tuple[datetime, dict]] = []

    def due(self, until: datetime) -> tuple[list[dict], list[dict]]:
        """Pop the records known by `until`, in a fixed order."""
        ready_p = [r for t, r in self.predictions if t <= until]
        self.predictions = [(t, r) for t, r in self.predictions if t > until]
        ready_o = [r for t, r in self.outcomes if t <= until]
        self.outcomes = [(t, r) for t, r in self.outcomes if t > until]
        return ready_p, ready_o


def moments(rng, day: int, n: int, hours: tuple[int, int] = (0, 24)) -> list[datetime]:
    seconds = np.sort(rng.integers(hours[0] * 3600, hours[1] * 3600, size=n))
    return [day_start(day) + timedelta(seconds=int(s)) for s in seconds]


def churn_version(rng, day: int) -> str:
    if day < ROLLOUT_DAY:
        return "1.0.0"
    share = 0.5 if day == WIDEN_DAY else 0.2
    return "1.1.0" if rng.random() < share else "1.0.0"


def churn_day(rng, day: int, feed: Feed) -> None:
    """About 100 predictions of a binary churn model, outcomes for 85% with label delays."""
    shifted = day >= SHIFT_DAY
    for i, ts in enumerate(moments(rng, day, int(rng.integers(90, 120)))):
        pid = f"c-{day:02d}-{i:03d}"
        segment = "web" if rng.random() < 0.6 else "app"
        version = churn_version(rng, day)
        age = float(round(rng.normal(48 if shifted else 40, 10), 1))
        age_value = None if rng.random() < (0.12 if shifted and segment == "web" else 0.04) else age
        plan = str(
            rng.choice(["basic", "pro", "team"], p=[0.3, 0.3, 0.4] if shifted else [0.5, 0.3, 0.2])
        )
        basic = 0.8 if plan == "basic" else 0.0
        # The truth changes in the second half (older customers churn less), the old model not.
        truth = -0.4 + (-0.06 if shifted else 0.06) * (age - 44) + basic
        learnt = -0.4 + 0.06 * (age - 44) + basic
        if version == "1.1.0":
            learnt = truth  # the new version learnt the new relation
        score = float(round(sigmoid(learnt + rng.normal(0, 0.6)), 4))
        record = {
            "prediction_id": pid,
            "timestamp": iso(ts),
            "model_version": version,
            "prediction": int(score >= 0.5),
            "score": score,
            "segment": segment,
            "features": {"age": age_value, "plan": plan},
        }
        feed.predictions.append((ts + timedelta(minutes=5), record))
        label = int(rng.random() < sigmoid(truth))
        if rng.random() < 0.85:
            delay = timedelta(minutes=10) + timedelta(hours=float(rng.exponential(30)))
            seen = (ts + delay).replace(microsecond=0)
            outcome = {"prediction_id": pid, "observed_at": iso(seen), "outcome": label}
            if rng.random() < 0.7:
                outcome["values"] = {"revenue": 0.0 if label else float(round(rng.gamma(2, 20), 2))}
            if rng.random() < 0.02:
                del outcome["outcome"]  # a business value alone
                outcome.setdefault("values", {"revenue": 12.5})
            feed.outcomes.append((seen, outcome))
            if rng.random() < 0.01:  # a correction, a day later
                fixed = {
                    **outcome,
                    "observed_at": iso(seen + timedelta(days=1)),
                    "outcome": 1 - label,
                }
                fixed.pop("values", None)
                feed.outcomes.append((seen + timedelta(days=1), fixed))
    for j in range(3):  # outcomes of predictions Canary never sees
        seen = day_start(day) + timedelta(hours=5 + 6 * j)
        orphan = {"prediction_id": f"orphan-{day:02d}-{j}", "observed_at": iso(seen), "outcome": 1}
        feed.outcomes.append((seen, orphan))


def churn_malformed(day: int) -> tuple[list[dict], list[dict]]:
    """A few broken records a day: they land in quarantine with their reasons."""
    at = day_start(day) + timedelta(hours=12)
    predictions = [
        {"prediction_id": f"bad-{day:02d}-0", "timestamp": iso(at), "model_version": "1.0.0",
         "prediction": 1, "score": 1.7, "segment": "web"},
        {"prediction_id": f"bad-{day:02d}-1", "timestamp": "2026-02-20T10:00:00",
         "model_version": "1.0.0", "prediction": 0, "score": 0.2},
    ]  # fmt: skip
    if day % 3 == 0:
        predictions.append({"timestamp": iso(at), "model_version": "1.0.0", "prediction": 0})
    outcomes = [{"prediction_id": f"c-{day:02d}-000", "outcome": 1}]
    return predictions, outcomes


def regression_day(rng, day: int, feed: Feed) -> None:
    shifted = day >= SHIFT_DAY
    for i, ts in enumerate(moments(rng, day, 30, hours=(8, 20))):
        pid = f"d-{day:02d}-{i:03d}"
        temp = float(round(rng.normal(20 if shifted else 15, 5), 2))
        region = str(rng.choice(["north", "south"], p=[0.5, 0.5]))
        version = "2026.2" if day >= NEW_VERSION_DAY and rng.random() < 0.3 else "2026.1"
        bias = 4.0 if version == "2026.2" else 0.0
        prediction = float(round(100 + 3 * temp + bias + rng.normal(0, 4), 2))
        actual = float(round(100 + 3 * temp + (15 if shifted else 0) + rng.normal(0, 10), 2))
        if rng.random() < 0.01:
            actual = 0.0  # left out of mape
        record = {
            "prediction_id": pid, "timestamp": iso(ts), "model_version": version,
            "prediction": prediction, "segment": region,
            "features": {"temp": temp, "region": region},
        }  # fmt: skip
        feed.predictions.append((ts + timedelta(minutes=1), record))
        if rng.random() < 0.9:
            seen = (ts + timedelta(hours=6 + float(rng.exponential(20)))).replace(microsecond=0)
            feed.outcomes.append(
                (seen, {"prediction_id": pid, "observed_at": iso(seen), "outcome": actual})
            )


CLASSES = ("billing", "tech", "sales")


def multiclass_day(rng, day: int, feed: Feed) -> None:
    shifted = day >= SHIFT_DAY
    for i, ts in enumerate(moments(rng, day, 30, hours=(8, 20))):
        pid = f"t-{day:02d}-{i:03d}"
        truth = int(rng.choice(3, p=[0.5, 0.3, 0.2] if shifted else [0.4, 0.35, 0.25]))
        length = float(round(rng.lognormal(5 + 0.2 * truth, 0.5), 1))
        channel = str(rng.choice(["mail", "chat", "phone"]))
        version = "v2" if day >= NEW_VERSION_DAY and rng.random() < 0.5 else "v1"
        logits = rng.normal(0, 1, size=3)
        logits[truth] += 1.2 if not shifted or version == "v2" else 0.3
        probabilities = np.round(np.exp(logits) / np.exp(logits).sum(), 4)
        probabilities[2] = round(1 - probabilities[0] - probabilities[1], 4)
        record = {
            "prediction_id": pid, "timestamp": iso(ts), "model_version": version,
            "prediction": CLASSES[int(np.argmax(probabilities))],
            "score": float(probabilities.max()),  # the confidence in the predicted class
            "segment": channel, "features": {"length": length, "channel": channel},
        }  # fmt: skip
        feed.predictions.append((ts + timedelta(minutes=1), record))
        if rng.random() < 0.8:
            seen = (ts + timedelta(hours=float(rng.exponential(12)))).replace(microsecond=0)
            feed.outcomes.append(
                (seen, {"prediction_id": pid, "observed_at": iso(seen), "outcome": CLASSES[truth]})
            )


def reference_rows(rng) -> list[dict]:
    """Held-out rows of churn 1.0.0, with their truth, as the registered reference."""
    rows = []
    for _ in range(400):
        age = float(round(rng.normal(40, 10), 1))
        plan = str(rng.choice(["basic", "pro", "team"], p=[0.5, 0.3, 0.2]))
        logit = -0.4 + 0.06 * (age - 44) + (0.8 if plan == "basic" else 0.0)
        score = float(round(sigmoid(logit + rng.normal(0, 0.6)), 4))
        rows.append({
            "features": {"age": age, "plan": plan}, "prediction": int(score >= 0.5),
            "score": score, "outcome": int(rng.random() < sigmoid(logit)),
        })  # fmt: skip
    return rows


def lineage(**metrics) -> dict:
    body = json.loads(json.dumps(LINEAGE))
    body["validation"]["metrics"].update(metrics)
    return body


def expect(response, *statuses: int):
    if response.status_code not in statuses:
        raise AssertionError(
            f"{response.request['REQUEST_METHOD']} {response.request['PATH_INFO']}: "
            f"{response.status_code} {response.content[:2000]!r}"
        )
    return response


def post(client: APIClient, path: str, body, *statuses: int):
    return expect(client.post(path, body, format="json"), *(statuses or (200, 201)))


def send(client: APIClient, model: str, kind: str, records: list[dict], *, ndjson: bool = False):
    if not records:
        return
    path = f"/api/v1/models/{model}/{kind}"
    if ndjson:
        text = "\n".join(json.dumps(r) for r in records) + "\n"
        expect(client.post(path, text, content_type="application/x-ndjson"), 200)
    else:
        post(client, path, {"records": records}, 200)


def golden_client() -> APIClient:
    client = APIClient()
    key = api_key_create(
        name="golden",
        scopes=["predictions:write", "outcomes:write", "read", "factory:write"],
        model_names=[],
    )
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def warm_up() -> None:
    """Import the project before the clock is frozen: some libraries (pandas) never finish
    importing under freezegun. Resolving the URLconf imports every view and what it uses."""
    import pandas  # noqa: F401

    get_resolver().url_patterns  # noqa: B018


def run_jobs() -> None:
    call_command("run_jobs", stdout=io.StringIO())


def setup_models(client: APIClient, rng) -> None:
    post(client, "/api/v1/models", {
        "name": "churn", "task": "binary_classification", "positive_class": 1,
        "description": "Who cancels next month", "owners": ["ds@example.com"],
        "on_call": ["oncall@example.com"],
    })  # fmt: skip
    post(client, "/api/v1/models", {
        "name": "demand", "task": "regression", "on_call": ["demand@example.com"],
        "drift": {"numerical": {"method": "wasserstein"}},
    })  # fmt: skip
    post(client, "/api/v1/models", {
        "name": "topic", "task": "multiclass_classification", "on_call": ["topic@example.com"],
    })  # fmt: skip
    versions = "/api/v1/models/churn/versions"
    post(client, versions, {"version": "1.0.0", "lineage": lineage(roc_auc=0.8),
                            "reference": {"rows": reference_rows(rng)}})  # fmt: skip
    post(client, versions, {"version": "1.1.0", "lineage": lineage(roc_auc=0.83, accuracy=0.79)})
    post(
        client, "/api/v1/models/demand/versions", {"version": "2026.1", "lineage": lineage(mae=8.0)}
    )
    put = client.put(
        "/api/v1/models/churn/gates",
        {"canary": {"roc_auc": 0.75}, "production": {"roc_auc": 0.8}},
        format="json",
    )
    expect(put, 200)
    post(client, "/api/v1/models/churn/rollouts", {"version": "1.0.0", "traffic_percent": 100,
                                                  "note": "first release"})  # fmt: skip
    expect(
        client.patch(
            "/api/v1/models/churn",
            {"drift": {"features": {"age": {"method": "ks", "threshold": 0.01}}}},
            format="json",
        ),
        200,
    )
    rules = "/api/v1/models/churn/alert-rules"
    for rule in (
        {"metric": "roc_auc", "kind": "static", "lower": 0.72, "granularity": "day",
         "min_count": 30, "requests_retrain": True, "severity": "critical"},
        {"metric": "accuracy", "kind": "relative", "percent": 8, "baseline_windows": 5,
         "granularity": "day", "min_count": 30, "sides": "too_low"},
        {"metric": "mean_score", "kind": "band", "k": 3, "baseline_windows": 24,
         "granularity": "hour", "min_count": 3},
        {"metric": "outcomes", "kind": "no_data", "granularity": "day", "min_count": 20},
        {"metric": "missing_rate:age", "kind": "static", "upper": 0.08, "granularity": "day",
         "min_count": 30, "version": "1.0.0", "segment": "web", "recipients": ["age@example.com"]},
        {"metric": "accuracy", "kind": "relative", "percent": 5, "version": "1.1.0",
         "baseline_version": "1.0.0", "granularity": "day", "min_count": 10, "sides": "too_high"},
        {"metric": "drift:age", "kind": "static", "upper": 0.2, "granularity": "day",
         "min_count": 30},
    ):  # fmt: skip
        post(client, rules, rule, 201)
    post(client, "/api/v1/models/demand/alert-rules",
         {"metric": "mae", "kind": "static", "upper": 12, "granularity": "day", "min_count": 20},
         201)  # fmt: skip
    post(client, "/api/v1/models/topic/alert-rules",
         {"metric": "macro_f1", "kind": "static", "lower": 0.5, "granularity": "day",
          "min_count": 15}, 201)  # fmt: skip


def build(client: APIClient, frozen) -> None:
    """Store the dataset, a day at a time, running the jobs after each day.

    `frozen` is the freezegun factory of the enclosing `freeze_time(START)`.
    """
    rng = np.random.default_rng(SEED)
    setup_models(client, rng)
    feeds = {"churn": Feed(), "demand": Feed(), "topic": Feed()}
    for day in range(DAYS):
        churn_day(rng, day, feeds["churn"])
        regression_day(rng, day, feeds["demand"])
        multiclass_day(rng, day, feeds["topic"])
    for day in range(DAYS):
        frozen.move_to(day_start(day) + timedelta(hours=1))
        if day == ROLLOUT_DAY:
            post(client, "/api/v1/models/churn/rollouts", {
                "version": "1.1.0", "traffic_percent": 20, "parameters": {"threshold": 0.5},
                "note": "canary",
            })  # fmt: skip
        if day == WIDEN_DAY:
            post(
                client,
                "/api/v1/models/churn/rollouts",
                {"version": "1.1.0", "traffic_percent": 50, "segments": ["web", "app"]},
            )
        if day == ROLLBACK_DAY:
            post(client, "/api/v1/models/churn/rollouts/rollback", {"note": "too early"}, 201)
        bad_predictions, bad_outcomes = churn_malformed(day)
        feeds["churn"].predictions += [(day_start(day + 1), r) for r in bad_predictions]
        feeds["churn"].outcomes += [(day_start(day + 1), r) for r in bad_outcomes]
        if (day + 1) % STEP_DAYS:
            continue  # the data of STEP_DAYS days is sent together: fewer, larger batches
        end = day_start(day + 1) + timedelta(minutes=30)
        frozen.move_to(end)
        step = day // STEP_DAYS
        for name, feed in feeds.items():
            predictions, outcomes = feed.due(end)
            # Outcomes first: those of this step's predictions wait for them (order-free), and
            # the jobs after the predictions join and aggregate them in one go.
            send(client, name, "outcomes", outcomes, ndjson=step == 3)
            send(client, name, "predictions", predictions, ndjson=step == 2)
        if day == 11:  # the same prediction id with another content: a conflict
            post(client, "/api/v1/models/churn/predictions", {"records": [{
                "prediction_id": "c-03-005", "timestamp": iso(day_start(3)),
                "model_version": "1.0.0", "prediction": 1, "score": 0.99,
            }]})  # fmt: skip
        run_jobs()
    frozen.move_to(NOW)
    for name, feed in feeds.items():
        predictions, outcomes = feed.due(NOW)
        send(client, name, "outcomes", outcomes)
        send(client, name, "predictions", predictions)
    run_jobs()
    # After the last run, so no notification is ever posted to it.
    post(client, "/api/v1/models/churn/webhooks", {"url": "https://hooks.example.com/canary"}, 201)
    quarantined = expect(
        client.get("/api/v1/models/churn/quarantine?kind=predictions&limit=1"), 200
    )
    first = quarantined.json()["results"][0]
    fixed = {"prediction_id": first["prediction_id"], "timestamp": iso(day_start(14)),
             "model_version": "1.0.0", "prediction": 1, "score": 0.7, "segment": "web"}  # fmt: skip
    post(client, f"/api/v1/models/churn/quarantine/{first['id']}/resubmit", fixed, 200)
    firing = expect(client.get("/api/v1/alerts?model=churn&state=firing"), 200).json()
    if firing:
        post(client, f"/api/v1/alerts/{firing[0]['id']}/acknowledge", {"by": "ana"}, 200)
    if len(firing) > 1:
        post(client, f"/api/v1/alerts/{firing[1]['id']}/silence",
             {"until": iso(NOW + timedelta(days=1)), "reason": "migration"}, 200)  # fmt: skip


# --- the questions ---------------------------------------------------------------------------


def url(path: str, **query) -> str:
    query = {k: v for k, v in query.items() if v is not None}
    return f"/api/v1/{path}" + (f"?{urlencode(query)}" if query else "")


def metric_names(client: APIClient, model: str) -> list[str]:
    """The names the model offers, read from the 400 answer to an unknown metric."""
    detail = client.get(url(f"models/{model}/metrics", metric="no_such_metric")).json()["detail"]
    names = detail.split("this model has: ", 1)[1].split(", ")
    return [*names, "unmatched_outcomes"]


FULL = {"start": iso(START), "end": iso(START + timedelta(days=DAYS))}
SHORT = {"start": iso(START + timedelta(days=13, hours=6)),
         "end": iso(START + timedelta(days=13, hours=12))}  # fmt: skip
SECOND_HALF = {"start": iso(START + timedelta(days=SHIFT_DAY)), "end": FULL["end"]}
MODELS = {
    "churn": {"versions": ("1.0.0", "1.1.0"), "segments": ("web", "app")},
    "demand": {"versions": ("2026.1", "2026.2"), "segments": ("north",)},
    "topic": {"versions": ("v1", "v2"), "segments": ("chat",)},
}
COMPARE = {
    "churn": ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "brier",
              "mean_score", "mean_prediction", "positive_rate", "label_coverage",
              "label_delay_p50", "missing_rate:age", "value:revenue", "drift:age", "drift:plan",
              "predictions"),
    "demand": ("mae", "rmse", "mape", "bias", "mean_prediction", "drift:temp", "drift:region"),
    "topic": ("accuracy", "macro_f1", "mean_score", "drift:length", "drift:channel"),
}  # fmt: skip
SENSITIVITY = {
    "churn": ("accuracy", "precision", "recall", "f1", "log_loss", "brier", "mean_score",
              "positive_rate", "label_coverage", "label_delay_p50", "missing_rate:age",
              "value:revenue", "roc_auc"),
    "demand": ("mae", "rmse", "mape", "bias", "mean_prediction"),
    "topic": ("accuracy", "macro_f1", "mean_score"),
}  # fmt: skip


def questions(client: APIClient) -> list[str]:
    """Every GET, in a fixed order (some paths take ids or names from earlier answers)."""
    paths = [url("models"), url("alerts"), url("alerts", state="all")]
    for state in ("pending", "firing", "resolved"):
        paths.append(url("alerts", state=state))
    for model, info in MODELS.items():
        base = f"models/{model}"
        v1, v2 = info["versions"]
        paths += [url(base), url("alerts", model=model), url("alerts", model=model, state="firing")]
        names = metric_names(client, model)
        paths.append(url(f"{base}/metrics", metric="no_such_metric"))
        paths.append(url(f"{base}/metrics", metric="roc_auc" if model != "churn" else "mae"))
        m = f"{base}/metrics"
        for name in names:
            paths.append(url(m, metric=name, granularity="day", **FULL))
            paths.append(url(m, metric=name, granularity="week", **FULL))
            paths.append(url(m, metric=name, granularity="hour", **SHORT))
            if name == "unmatched_outcomes":
                paths.append(url(m, metric=name, granularity="day", version=v1))  # a 400
                continue
            paths.append(url(m, metric=name, granularity="day", version=v2, **SECOND_HALF))
            paths.append(url(m, metric=name, granularity="week", segment=info["segments"][0],
                             **FULL))  # fmt: skip
        paths.append(url(m, metric=names[0]))  # the defaults: day windows over the whole history
        for segment in info["segments"]:
            paths.append(
                url(m, metric=COMPARE[model][0], granularity="day", segment=segment, **FULL)
            )
        paths.append(url(f"{base}/metrics", metric=names[0], granularity="day", segment="web",
                         version=v1, **SECOND_HALF))  # fmt: skip
        d = f"{base}/drift"
        paths += [
            url(d), url(d, **SECOND_HALF), url(d, version=v1), url(d, version=v2),
            url(d, version=v1, segment=info["segments"][0], **SECOND_HALF),
            url(d, reference_start=FULL["start"], reference_end=iso(START + timedelta(days=7)),
                **SECOND_HALF),
            url(d, version=v2, reference_start=iso(START + timedelta(days=NEW_VERSION_DAY)),
                reference_end=iso(START + timedelta(days=SHIFT_DAY)), **SECOND_HALF),
        ]  # fmt: skip
        c = f"{base}/compare"
        for metric in COMPARE[model]:
            paths.append(url(c, metric=metric, baseline=v1, candidate=v2))
        paths += [
            url(c, metric=COMPARE[model][0], baseline=v1, candidate=v2, **SECOND_HALF),
            url(c, metric=COMPARE[model][0], baseline=v1, candidate=v2, alpha="0.01",
                power="0.9", segment=info["segments"][0]),
            url(c, metric=COMPARE[model][1], baseline=v2, candidate=v1, **SECOND_HALF),
        ]  # fmt: skip
        s = f"{base}/sensitivity"
        for metric in SENSITIVITY[model]:
            paths.append(url(s, metric=metric))
            paths.append(url(s, metric=metric, granularity="hour", **SECOND_HALF))
        paths += [
            url(s, metric=SENSITIVITY[model][0], granularity="week", version=v1,
                segment=info["segments"][0], alpha="0.1", power="0.9"),
        ]  # fmt: skip
        rules = client.get(url(f"{base}/alert-rules")).json()
        paths.append(url(f"{base}/alert-rules"))
        for rule in rules:
            paths.append(url(f"{base}/alert-rules/{rule['id']}"))
            paths.append(url(f"{base}/alert-rules/{rule['id']}/evaluations"))
        q = f"{base}/quarantine"
        paths += [
            url(q), url(q, resolved="all"), url(q, resolved="true"), url(q, kind="outcomes"),
            url(q, kind="predictions", code="invalid", limit=5, offset=5),
            url(q, prediction_id="bad-03-0"),
            url(q, start=iso(START + timedelta(days=5)), end=iso(START + timedelta(days=8))),
            url(f"{base}/quarantine.csv"), url(f"{base}/quarantine.csv", kind="outcomes"),
            url(f"{base}/quarantine.ndjson"), url(f"{base}/quarantine.ndjson", resolved="all"),
        ]  # fmt: skip
        paths.append(url(f"{base}/versions"))
        for version in info["versions"]:
            paths.append(url(f"{base}/versions/{version}"))
        paths += [url(f"{base}/gates"), url(f"{base}/rollouts"), url(f"{base}/audit")]
        paths += [url(f"{base}/retrain-requests"), url(f"{base}/retrain-settings")]
        paths += [url(f"{base}/webhooks"), url(f"{base}/routing")]
        for segment in info["segments"]:
            for pid in ("abc", "p-1", "p-2", "p-3", "c-14-001"):
                paths.append(url(f"{base}/routing", segment=segment, prediction_id=pid))
            paths.append(url(f"{base}/routing", segment=segment))
    return paths


class Normaliser:
    """Replaces the volatile fields (VOLATILE); uuids numbered by first appearance."""

    def __init__(self):
        self.uuids: dict[str, str] = {}

    def uuid(self, text: str) -> str:
        return self.uuids.setdefault(text, f"uuid-{len(self.uuids) + 1}")

    def text(self, text: str) -> str:
        return UUID.sub(lambda m: self.uuid(m.group(0)), text)

    def json(self, value):
        if isinstance(value, list):
            return [self.json(v) for v in value]
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if key == "duration_ms":
                    item = None
                elif key == "notifications" and isinstance(item, list):
                    item = sorted(self.json(item), key=lambda n: json.dumps(n, sort_keys=True))
                elif key in ("batch_id", "run_id") and isinstance(item, str):
                    item = self.uuid(item)
                else:
                    item = self.json(item)
                out[key] = item
            return out
        return value


def answer(client: APIClient, path: str, normaliser: Normaliser) -> dict:
    response = client.get(path)
    content_type = response.get("Content-Type", "")
    if response.streaming:
        body = normaliser.text(b"".join(response.streaming_content).decode())
    elif "json" in content_type:
        body = normaliser.json(json.loads(response.content))
    else:
        body = response.content.decode()
    return {"path": path, "status": response.status_code, "body": body}


def answers(client: APIClient) -> list[dict]:
    normaliser = Normaliser()
    return [answer(client, path, normaliser) for path in questions(client)]


def check_finite(value, where: str = "") -> None:
    """Golden files hold plain JSON: a NaN or infinity would not compare equal to itself."""
    if isinstance(value, float) and not math.isfinite(value):
        raise AssertionError(f"non-finite number at {where}")
    if isinstance(value, list):
        for i, item in enumerate(value):
            check_finite(item, f"{where}[{i}]")
    if isinstance(value, dict):
        for key, item in value.items():
            check_finite(item, f"{where}.{key}")
