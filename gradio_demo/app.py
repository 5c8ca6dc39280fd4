"""The Gradio demo: `python -m gradio_demo.app` (or `deepfake-demo`; in the Hugging Face Space, the launcher
`app.py`) serves it on 127.0.0.1:$GRADIO_SERVER_PORT (default 7860; a Space sets GRADIO_SERVER_NAME=0.0.0.0 itself).

Only widgets and their wiring live here: `analysis.py` does the work through the core. Two named API endpoints:
`analyze_file` (an image or video -> Report JSON, verdict, summary, timeline, key frames, downloads) and
`analyze_links` (links, one per line -> a table with one row per link, the Reports, and the first link's details).
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

import gradio as gr

from detector import DetectorError
from detector.render import CAVEAT, READING_GUIDE
from gradio_demo.analysis import LINK_COLUMNS, DemoAnalyzer
from gradio_demo.examples import example_files
from gradio_demo.settings import DemoSettings

log = logging.getLogger("gradio_demo")

INTRO = f"""# Deepfake checker
Upload an image or a video, or paste links to posts or media, and see whether the faces in it look **real** or
**manipulated**: a verdict with a calibrated probability, the fake probability of every analysed frame over time,
and the key frames with the faces found and where the model looked (Grad-CAM).
Two views score each face track (up to two per video): a fast MobileNetV3-LSTM and an accurate one on CLIP features;
`default+accurate` calls a face fake only when both say so. {CAVEAT}"""

PRIVACY = """Uploads and fetched media are analysed on this machine and not kept; the results stay for at most an
hour. Links are fetched with the same rules as the checker's server: public http(s) addresses only, size and
duration limits."""


def build_demo(settings: DemoSettings | None = None, analyzer: DemoAnalyzer | None = None) -> gr.Blocks:
    """The whole app, not launched. No model is loaded here (each loads on first use unless the analyzer's cache
    already holds it); the synthetic example picture is written into the analyzer's work folder."""
    settings = settings or DemoSettings.from_env()
    analyzer = analyzer or DemoAnalyzer(settings)
    handlers = _Handlers.of(FailureNotes(), analyzer)
    with gr.Blocks(title="Deepfake checker", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=2):
                inputs = _input_column(settings, analyzer)
            with gr.Column(scale=3):
                table_output, verdict_output, summary_output, timeline_output = _answer_column()
        gallery_output = gr.Gallery(
            label="Key frames", columns=4, fit_columns=False, height="auto", object_fit="contain", elem_id="key-frames"
        )  # fit_columns=False: one key frame (an image) keeps a column's width instead of the whole row
        downloads_output = gr.File(label="Downloads", file_count="multiple")
        with gr.Accordion("Report JSON", open=False):
            report_output = gr.JSON(label="Report")
        outputs = _Outputs(
            table_output, verdict_output, summary_output, timeline_output, gallery_output, downloads_output, report_output
        )
        _wire(inputs, outputs, handlers)
    return demo


@dataclass(frozen=True)
class _Inputs:
    """The widgets a visitor fills in and the buttons that start an analysis."""

    file: gr.File
    file_button: gr.Button
    links: gr.Textbox
    links_button: gr.Button
    model: gr.Dropdown
    frames: gr.Slider


@dataclass(frozen=True)
class _Outputs:
    """The widgets an analysis fills."""

    table: gr.Dataframe
    verdict: gr.Label
    summary: gr.Markdown
    timeline: gr.Plot
    gallery: gr.Gallery
    downloads: gr.File
    report: gr.JSON


@dataclass(frozen=True)
class _Handlers:
    """The event handlers: the two analyses (the named API endpoints) and the step that shows a failure."""

    analyze_file: Callable
    analyze_links: Callable
    show_failure: Callable

    @classmethod
    def of(cls, failures: FailureNotes, analyzer: DemoAnalyzer) -> _Handlers:
        def analyze_file(file: str | None, model: str, frames: int, request: gr.Request, progress=gr.Progress()):
            result = _answer(failures, request, analyzer.analyze_file, file, model, frames, progress)
            return result.report.to_dict(), result.verdict, result.summary, result.timeline, result.gallery, result.downloads

        def analyze_links(links: str, model: str, frames: int, request: gr.Request, progress=gr.Progress()):
            result = _answer(failures, request, analyzer.analyze_links, links, model, frames, progress)
            if result.detail is None and len(result.rows) == 1:
                failures.fail(request, "This link cannot be analysed", result.errors[0].message)
            table = {"headers": LINK_COLUMNS, "data": result.rows}
            detail = result.detail
            if detail is None:
                gr.Warning("None of the links could be analysed: the Links table says why.")
                summary = "**None of the links could be analysed**: the Links table above says why."
                return table, result.reports, None, summary, None, [], result.downloads
            return table, result.reports, detail.verdict, detail.summary, detail.timeline, detail.gallery, result.downloads

        def show_failure(request: gr.Request):
            """After a failed analysis: every output emptied, the summary saying why (a toast fades; this stays)."""
            title, message = failures.pop(request)
            return None, None, f"### ⚠️ {title}\n\n{message}", None, [], None, gr.Dataframe(value=None, visible=False)

        return cls(analyze_file, analyze_links, show_failure)


def _input_column(settings: DemoSettings, analyzer: DemoAnalyzer) -> _Inputs:
    """The left column, built inside the caller's gr.Column: the upload and links tabs, the settings, the privacy note."""
    with gr.Tabs():
        with gr.Tab("Upload a file"):
            # No file_types: media is recognised by its content, not by its name, and anything else
            # gets the core's message saying what it is not.
            file_input = gr.File(label="Image or video", type="filepath", elem_id="upload")
            file_button = gr.Button("Analyze file", variant="primary")
            files = example_files(settings, analyzer.work_dir)
            gr.Examples([[str(path)] for path in files], inputs=[file_input], label="Examples: pick one, then Analyze")
        with gr.Tab("Paste links"):
            links_input = gr.Textbox(
                label="Links, one per line",
                lines=4,
                max_lines=settings.max_links + 2,
                placeholder="https://example.com/post/123\nhttps://example.org/video.mp4",
            )
            links_button = gr.Button("Analyze links", variant="primary")
            if settings.example_links:
                gr.Examples([[link] for link in settings.example_links], inputs=[links_input], label="Example link")
    with gr.Accordion("Settings", open=True):
        model_input = gr.Dropdown(
            choices=analyzer.detectors.names,
            value=settings.model,
            allow_custom_value=settings.allow_hub_models,
            label="Model",
            info="default+accurate: both embedded views; default: the fast view alone; accurate: the CLIP view"
            + (", or type a Hub id org/name[@revision]" if settings.allow_hub_models else ""),
        )
        frames_input = gr.Slider(
            1, settings.max_frames, value=settings.frames, step=1, label="Key frames per video", elem_id="frames"
        )
    gr.Markdown(PRIVACY)
    return _Inputs(file_input, file_button, links_input, links_button, model_input, frames_input)


def _answer_column() -> tuple[gr.Dataframe, gr.Label, gr.Markdown, gr.Plot]:
    """The right column, built inside the caller's gr.Column: the links' table, verdict, summary, timeline, guide."""
    # The links' table comes first on the right, where the answer appears: an error in it is read at
    # once, not found below the key frames. Few columns with set widths: a failed link's empty cells
    # no longer squeeze the headers to a letter per line, and its message wraps instead of being cut.
    table_output = gr.Dataframe(
        headers=LINK_COLUMNS,
        datatype=["str", "str", "str", "number", "str"],
        column_widths=["28%", "12%", "11%", "8%", "41%"],
        label="Links",
        interactive=False,
        wrap=True,
        max_height=640,
        elem_id="links-table",
        visible=False,  # shown by analyze_links, hidden again by a file's analysis
    )
    verdict_output = gr.Label(label="Verdict", elem_id="verdict")
    summary_output = gr.Markdown(label="Summary", elem_id="summary")
    timeline_output = gr.Plot(label="Timeline", elem_id="timeline")
    gr.Markdown(READING_GUIDE)
    return table_output, verdict_output, summary_output, timeline_output


def _wire(inputs: _Inputs, outputs: _Outputs, handlers: _Handlers) -> None:
    """The buttons' events, inside the caller's gr.Blocks."""
    settings_inputs = [inputs.model, inputs.frames]
    details = [outputs.verdict, outputs.summary, outputs.timeline, outputs.gallery, outputs.downloads]
    every_output = [outputs.report, *details, outputs.table]
    # Every analysis starts by emptying every output (nothing of the previous answer may stay beside a new
    # error), and a failure fills them with the error; the named API endpoints are the analyses themselves.
    inputs.file_button.click(
        clear_outputs, None, every_output, api_visibility="private", queue=False
    ).then(
        handlers.analyze_file,
        [inputs.file, *settings_inputs],
        [outputs.report, *details],
        api_name="analyze_file",
        concurrency_id="analysis",
        concurrency_limit=1,
    ).failure(handlers.show_failure, None, every_output, api_visibility="private", queue=False)
    links = inputs.links_button.click(
        clear_outputs, None, every_output, api_visibility="private", queue=False
    ).then(
        handlers.analyze_links,
        [inputs.links, *settings_inputs],
        [outputs.table, outputs.report, *details],
        api_name="analyze_links",
        concurrency_id="analysis",
        concurrency_limit=1,
    )
    links.success(
        lambda: gr.Dataframe(visible=True), None, outputs.table, api_visibility="private", queue=False, js=SHOW_TABLE
    )
    links.failure(handlers.show_failure, None, every_output, api_visibility="private", queue=False)


def clear_outputs():
    """Every output empty and the links' table hidden: the start of each analysis."""
    return None, None, "", None, [], None, gr.Dataframe(value=None, visible=False)


# Brings the links' table into view once shown (on a narrow screen the columns stack and it may lie below the fold).
SHOW_TABLE = """() => { setTimeout(() => document.getElementById("links-table")?.scrollIntoView({block: "nearest"}), 300); }"""


class FailureNotes:
    """Why the last analysis of each browser session failed. A raised gr.Error updates no output, so the step that
    runs after a failure (`show_failure`) reads the message here. Bounded: an API client that never runs that
    step leaves its note until newer ones push it out."""

    def __init__(self, limit: int = 256):
        self._notes: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._lock = threading.Lock()
        self._limit = limit

    def fail(self, request: gr.Request | None, title: str, message: str) -> NoReturn:
        """Note why, then raise the gr.Error that tells the visitor (a toast) and API clients (an AppError)."""
        with self._lock:
            self._notes[_session(request)] = (title, message)
            while len(self._notes) > self._limit:
                self._notes.popitem(last=False)
        raise gr.Error(message, title=title, print_exception=False)

    def pop(self, request: gr.Request | None) -> tuple[str, str]:
        with self._lock:
            return self._notes.pop(_session(request), ("Cannot analyse this", "the analysis failed"))


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or ""


def _answer(failures: FailureNotes, request: gr.Request, work, *args):
    """Run one analysis; every failure reaches the visitor as a message, never as a traceback."""
    *values, progress = args
    try:
        return work(*values, progress=lambda fraction, text: progress(fraction, desc=text))
    except DetectorError as exc:
        failures.fail(request, "Cannot analyse this", exc.message)
    except Exception:
        log.exception("the analysis failed")
        failures.fail(request, "Something went wrong", "the analysis failed unexpectedly; the details are in the app's log")


def main(argv: list[str] | None = None) -> None:
    """Serve the demo until Ctrl-C or SIGTERM; one line when it is ready (`--verbose`: the details, as logs)."""
    import argparse

    parser = argparse.ArgumentParser(prog="deepfake-demo", description="Serve the Gradio demo on 127.0.0.1.")
    parser.add_argument("--verbose", action="store_true", help="log what loads and every request (default: one line)")
    verbose = parser.parse_args(argv).verbose
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from detector.env import set_threads

    settings = DemoSettings.from_env()
    set_threads(settings.threads or None)
    analyzer = DemoAnalyzer(settings)
    atexit.register(analyzer.close)
    # A Space (or a supervisor, or scripts/run) stops the app with SIGTERM, a person with Ctrl-C: either ends the wait
    # below, and the app closes in order (the result folder removed), with no traceback.
    stop = threading.Event()
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: stop.set())
    try:  # load the default model now rather than on the first visitor's click
        analyzer.detectors.get(settings.model)
    except DetectorError as exc:
        log.error("the model %s could not be loaded: %s", settings.model, exc.message)
    demo = build_demo(settings, analyzer)
    demo.queue(default_concurrency_limit=1).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        max_file_size=settings.max_upload_bytes,
        prevent_thread_lock=True,
        quiet=not verbose,
    )
    print(f"deepfake demo serving on {demo.local_url} (model {settings.model})", flush=True)
    try:
        stop.wait()
    finally:
        demo.close(verbose=verbose)
        analyzer.close()


if __name__ == "__main__":
    main()
