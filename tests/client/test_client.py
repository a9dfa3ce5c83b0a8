"""The Python client: its profile matches the server's histograms; its retries are safe."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pandas as pd
import pytest
from canary_client import CanaryClient, CanaryError, reference_profile

from accounts.services import api_key_create
from factory.manifest import profile_check
from monitoring.stats.histograms import numeric_reference
from tests.factory.conftest import LINEAGE


def test_reference_profile_matches_the_servers_histograms():
    rng = np.random.default_rng(7)
    age = rng.normal(40, 12, 5000).round(1)
    age[::50] = np.nan
    df = pd.DataFrame(
        {
            "age": age,
            "plan": rng.choice(["basic", "pro", None], 5000, p=[0.6, 0.3, 0.1]),
            "prediction": rng.integers(0, 2, 5000),
            "score": rng.uniform(0, 1, 5000),
        }
    )
    profile = reference_profile(df)
    assert profile_check(profile) is profile  # the server accepts its shape
    expected = numeric_reference(age)
    feature = profile["features"]["age"]
    assert feature["edges"] == expected.edges.tolist()
    assert feature["counts"] == expected.histogram.counts.tolist()
    assert feature["at_edges"] == expected.histogram.at_edges.tolist()
    assert np.allclose(feature["sums"], expected.histogram.sums)
    assert feature["missing"] == 100 == expected.histogram.missing
    assert feature["deciles"] == np.unique(np.nanquantile(age, np.arange(1, 10) / 10)).tolist()
    plan = profile["features"]["plan"]
    assert plan["counts"] == df["plan"].value_counts().to_dict()
    assert plan["missing"] == int(df["plan"].isna().sum())
    assert profile["prediction"]["counts"] == {
        str(k): int(v) for k, v in df["prediction"].value_counts().items()
    }
    assert sum(profile["score"]["counts"]) == 5000


class Flaky(BaseHTTPRequestHandler):
    """Answers the queued (status, headers) in order, then 200 with a receipt."""

    script: list = []
    hits: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).hits.append(len(body["records"]))
        status, headers = type(self).script.pop(0) if type(self).script else (200, {})
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        n = len(body["records"])
        receipt = {"received": n, "accepted": n, "duplicates": 0, "rejected": 0, "errors": []}
        self.wfile.write(json.dumps(receipt if status == 200 else {"detail": "no"}).encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky():
    Flaky.script, Flaky.hits = [], []
    server = HTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    waits: list[float] = []
    client = CanaryClient(
        f"http://127.0.0.1:{server.server_port}",
        "key",
        batch_size=3,
        backoff_s=0.5,
        max_retries=3,
        sleep=waits.append,
    )
    yield client, waits
    server.shutdown()


def test_5xx_and_429_are_retried_with_backoff_and_retry_after(flaky):
    client, waits = flaky
    Flaky.script = [(503, {}), (502, {}), (429, {"Retry-After": "7"})]
    receipt = client.log_predictions("churn", [{"prediction_id": str(i)} for i in range(7)])
    assert receipt["received"] == receipt["accepted"] == 7
    assert Flaky.hits == [3, 3, 3, 3, 3, 1]  # the first batch four times, then two more
    assert waits == [0.5, 1.0, 7.0]


def test_other_4xx_are_not_retried(flaky):
    client, waits = flaky
    Flaky.script = [(400, {})]
    with pytest.raises(CanaryError) as error:
        client.log_outcomes("churn", [{"prediction_id": "1"}])
    assert error.value.status == 400 and Flaky.hits == [1] and waits == []


def test_retries_give_up_after_max_retries(flaky):
    client, waits = flaky
    Flaky.script = [(500, {})] * 10
    with pytest.raises(CanaryError) as error:
        client.log_predictions("churn", [{"prediction_id": "1"}])
    assert error.value.status == 500 and len(Flaky.hits) == 4 and waits == [0.5, 1.0, 2.0]


def test_register_version_against_a_live_server(live_server, transactional_db):
    from factory.services import model_create

    model_create(name="churn", task="binary_classification", positive_class=1)
    client = CanaryClient(live_server.url, api_key_create(name="ci", scopes=["factory:write"]))
    assert client.register_version("churn", "1.0.0", LINEAGE)["has_lineage"] is True
    assert client.register_version("churn", "1.0.0", LINEAGE)["version"] == "1.0.0"
    with pytest.raises(CanaryError) as error:
        client.register_version("churn", "1.0.0", {**LINEAGE, "code_version": "other"})
    assert error.value.status == 409 and "immutable" in error.value.problem["detail"]


def test_multiclass_scores_from_predict_proba_reach_the_server(live_server, transactional_db):
    # given a scikit-learn classifier with integer classes and its probabilities
    from canary_client import class_scores
    from sklearn.linear_model import LogisticRegression

    from monitoring.models import Prediction

    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 2))
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)  # classes 0, 1, 2
    classifier = LogisticRegression().fit(x, y)
    probabilities = classifier.predict_proba(x[:3]).astype(np.float32)
    key = api_key_create(name="ci", scopes=["factory:write", "predictions:write"])
    client = CanaryClient(live_server.url, key)
    client.request("POST", "/api/v1/models", {"name": "tier", "task": "multiclass_classification"})

    # when the client logs them as each prediction's scores
    records = [
        {
            "prediction_id": f"t-{i}",
            "timestamp": "2026-03-02T00:00:00Z",
            "model_version": "1",
            "prediction": classifier.classes_[row.argmax()].item(),
            "scores": class_scores(classifier.classes_, row),
        }
        for i, row in enumerate(probabilities)
    ]
    receipt = client.log_predictions("tier", records)

    # then the server keeps them under the classes' text, as the prediction is
    assert receipt["accepted"] == 3, receipt
    stored = Prediction.objects.get(prediction_id="t-0")
    assert set(stored.scores) == {"0", "1", "2"}
    assert stored.scores[stored.prediction] == pytest.approx(float(probabilities[0].max()))


def test_class_scores_refuse_classes_and_probabilities_of_other_lengths():
    from canary_client import class_scores

    with pytest.raises(ValueError, match="3 classes but 2 probabilities"):
        class_scores(["a", "b", "c"], [0.5, 0.5])
