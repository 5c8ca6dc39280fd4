"""The timeline plot people read in the demo and the HTML report: nothing hides the points, no axis for an image,
and a plot with no face says so."""

from __future__ import annotations

import pytest

from detector.render import color_for, timeline_figure
from detector.report import FrameResult, Report

RULE = {"threshold": 0.6, "uncertain_band": [0.4, 0.7]}


def frames(*probabilities, step=1.0):
    return [FrameResult(i, i * step, p, p) for i, p in enumerate(probabilities)]


def report(media, frames):
    return Report("x", "fake", None, None, RULE["threshold"], RULE["uncertain_band"], media, frames, [], {}, {})


def legend_and_axes(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # the figure comes closed in pyplot: draw it on a canvas of our own
    canvas.draw()
    ax = fig.axes[0]
    renderer = canvas.get_renderer()
    return ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer), ax


def test_the_legend_never_covers_points_near_one():
    fig = timeline_figure(report({"kind": "video", "duration_s": 15.8}, frames(0.99, 0.98, 0.99, 1.0)))
    legend, axes, ax = legend_and_axes(fig)
    assert legend.y1 <= axes.y0  # under the plot, not inside it
    assert ax.get_title() == ""  # the page around the plot says "Timeline" once
    assert ax.get_xlim() == pytest.approx((0, 15.8))


def test_an_image_has_no_time_axis_and_no_face_says_so():
    image = timeline_figure(report({"kind": "image", "duration_s": None}, frames(0.35)))
    ax = image.axes[0]
    assert list(ax.get_xticks()) == [] and ax.get_xlim() == (-1, 1) and "single frame" in ax.get_xlabel()
    empty = timeline_figure(report({"kind": "image", "duration_s": None}, frames(None)))
    assert [t.get_text() for t in empty.axes[0].texts] == ["no face found: nothing to plot"]


def test_box_colours_follow_the_decision_rule():
    assert color_for(0.5, 0.6, [0.4, 0.7]) == color_for(0.65, 0.6, [0.4, 0.7])  # both uncertain
    assert color_for(0.7, 0.6, [0.4, 0.7]) != color_for(0.65, 0.6, [0.4, 0.7])  # the band's top is fake
    assert color_for(None, 0.6, [0.4, 0.7]) != color_for(0.1, 0.6, [0.4, 0.7])

