"""The app's batch tab: score an uploaded file with score-csv's own code, within bounds a public app can afford.

A visitor never sees a server path (the scratch folder, the model's install folder, Gradio's upload cache):
messages name the upload by its own file name. The scratch folders go when the app stops.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import gradio as gr
import pandas as pd

from ..batch.config import BatchConfig, default_output
from ..batch.formats import FORMATS, format_of
from ..batch.lines import UndecodableInput
from ..batch.score_file import score_file
from ..batch.tables import TableReader
from ..card import short_model_name
from ..columns import TEXT_COLUMNS, detect_column, text_like
from ..errors import UserError
from ..labels import probability_columns
from ..scorer import Scorer
from ..scoring import Summary, result_keys, result_names
from ..text import LABELS
from .colors import class_colors

log = logging.getLogger(__name__)

MAX_UPLOAD_MB = 50
# A compressed Parquet file can hold millions of rows within the byte cap: rows are capped too, and
# counted before any row is scored (Parquet's from its metadata), so a refusal costs no scoring. 10,000
# rows take a few minutes on a 2-core Space, where a file holds the app's only batch slot.
MAX_UPLOAD_ROWS = 10_000
PREVIEW_ROWS = 20
PREVIEW_CHARS = 120
UNCERTAIN_BAR, NOT_SCORED_BAR = "of which uncertain", "not scored"
# Rows set aside: two greys (the uncertain ones darker, being scored), never a label's colour.
UNCERTAIN_GREY, NOT_SCORED_GREY = "#6b7280", "#d1d5db"
# Gradio's table breaks its cells anywhere (word-break: break-word), cutting headers ("confidenc e") on a
# phone: wrap between words, and inside one only when a single word is wider than the column.
BATCH_CSS = " #preview th, #preview th *, #preview td, #preview td * { word-break: normal; overflow-wrap: break-word; }"
_SCRATCH_PREFIX = "sentiment-app-"
# An absolute path that no known name covered (a library's message): only its last part is shown.
_PATH = re.compile(r"(?<![\w.~])(?:/[^\s/'\"():;,]+)+/?")
# Advice for the command line (`--encoding`, `--on-bad-lines …`) that a web visitor cannot follow: in
# parentheses first, then a clause after a semicolon.
_CLI_HINTS = (re.compile(r"\s*\([^()]*--[a-z][^()]*\)"), re.compile(r";[^;]*--[a-z][^;]*"))


def _own_prefix() -> str:
    # The process id in the name: at exit this process removes its own folders, never another app's.
    return f"{_SCRATCH_PREFIX}{os.getpid()}-"


def _clean_old_scratch(max_age_s: float = 3600) -> None:
    """Folders left by apps that did not stop cleanly (killed, crashed)."""
    for folder in Path(tempfile.gettempdir()).glob(_SCRATCH_PREFIX + "*"):
        try:
            if time.time() - folder.stat().st_mtime > max_age_s:
                shutil.rmtree(folder, ignore_errors=True)
        except FileNotFoundError:
            pass  # another app removed it meanwhile


def new_scratch() -> Path:
    """A fresh folder for one scored file; removed when the app stops (`remove_scratch`)."""
    _clean_old_scratch()
    if not getattr(new_scratch, "registered", False):
        atexit.register(remove_scratch)
        new_scratch.registered = True
    return Path(tempfile.mkdtemp(prefix=_own_prefix()))


def remove_scratch() -> None:
    """Remove every scratch folder this process made (registered with atexit; ui.launch turns SIGTERM into
    a normal exit so that it runs then too)."""
    for folder in Path(tempfile.gettempdir()).glob(_own_prefix() + "*"):
        shutil.rmtree(folder, ignore_errors=True)


def for_visitor(message: str, names: dict[str, str]) -> str:
    """`message` without server paths (each path in `names` becomes its public name) or command-line advice."""
    for path in sorted(names, key=len, reverse=True):
        message = message.replace(path, names[path])
    message = _PATH.sub(lambda match: Path(match.group()).name or "…", message)
    for hint in _CLI_HINTS:
        message = hint.sub("", message)
    return message


def text_column_choice(upload: str) -> tuple[list[str], str | None]:
    """The file's columns and the one that looks like reviews, or None: never a guess.

    A file with a header but no rows is refused (UserError): there is nothing to score.
    """
    reader = TableReader(upload, format_of(upload), chunk_rows=50, on_bad_lines="skip")
    first = next(iter(reader), None)
    if first is None:
        raise UserError(_no_rows(Path(upload).name))
    columns = [str(c) for c in first.columns]
    try:
        chosen = detect_column(first, TEXT_COLUMNS, "text", None)
    except UserError:
        return columns, None
    return columns, chosen if text_like(first[chosen]) else None


def detect_text_column(upload: str | None) -> gr.Dropdown:
    """Columns of an uploaded file for the dropdown, the detected text column selected."""
    if not upload:
        return gr.Dropdown(choices=[], value=None)
    try:
        columns, chosen = text_column_choice(upload)
    except UndecodableInput as error:
        gr.Warning(_undecodable(error, Path(upload).name))
        return gr.Dropdown(choices=[], value=None)
    except UserError as error:
        gr.Warning(for_visitor(str(error), {upload: Path(upload).name}))
        return gr.Dropdown(choices=[], value=None)
    if chosen is None:
        gr.Warning("No column looks like review text: pick the text column before scoring.")
    return gr.Dropdown(choices=columns, value=chosen)


def _no_rows(name: str) -> str:
    return f"{name} has a header but no rows: there are no reviews to score."


def _undecodable(error: UndecodableInput, name: str) -> str:
    if error.offset is None:
        return f"Could not tell the text encoding of {name}: save it as UTF-8 and upload it again."
    if error.utf8_elsewhere:  # one stray byte: re-reading it all in another encoding would garble the rest
        return (
            f"{name} is UTF-8 text, but line {error.line:,} has a character that is not valid UTF-8 (saved in "
            "another encoding): fix that line and upload the file again."
        )
    return (
        f"{name} is not valid {error.encoding} text at line {error.line:,} (the encoding its start shows): "
        "save it as UTF-8 and upload it again."
    )


def _count_rows(upload: str, name: str) -> int:
    """The rows the scored file will have, refused beyond MAX_UPLOAD_ROWS (or with none) before any is scored."""
    rows = TableReader(upload, format_of(upload), chunk_rows=5000, on_bad_lines="report").count_rows(MAX_UPLOAD_ROWS)
    if rows > MAX_UPLOAD_ROWS:
        raise gr.Error(
            f"{name} has more than {MAX_UPLOAD_ROWS:,} rows; the app scores up to {MAX_UPLOAD_ROWS:,}. "
            "The `score-csv` command scores files of any size on your own machine."
        )
    if rows == 0:
        raise gr.Error(_no_rows(name))
    return rows


def score_upload(
    scorer: Scorer,
    upload: str | None,
    column: str | None,
    progress=gr.Progress(),  # noqa: B008
    min_confidence: float | None = None,
) -> tuple[dict, dict, str, str]:
    """Score an uploaded file with the batch scorer's own code: preview, chart, download and summary.

    The progress bar follows the rows scored (counted first, which also enforces MAX_UPLOAD_ROWS).
    """
    if not upload:
        raise gr.Error("Upload a CSV, TSV, Parquet or JSONL file first.")
    if not column:
        raise gr.Error("Pick the column that holds the review text first.")
    size_mb = os.path.getsize(upload) / 1e6
    if size_mb > MAX_UPLOAD_MB:
        raise gr.Error(
            f"The file is {size_mb:.0f} MB; the app takes up to {MAX_UPLOAD_MB} MB. Use `score-csv` for larger files."
        )
    output = new_scratch() / Path(default_output(upload)).name
    try:
        summary = _score(scorer, upload, column, progress, min_confidence, output)
    except BaseException:
        shutil.rmtree(output.parent, ignore_errors=True)  # nothing to serve: no need to keep it until exit
        raise
    summary = replace(summary, model=_plain_name(scorer), output=output.name)  # names, not server paths
    scored = next(iter(TableReader(str(output), format_of(str(output)), PREVIEW_ROWS, encoding="utf-8")), None)
    return (
        gr.update(value=preview_frame(scored, column, scorer.labels), visible=True),
        distribution(summary, scorer.labels),
        str(output),
        summary.text(),
    )


def _plain_name(scorer: Scorer) -> str:
    """The model as a visitor knows it ("all-MiniLM-L6-v2 (int8)"), not its install folder's name."""
    base = scorer.manifest.get("base_model")
    if not base:
        return scorer.folder.name
    quantization = scorer.manifest.get("quantization", "none")
    return short_model_name(base) + (f" ({quantization})" if quantization != "none" else "")


def _score(scorer: Scorer, upload: str, column: str, progress, min_confidence: float | None, output: Path) -> Summary:
    """score_file on the upload, its errors as messages for a visitor (no paths, no command-line advice)."""
    name = Path(upload).name
    names = {upload: name, str(output): output.name, str(output.parent): "scratch folder"}
    names[str(scorer.folder)] = scorer.folder.name
    try:
        total = _count_rows(upload, name)
        progress((0, total), desc="scoring", unit="rows")
        # About 50 updates of the bar whatever the size; a chunk is also the unit of writing.
        cfg = BatchConfig(
            input=upload,
            output=str(output),
            text_column=column,
            on_bad_lines="report",
            chunk_rows=min(2000, max(50, total // 50)),
            min_confidence=min_confidence or None,  # the slider's 0 means no threshold
        )
        return score_file(cfg, scorer, progress=lambda rows: _progress(progress, rows, total, name))
    except UndecodableInput as error:
        raise gr.Error(_undecodable(error, name)) from None
    except UserError as error:
        raise gr.Error(for_visitor(str(error), names)) from None
    except gr.Error:
        raise
    except Exception:
        log.exception("scoring an upload failed")
        raise gr.Error(f"Could not score {name}: an unexpected error, logged on the server.") from None


def _progress(progress, rows: int, total: int, name: str) -> None:
    """Move the bar after a chunk, or stop when the visitor has left: nobody would get the file, and the
    app's one batch slot would stay taken for nothing (score_file removes the partial output)."""
    if client_left():
        log.info("stopped scoring %s after %d rows: the visitor left the page", name, rows)
        raise gr.Error(f"Stopped scoring {name}: the page was closed or reloaded.")
    progress((rows, total), desc="scoring", unit="rows")


def client_left() -> bool:
    """Whether the visitor whose event runs in this thread closed or reloaded the page.

    Gradio 6.17 marks such an event not alive (its page's event stream closed) but lets a function already
    running go on; nothing public tells the function, so this reads Gradio's own records (the event of this
    context among the queue's active jobs), and answers False where they are not as expected.
    """
    try:
        from gradio.context import LocalContext

        blocks, event_id = LocalContext.blocks.get(None), LocalContext.event_id.get(None)
        if blocks is None or event_id is None:
            return False  # not run by Gradio's queue (a test, a script)
        events = [event for job in blocks._queue.active_jobs if job for event in job]
        return any(event._id == event_id and not event.alive for event in events)
    except (AttributeError, ImportError, TypeError):
        return False


def preview_frame(scored: pd.DataFrame | None, text_column: str, labels: tuple[str, ...] = LABELS) -> pd.DataFrame:
    """The first rows for the screen: label, confidence and status first, the review cut to PREVIEW_CHARS,
    then (more than two labels) each class's probability, then the file's other columns.

    The downloaded file is untouched; `score` (the positive label's probability) is left to it.
    """
    if scored is None:
        return pd.DataFrame()
    source = [str(c) for c in scored.columns[: -len(result_keys(labels))]]  # ours are appended last
    ours = result_names(source, labels)
    text = scored[text_column].map(
        lambda v: v[:PREVIEW_CHARS] + "…" if isinstance(v, str) and len(v) > PREVIEW_CHARS else v
    )
    classes = [_three_decimals(scored[ours[key]]) for key in probability_columns(labels)] if len(labels) > 2 else []
    rest = [c for c in source if c != text_column]
    return pd.concat(
        [
            scored[ours["label"]],
            _three_decimals(scored[ours["confidence"]]),
            scored[ours["status"]],
            text.rename(text_column),
            *classes,
            scored[rest],
        ],
        axis=1,
    )


def _three_decimals(column: pd.Series) -> pd.Series:
    """Three decimals on screen (the download keeps full precision); a row not scored shows nothing.
    (The scored file is read back as text: a CSV's numbers are strings.)"""
    return pd.to_numeric(column, errors="coerce").map(lambda v: "" if pd.isna(v) else f"{v:.3f}")


def bar_colors(labels: tuple[str, ...]) -> dict[str, str]:
    """Each label's bar in its colour (`colors.class_colors`); rows set aside in greys."""
    return {**class_colors(labels), UNCERTAIN_BAR: UNCERTAIN_GREY, NOT_SCORED_BAR: NOT_SCORED_GREY}


def distribution(summary: Summary, labels: tuple[str, ...]) -> dict:
    """The chart's update: rows per label, then the uncertain (with a threshold) and the unscored rows.

    An update, not a new BarPlot: Gradio 6.17's page fails to draw a plot returned whole ("structuredClone …
    could not be cloned"), as it does with a list for `sort`.
    """
    counts = {label: summary.labels.get(label, 0) for label in labels}
    if summary.min_confidence is not None:
        counts[UNCERTAIN_BAR] = summary.uncertain
    counts[NOT_SCORED_BAR] = summary.skipped
    chart = pd.DataFrame({"label": list(counts), "reviews": list(counts.values())})
    top = int(max(counts.values()) * 1.1) + 1
    return gr.update(value=chart, visible=True, color_map=bar_colors(labels), y_lim=[0, top])


def batch_tab(scorer: Scorer, min_confidence: float) -> None:
    """The tab's components and events; neither event is an API endpoint (the API is /predict and /analyze)."""
    upload = gr.File(
        label=f"Reviews file (CSV, TSV, Parquet, JSON Lines or JSON; up to {MAX_UPLOAD_MB} MB, {MAX_UPLOAD_ROWS:,} rows)",
        file_types=list(FORMATS),
        type="filepath",
        elem_id="upload",
    )
    column = gr.Dropdown(label="Text column", choices=[], allow_custom_value=True, elem_id="column")
    threshold = gr.Slider(
        0.0, 0.99, value=min_confidence, step=0.01, label="Mark rows below this confidence as uncertain"
    )
    score = gr.Button("Score file", variant="primary", elem_id="score")
    summary = gr.Markdown(label="Summary", min_height=40, elem_id="summary")
    # Hidden until a file is scored: an empty table shows placeholder headers "1 2 3".
    chart = gr.BarPlot(
        x="label",
        y="reviews",
        color="label",
        color_map=bar_colors(scorer.labels),
        # The data's order (labels, uncertain, not scored): Gradio 6.17's page cannot draw a list for `sort`.
        sort=None,
        label="Sentiment distribution",
        title="Sentiment distribution",
        visible=False,
        elem_id="chart",
    )
    preview = gr.Dataframe(
        label=f"Preview: the first {PREVIEW_ROWS} rows (the scored file has every column in full)",
        wrap=True,
        visible=False,
        elem_id="preview",
    )
    download = gr.File(label="Scored file", elem_id="download")
    upload.change(detect_text_column, upload, column, api_visibility="private")
    score.click(
        lambda f, c, t, progress=gr.Progress(): score_upload(scorer, f, c, progress, t),  # noqa: B008
        [upload, column, threshold],
        [preview, chart, download, summary],
        # One progress bar, on the summary, instead of one on each output.
        show_progress_on=[summary],
        api_name="score_file",
        api_visibility="private",
        concurrency_limit=1,  # a file at a time: the review tab stays responsive
    )
