"""The e-mail's sparkline PNG: a valid PNG of the asked size, the line where the values put
it, gaps where a window had no value, bounds dashed, the last value dotted."""

from __future__ import annotations

import numpy as np
import pytest

from common.sparkline import sparkline_png
from tests.monitoring.alerts.email_parts import (
    BOUND_RGB,
    LINE_RGB,
    dashed_rows,
    near,
    png_pixels,
)


def test_a_rising_line_goes_from_the_bottom_left_to_the_top_right():
    pixels = png_pixels(sparkline_png([0.0, 1.0, 2.0, 3.0], width=100, height=20, scale=2))
    assert pixels.shape == (40, 200, 3)
    rows, cols = np.nonzero(near(pixels, LINE_RGB))
    left, right = rows[cols < 30], rows[(cols > 150) & (cols < 180)]
    assert left.mean() > 30 and right.mean() < 15  # y grows downwards in a picture


def bluish(pixels: np.ndarray) -> np.ndarray:
    """Pixels the line's blue covers at least in part (its edges are blended with white)."""
    return pixels[..., 2].astype(int) - pixels[..., 0].astype(int) > 60


def test_a_window_without_value_leaves_a_gap():
    whole = png_pixels(sparkline_png([1.0, 1.0, 1.0, 1.0, 1.0], width=100, height=20, scale=1))
    gapped = png_pixels(sparkline_png([1.0, 1.0, None, 1.0, 1.0], width=100, height=20, scale=1))
    middle = slice(40, 60)  # around the third of five points, at x = 50
    assert bluish(whole[:, middle]).any(axis=0).all()
    assert not bluish(gapped[:, middle]).any()


def test_bounds_are_dashed_lines_at_their_values_and_the_last_point_is_dotted():
    pixels = png_pixels(sparkline_png([5.0, 5.0, 5.0], bounds=[0.0, 10.0], width=100, height=40))
    lower, upper = sorted(dashed_rows(pixels), reverse=True)
    assert lower > 60 and upper < 20  # 0 near the bottom, 10 near the top
    along = near(pixels[upper : upper + 3], BOUND_RGB).any(axis=0)
    assert 0.3 < along.mean() < 0.7  # dashed: about half drawn
    last_x = pixels.shape[1] - 8  # the last value's x, inside the right padding
    assert near(pixels[38:42, last_x - 2 : last_x + 2], BOUND_RGB).all()


def test_one_value_is_a_dot_and_no_value_is_refused():
    pixels = png_pixels(sparkline_png([3.0], width=60, height=20))
    assert near(pixels, BOUND_RGB).any()
    with pytest.raises(ValueError, match="at least one value"):
        sparkline_png([None, None])
