"""The one path every shell takes from a file to a Report and its artefacts (detector/pipeline.py): the pictures and
their names, the HTML report from one template, the frame-count rule and the progress table."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from detector.pipeline import STAGES, BadOptionError, Pipeline, frame_count, pictures, report_html, report_json, stage_fraction
from detector.report import PROGRESS_STAGES, Report


@pytest.fixture(scope="module")
def video_analysis(detector, fake_video):
    pipeline = Pipeline()
    try:
        return pipeline.run(detector, fake_video, explain=True, frames=4)
    finally:
        pipeline.close()


def test_the_pictures_of_a_video_are_named_as_the_server_serves_them(video_analysis):
    files = pictures(video_analysis, max_side=320)
    names = [artefact.name for artefact in files]
    assert names[0] == "timeline.png" and names.count("timeline.png") == 1
    assert [n for n in names if n.startswith("frame_")] == [f"frame_{p:02d}.jpg" for p in range(4)]
    heatmaps = [a for a in files if a.kind == "heatmap"]
    assert heatmaps and all(a.name == f"heatmap_{a.position:02d}.jpg" for a in heatmaps)
    for artefact in files:
        picture = Image.open(io.BytesIO(artefact.data))
        assert max(picture.size) <= (320 if artefact.kind != "timeline" else 10_000)
        assert artefact.entry()["name"] == artefact.name
    # What a download adds: the raw heatmaps at the frame's size and the timeline as data.
    raw = {a.name: a for a in pictures(video_analysis, max_side=None, raw=True)}
    media = video_analysis.report.media
    first = next(a for a in raw.values() if a.kind == "heatmap_raw")
    assert Image.open(io.BytesIO(first.data)).size == (media.width, media.height)
    assert raw["timeline.csv"].data.decode().count("\n") == 1 + len(video_analysis.report.frames)


def test_report_json_is_the_report(video_analysis):
    stored = report_json(video_analysis.report)
    assert stored.name == "report.json" and Report.from_dict(json.loads(stored.data)) == video_analysis.report


def test_one_template_links_what_exists_and_nothing_else(video_analysis):
    report = video_analysis.report
    names = {a.name for a in pictures(video_analysis, max_side=320)} | {"report.json"}
    page = report_html(report, lambda name: name if name in names else None)
    assert 'src="frame_00.jpg"' in page and 'src="timeline.png"' in page and 'href="report.json"' in page
    assert report.source in page and "fake probability" in page and f"schema {report.schema_version}" in page
    bare = report_html(report, lambda name: None, created_at="2026-12-03 12:00")
    assert "<img" not in bare and "analysed 2026-12-03 12:00" in bare
    hostile = Report.from_dict({**report.to_dict(), "source": "<script>alert(1)</script>"})
    assert "<script>alert" not in report_html(hostile, lambda name: None)


@pytest.mark.parametrize("given, count", [(None, 0), ("", 0), (8, 8), (8.0, 8), ("8", 8), (" 12 ", 12), ("+3", 3)])
def test_a_frame_count_is_a_whole_number_in_range(given, count):
    assert frame_count(given, 32) == count


@pytest.mark.parametrize("given", [1.5, "1.5", True, "many", "٣", "1_0", 0, 33, -1, [8]])
def test_a_frame_count_out_of_its_rule_is_refused(given):
    with pytest.raises(BadOptionError) as refused:
        frame_count(given, 32)
    assert refused.value.code == "bad_option" and "frames must be" in refused.value.message


def test_every_stage_has_its_place_on_one_bar():
    assert set(PROGRESS_STAGES) <= set(STAGES)
    for fetching in (True, False):
        order = ["fetch", *PROGRESS_STAGES[1:], "render"] if fetching else [*PROGRESS_STAGES[1:], "render"]
        points = [stage_fraction(stage, done, 4, fetching) for stage in order for done in (0, 2, 4)]
        assert points == sorted(points) and points[-1] == 1.0 and points[0] == 0.0
