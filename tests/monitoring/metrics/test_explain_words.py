"""The explanation in words, against pandas on the raw rows of the planted data (see
test_explain): segment "app" grows from 30% to 60% of the traffic while it is less accurate
(mix), and region "south" loses accuracy in the current week (within). Each sentence must say
the part (mix or within) that is larger on the rows, with the rows' shares and values."""

from __future__ import annotations

import pytest

from monitoring.metrics.explain_words import change_sentence, driver_line, driver_sentence
from monitoring.metrics.registry import metric_get
from tests.monitoring.metrics import test_explain as explained
from tests.monitoring.metrics.test_explain import answer_of, drivers_of, pandas_effects

frame, planted = explained.frame, explained.planted

pytestmark = pytest.mark.django_db(transaction=True)
ACCURACY = metric_get("accuracy")


def expected_sentence(row, total_base: float, change: float, where: str) -> str:
    """What the page should say of one slice, from the pandas table's row."""
    mix_larger = abs(row.mix) > abs(row.within)
    size = row.mix if mix_larger else row.within
    lead = f"{abs(size) * 100:.1f} points" + (" of them" if size * change > 0 else " the other way")
    if mix_larger:
        grew = "grew" if row.w_cur > row.w_base else "shrank"
        return (
            f"{lead} from the mix: {where} {grew} from {row.w_base:.0%} to {row.w_cur:.0%} of the "
            f"window, and its Accuracy was {row.v_base:.2f} against {total_base:.2f} overall"
        )
    moved = "fell" if row.v_cur < row.v_base else "rose"
    return f"{lead} within {where}, where it {moved} from {row.v_base:.2f} to {row.v_cur:.2f}"


def test_the_sentences_say_mix_or_within_as_the_rows_do(planted, frame):
    answer = answer_of(planted)
    judged = frame[frame.outcome >= 0]
    base = judged[~judged.current]
    total_base = (base.prediction == base.outcome).mean()
    assert change_sentence(answer).startswith(
        f"Accuracy fell {abs(answer.change) * 100:.1f} points"
    )
    for column, dimension, words in (
        ("segment", "segment", "segment “{}”"),
        ("region", "feature:region", "region {}"),
    ):
        table = pandas_effects(frame, column)
        drivers = drivers_of(answer, dimension)
        for name in ("app", "south"):
            if name not in table.index:
                continue
            said = driver_sentence(ACCURACY, drivers[name], answer.change, answer.baseline.value)
            assert said == expected_sentence(
                table.loc[name], total_base, answer.change, words.format(name)
            )


def test_a_mix_driver_line_names_the_share_that_moved(planted, frame):
    answer = answer_of(planted)
    app = pandas_effects(frame, "segment").loc["app"]
    line = driver_line(ACCURACY, drivers_of(answer, "segment")["app"])
    if abs(app.mix) > abs(app.within):
        assert line.startswith(f"Mix of segment “app”: -{abs(app.mix) * 100:.1f} points")
        assert f"grew from {app.w_base:.0%} to {app.w_cur:.0%} of the window" in line
    else:
        assert line.startswith(f"Within segment “app”: -{abs(app.within) * 100:.1f} points")
