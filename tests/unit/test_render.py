"""The timeline plot people read in the demo and the HTML report: nothing hides the points, no axis for an image,
and a plot with no face says so."""

from __future__ import annotations

import pytest

from detector.render import color_for, timeline_figure
from detector.report import FrameResult, MediaInfo, ModelInfo, Report

RULE = {"threshold": 0.6, "uncertain_band": [0.4, 0.7]}


def frames(*probabilities, step=1.0):
    return [FrameResult(i, i * step, p, p) for i, p in enumerate(probabilities)]


def media(kind="image", duration_s=0.0):
    return MediaInfo(kind, "png", None, 64, 48, duration_s, None, 1, 0, 1000, frames_analyzed=1)


MODEL = ModelInfo("test", None, "mobilenet_v3_small_lstm")


def report(media, frames):
    return Report("x", "fake", None, None, RULE["threshold"], RULE["uncertain_band"], media, frames, [], MODEL, {})


def legend_and_axes(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # the figure comes closed in pyplot: draw it on a canvas of our own
    canvas.draw()
    ax = fig.axes[0]
    renderer = canvas.get_renderer()
    return ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer), ax


def test_the_legend_never_covers_points_near_one():
    fig = timeline_figure(report(media("video", 15.8), frames(0.99, 0.98, 0.99, 1.0)))
    legend, axes, ax = legend_and_axes(fig)
    assert legend.y1 <= axes.y0  # under the plot, not inside it
    assert ax.get_title() == ""  # the page around the plot says "Timeline" once
    assert ax.get_xlim() == pytest.approx((0, 15.8))


def test_an_image_has_no_time_axis_and_no_face_says_so():
    image = timeline_figure(report(media(), frames(0.35)))
    ax = image.axes[0]
    assert list(ax.get_xticks()) == [] and ax.get_xlim() == (-1, 1) and "single frame" in ax.get_xlabel()
    empty = timeline_figure(report(media(), frames(None)))
    assert [t.get_text() for t in empty.axes[0].texts] == ["no face found: nothing to plot"]


def test_box_colours_follow_the_decision_rule():
    assert color_for(0.5, 0.6, [0.4, 0.7]) == color_for(0.65, 0.6, [0.4, 0.7])  # both uncertain
    assert color_for(0.7, 0.6, [0.4, 0.7]) != color_for(0.65, 0.6, [0.4, 0.7])  # the band's top is fake
    assert color_for(None, 0.6, [0.4, 0.7]) != color_for(0.1, 0.6, [0.4, 0.7])



# ------------------------------------------------------------------------------------------------------ words


def words_of(verdict, probability, **extra):
    from detector.report import TrackResult

    tracks = [TrackResult(i, 1, probability or 0.0, [0, 0, 10, 10]) for i in range(extra.pop("faces", 1))]
    data = Report("x", verdict, probability, None, 0.31, [0.2165, 0.8543], media(), [], tracks, MODEL, {})
    for key, value in extra.items():
        setattr(data, key, value)
    return data


def test_every_verdict_is_said_with_the_fake_probability_in_percent_and_no_confidence():
    from detector.render import faces_words, rule_words, verdict_name, verdict_words

    uncertain = words_of("uncertain", 0.313, faces=2)
    assert verdict_name(uncertain) == "uncertain"
    assert verdict_words(uncertain) == "fake probability 31%: too close to call"
    assert faces_words(uncertain) == "2 faces (the most suspicious decides)"
    assert rule_words(0.31, [0.2165, 0.8543]) == "uncertain between 22% and 85%, otherwise fake from 31% up"
    real = verdict_words(words_of("real", 0.02))
    assert real.startswith("fake probability 2%, a screening score, not proof") and "confidence" not in real
    assert verdict_words(words_of("no_face", None)) == "no face was found, so nothing was judged"


def test_an_unfamiliar_face_and_an_untrained_model_are_named():
    from detector.render import verdict_name, verdict_words

    unfamiliar = words_of("uncertain", 0.02, unfamiliar=True)
    assert verdict_name(unfamiliar) == "uncertain (unfamiliar face)"
    assert "unlike the faces the model learned from" in verdict_words(unfamiliar)
    untrained = words_of("real", 0.1, model=ModelInfo("test", None, "mobilenet_v3_small_lstm", trained=False))
    assert verdict_name(untrained) == "real (untrained model)" and "means nothing" in verdict_words(untrained)


def test_a_report_of_schema_1_0_reads_as_familiar():
    from detector.report import SCHEMA_VERSION

    data = words_of("real", 0.1).to_dict()
    del data["unfamiliar"]
    for track in data["tracks"]:
        del track["unfamiliar"]
    old = Report.from_dict({**data, "schema_version": "1.0"})
    assert old.unfamiliar is False and old.tracks[0].unfamiliar is False and SCHEMA_VERSION == "1.1"


def test_the_timeline_draws_the_verdicts_score_and_names_the_frame_score():
    data = Report("x", "fake", 0.97, 0.97, 0.31, [0.2165, 0.8543], media("video", 3.0), frames(0.5, 0.6, 0.7), [], MODEL, {})
    fig = timeline_figure(data)
    labels = [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    assert "fake probability, the verdict's (97%)" in labels and "frame score" in labels
    assert "uncertain band (22%–85%)" in labels and "threshold (31%)" in labels
