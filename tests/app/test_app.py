import itertools
from pathlib import Path

import pandas as pd
import pytest

from review_sentiment.app.explain import MIN_UNITS, explain, split_units, unit_budget
from review_sentiment.app.ui import EXAMPLES, analyze, model_facts, score_upload
from review_sentiment.app.ui import serve_in_background as serve
from review_sentiment.cli import main
from review_sentiment.scorer import Scorer

from ..conftest import NEGATIVE, POSITIVE, toy_reviews


@pytest.fixture(scope="module")
def scorer(exported):
    return Scorer.load(exported["int8"])


def test_explanation_points_the_right_way(bag_of_words_model):
    scorer = Scorer.load(bag_of_words_model)
    mixed = explain(scorer, "the plot was great and wonderful but the ending awful")
    weights = dict(zip(mixed.units, mixed.weights, strict=True))
    assert mixed.prediction.label == "positive"
    assert weights["great"] == pytest.approx(1.0) and weights["wonderful"] == pytest.approx(1.0)
    assert weights["awful"] == pytest.approx(-1.0)  # each cue word moves the positive logit by exactly 1
    assert weights["plot"] == weights["the"] == 0.0
    assert {unit for unit, _ in mixed.top(3)} == {"great", "wonderful", "awful"}
    shown = {piece.strip(): category for piece, category in mixed.highlighted()}
    assert shown["great"] == "strongly positive" and shown["awful"] == "strongly negative" and shown["plot"] is None
    assert "".join(piece for piece, _ in mixed.highlighted()) == mixed.text  # the whole review, once, in order


@pytest.mark.parametrize(("max_units", "granularity"), [(48, "word"), (24, "sentence"), (8, "sentence group")])
def test_a_long_review_is_explained_inside_the_window_the_model_reads(bag_of_words_model, max_units, granularity):
    """Head and tail carry clear sentiment, the unread middle the opposite: the middle gets no weight and is
    shown as not read, and each unit's weight is exactly the sum of its read tokens' scores (+1/-1 a cue)."""
    scorer = Scorer.load(bag_of_words_model)  # max_length 64: 62 content tokens, the first 15 and the last 47
    head = "great film. " + "the film. " * 4  # 15 tokens
    middle = "awful boring. " * 40
    tail = "the film. " * 14 + "wonderful film. loved."  # 47 tokens
    result = explain(scorer, head + middle + tail, max_units=max_units)
    assert result.granularity == granularity and result.unread is not None
    start, end = result.unread
    assert set(result.text[start:end].split()) == {"awful", "boring."}  # only the middle is unread
    encoder = scorer.encoder
    for (a, b), weight in zip(result.spans, result.weights, strict=True):
        assert b <= start or a >= end, "a unit lies in the unread middle"
        unit = result.text[a:b]
        expected = sum((w in POSITIVE) - (w in NEGATIVE) for w in unit.replace(".", " ").split())
        assert weight == pytest.approx(expected), unit
    assert sum(result.weights) == pytest.approx(scorer.run_ids(encoder.encode([result.text]))[0, 1])
    assert {p.strip(): c for p, c in result.highlighted()}[result.text[start:end]] == "not read"
    assert "".join(piece for piece, _ in result.highlighted()) == result.text


@pytest.mark.parametrize("max_units", [48, 8])
def test_a_sentence_cut_by_the_window_is_coloured_only_where_it_was_read(bag_of_words_model, max_units):
    """The head ends inside a sentence (and the tail starts inside one): the part after the edge is shown
    as not read, never in a unit's colour, and the weights stay those of the read tokens."""
    scorer = Scorer.load(bag_of_words_model)  # reads the first 15 and the last 47 content tokens
    text = "great film " * 10 + "awful. " * 30 + "the film " * 30 + "wonderful film loved"
    result = explain(scorer, text, max_units=max_units)
    start, end = result.unread
    encoding = scorer.encoder.tokenizer.encode(result.text, add_special_tokens=False)
    head, tail_start = scorer.encoder.window(len(encoding.ids))
    gap = result.text[encoding.offsets[head - 1][1] : encoding.offsets[tail_start][0]]
    assert result.text[start:end] == gap.strip() and gap.startswith(" film great")  # cut inside the first sentence
    for (a, b), weight in zip(result.spans, result.weights, strict=True):
        assert b <= start or a >= end, f"unit {result.text[a:b]!r} reaches into the unread text"
        words = result.text[a:b].replace(".", " ").split()
        assert weight == pytest.approx(sum((w in POSITIVE) - (w in NEGATIVE) for w in words))
    shown = "".join(piece for piece, category in result.highlighted() if category == "not read")
    assert shown.strip() == result.text[start:end] and result.truncated


def test_a_unit_read_on_both_sides_of_the_gap_is_coloured_on_both(bag_of_words_model):
    scorer = Scorer.load(bag_of_words_model)
    text = "great " * 10 + "awful " * 100 + "wonderful " * 50  # one sentence: no end marks at all
    result = explain(scorer, text, max_units=8)
    assert result.granularity == "sentence" and len(result.spans) == 1 and result.unread is not None
    shown = result.highlighted()
    categories = [category for piece, category in shown if piece.strip()]
    assert categories == ["strongly positive", "not read", "strongly positive"]
    assert "".join(piece for piece, _ in shown) == result.text


def test_long_reviews_are_explained_by_sentence_with_bounded_cost():
    words = " ".join(f"word{i}" for i in range(30))
    assert split_units(words, 48)[1] == "word"
    long = " ".join(f"Sentence number {i} is here." for i in range(30))
    spans, granularity = split_units(long, 48)
    assert granularity == "sentence" and len(spans) == 30 and long[slice(*spans[3])] == "Sentence number 3 is here."
    assert split_units("Rated 3.5 stars! Really?? Yes", 4)[0] == [(0, 16), (17, 25), (26, 29)]
    huge = " ".join(f"Sentence {i}." for i in range(1000))
    spans, granularity = split_units(huge, 48)
    assert granularity == "sentence group" and len(spans) <= 48
    assert spans[0][0] == 0 and spans[-1][1] == len(huge)
    assert all(left[1] < right[0] for left, right in itertools.pairwise(spans))


def test_analyze_handles_empty_huge_and_truncated_input(scorer):
    assert analyze(scorer, "   ") == ({}, [], "Type or paste a review first.")
    assert "the app takes up to 200,000" in analyze(scorer, "great " * 40_000)[2]
    confidences, words, note = analyze(scorer, "great " * 30_000)
    assert set(confidences) == {"negative", "positive"} and abs(sum(confidences.values()) - 1) < 1e-6
    assert "head+tail" in note and "not read" in {category for _, category in words}
    assert sum(category not in (None, "not read") for _, category in words) <= 48


def test_the_app_reads_a_long_review_as_score_csv_does(bag_of_words_model):
    scorer = Scorer.load(bag_of_words_model)
    # 26,000 characters: negative at the start, positive at the end (the tail the model reads).
    text = "the film was awful and boring. " * 700 + "great wonderful loved it. " * 100
    confidences, _, _ = analyze(scorer, text)
    assert (
        confidences["positive"] == pytest.approx(scorer.predict(text).score, abs=1e-7) and confidences["positive"] > 0.5
    )


def test_batch_tab_uses_the_batch_scorer(scorer, tmp_path):
    upload = tmp_path / "up.csv"
    frame = toy_reviews(120)
    frame.loc[0, "review"] = "Great film. " * 30  # longer than the preview shows
    frame.to_csv(upload, index=False)
    calls = []
    preview, chart, download, summary = score_upload(
        scorer, str(upload), "review", progress=lambda p, **k: calls.append(p)
    )
    # One progress, moving with the rows scored: counted first, then after each chunk.
    assert calls[0] == (0, 120) and calls[-1] == (120, 120) and len(calls) >= 4
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    shown = preview["value"]
    assert list(shown.columns) == ["label", "confidence", "status", "review", "sentiment"] and len(shown) == 20
    assert shown["review"][0] == ("Great film. " * 30)[:120] + "…" and shown["review"][1] == frame["review"][1]
    scored = pd.read_csv(download)
    # Three decimals on screen, full precision in the file.
    assert shown["confidence"].tolist() == [f"{c:.3f}" for c in scored["confidence"][:20]]
    assert list(scored.columns) == ["review", "sentiment", "label", "score", "confidence", "status"]
    assert scored["review"][0] == frame["review"][0] and scored["status"].eq("ok").all()  # the file is not cut
    assert chart["value"]["reviews"].sum() == 120 and preview["visible"] and chart["visible"]
    assert "rows 120, scored 120" in summary and "read as utf-8 (detected)" in summary
    assert not Path(download).with_name("up.csv").exists()  # the upload is not copied
    assert upload.exists()


def test_chart_bars_take_the_legend_colours(scorer):
    from review_sentiment.app.batch_tab import NOT_SCORED_GREY, UNCERTAIN_GREY, distribution
    from review_sentiment.app.explain import strength_colors
    from review_sentiment.scoring import Summary

    summary = Summary(
        rows=10, scored=9, uncertain=2, skipped=1, labels={"positive": 5, "negative": 4}, min_confidence=0.8
    )
    chart = distribution(summary, scorer.labels)
    legend = strength_colors(scorer.labels)
    assert chart["color_map"] == {
        "negative": legend["strongly negative"],
        "positive": legend["strongly positive"],
        "of which uncertain": UNCERTAIN_GREY,
        "not scored": NOT_SCORED_GREY,
    }
    assert len(set(chart["color_map"].values())) == 4
    assert chart["value"].values.tolist() == [
        ["negative", 4],
        ["positive", 5],
        ["of which uncertain", 2],
        ["not scored", 1],
    ]


def test_model_panel_shows_provider_and_metrics(scorer):
    facts = model_facts(scorer)
    assert "CPUExecutionProvider" in facts and "validation accuracy" in facts and "int8" in facts
    assert not facts.startswith("| |")  # a header row with words, not an empty one
    bundled = Scorer.load(None)  # measured on 1,000 reviews, no temperature applied: the error served is "before"
    calibration = bundled.manifest["calibration"]
    served = calibration["ece"] if calibration["applied"] else calibration["ece_before"]
    assert f"| calibration error (ECE) | {served:.4f} (15 bins" in model_facts(bundled)


def test_headline_says_what_the_model_is_in_plain_words(scorer):
    from review_sentiment.app.ui import headline

    line = headline(scorer)
    accuracy = scorer.manifest["validation_metrics"]["accuracy"]
    assert f"right on {accuracy:.1%} of" in line and "8-bit" in line
    assert "ExecutionProvider" not in line and "default_model" not in line  # no jargon, no folder names


def test_api_answers_through_gradio_client(exported):
    from gradio_client import Client

    process, url = serve(env={"SENTIMENT_MODEL": str(exported["int8"])})
    try:
        client = Client(url, verbose=False)
        label, words, note = client.predict(EXAMPLES[0], api_name="/analyze")
        assert label["label"] in ("negative", "positive") and len(words) > 5
        assert "CPUExecutionProvider" in note
        answer = client.predict("great wonderful loved", api_name="/predict")
        assert answer["label"] == "positive" and answer["provider"] == "CPUExecutionProvider" and answer["score"] > 0.5
    finally:
        process.terminate()
        _, log = process.communicate(timeout=30)
    assert "Warning" not in log.decode(), "requests log warnings"


def _with_labels(folder: Path, tmp_path: Path, labels: list[str]) -> Path:
    import json
    import shutil

    copy = tmp_path / "relabelled"
    shutil.copytree(folder, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["labels"] = manifest["text_spec"]["labels"] = labels
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def test_the_models_own_labels_everywhere(bag_of_words_model, tmp_path):
    from review_sentiment.batch.config import BatchConfig
    from review_sentiment.batch.score_file import score_file

    scorer = Scorer.load(_with_labels(bag_of_words_model, tmp_path, ["neg", "pos"]))
    confidences, words, note = analyze(scorer, "great wonderful but awful")
    assert set(confidences) == {"neg", "pos"} and confidences["pos"] > confidences["neg"]
    assert {p.strip(): c for p, c in words}["great"] == "strongly pos" and "towards pos" in note
    source = tmp_path / "r.csv"
    pd.DataFrame({"text": ["great film", "awful film", "great"]}).to_csv(source, index=False)
    summary = score_file(BatchConfig(input=str(source)), scorer)
    assert summary.labels == {"pos": 2, "neg": 1} and "neg 33.3%, pos 66.7%" in summary.text()


def test_analyze_and_predict_read_the_same_text(bag_of_words_model):
    scorer = Scorer.load(bag_of_words_model)
    text = "&lt;i&gt;great&lt;/i&gt; film, 7 < 8 but > 6, awful &amp;amp; dull"
    confidences, _, _ = analyze(scorer, text)
    assert confidences["positive"] == pytest.approx(scorer.predict(text).score, abs=1e-7)


def test_batch_tab_never_guesses_the_text_column(scorer, tmp_path):
    from review_sentiment.app.ui import text_column_choice

    upload = tmp_path / "u.csv"
    upload.write_text("id,reviewer,what_they_said,stars\n1,ann,loved it,5\n2,bob,hated it,1\n")
    assert text_column_choice(str(upload)) == (["id", "reviewer", "what_they_said", "stars"], None)
    numbers = tmp_path / "n.csv"
    numbers.write_text("review\n1\n2\n")
    assert text_column_choice(str(numbers)) == (["review"], None)
    with pytest.raises(Exception, match="Pick the column"):
        score_upload(scorer, str(upload), None, progress=lambda *a, **k: None)


def test_explicit_port_beats_the_environment(monkeypatch):
    from review_sentiment.app.ui import launch

    seen = {}

    class Demo:
        def launch(self, **kwargs):
            seen.update(kwargs)

    monkeypatch.setenv("GRADIO_SERVER_PORT", "9999")
    launch(Demo(), port=7000)
    assert seen["server_port"] == 7000
    launch(Demo())
    assert seen["server_port"] == 9999


def test_verbose_flag_before_score(exported, tmp_path, capsys):
    source = tmp_path / "r.csv"
    toy_reviews(4).to_csv(source, index=False)
    assert main(["-v", "score", str(source), "--model", str(exported["int8"])]) == 0
    assert "rows 4, scored 4" in capsys.readouterr().err


def test_the_app_refuses_what_score_csv_skips(bag_of_words_model):
    scorer = Scorer.load(bag_of_words_model)
    for text in ("12345", "10/10", "<br />"):
        assert analyze(scorer, text)[:2] == ({}, []) and "no words" in analyze(scorer, text)[2]


def test_the_app_says_not_sure_below_its_threshold(bag_of_words_model):
    """Bag-of-words: 'great wonderful' is 88% positive, 'awful' 73% negative (see the batch test)."""
    scorer = Scorer.load(bag_of_words_model)
    sure, unsure = analyze(scorer, "great wonderful", 0.8)[2], analyze(scorer, "awful", 0.8)[2]
    assert "Not sure" not in sure
    assert unsure.startswith("**Not sure**: 73.1% confident in negative, below the app's 80% threshold.")
    assert "Not sure" not in analyze(scorer, "awful", 0.0)[2]  # no threshold, no warning


def _no_progress(*args, **kwargs) -> None:
    return None


def test_batch_tab_reads_a_cp1252_upload(scorer, tmp_path):
    from review_sentiment.app.ui import text_column_choice

    upload = tmp_path / "western.csv"
    upload.write_bytes("id,review\n1,café – naïve but I loved it\n2,awful\n".encode("cp1252"))
    assert text_column_choice(str(upload)) == (["id", "review"], "review")  # the dropdown reads it too
    _, _, download, summary = score_upload(scorer, str(upload), "review", progress=_no_progress)
    assert pd.read_csv(download)["review"][0] == "café – naïve but I loved it"
    assert "read as cp1252 (detected)" in summary


def test_batch_tab_shows_no_server_paths(scorer, tmp_path, monkeypatch):
    import re
    import tempfile

    import gradio as gr

    from review_sentiment.batch import tables

    upload = tmp_path / "up.csv"
    toy_reviews(5).to_csv(upload, index=False)
    summary = score_upload(scorer, str(upload), "review", progress=_no_progress, min_confidence=0.0)[3]
    assert f"model {_plain_name(scorer)}; output up.scored.csv" in summary
    assert re.search(r"(?<![\w.])/\w", summary) is None and tempfile.gettempdir() not in summary
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(gr.Error) as refused:
        score_upload(scorer, str(empty), "review", progress=_no_progress)
    assert refused.value.message == "empty.csv is empty: no header row"
    mixed = tmp_path / "mixed.csv"  # UTF-8 where the sample is read, cp1252 after it
    mixed.write_bytes("review\nnaïve\n".encode() + b"great film\n" * 20 + "café\n".encode("cp1252"))
    monkeypatch.setattr(tables, "SAMPLE_BYTES", 32)
    with pytest.raises(gr.Error) as refused:
        score_upload(scorer, str(mixed), "review", progress=_no_progress)
    # UTF-8 with one stray byte: where it is, by line, and no advice to re-read it all in another encoding.
    assert refused.value.message.startswith("mixed.csv is UTF-8 text, but line 23 has a character that is not valid")
    assert "--" not in refused.value.message and str(tmp_path) not in refused.value.message


def _plain_name(scorer) -> str:
    from review_sentiment.app.batch_tab import _plain_name

    return _plain_name(scorer)


def test_batch_tab_names_the_model_plainly(scorer):
    from review_sentiment.app.batch_tab import _plain_name

    bundled = Scorer.load(None)
    assert _plain_name(bundled) == "all-MiniLM-L6-v2 (int8)"
    assert "/" not in _plain_name(scorer)


def test_a_header_only_file_says_it_has_no_rows(scorer, tmp_path):
    import gradio as gr

    from review_sentiment.app.batch_tab import detect_text_column
    from review_sentiment.app.ui import text_column_choice
    from review_sentiment.errors import UserError

    upload = tmp_path / "head.csv"
    upload.write_text("text,label\n")
    message = "head.csv has a header but no rows: there are no reviews to score."
    with pytest.raises(UserError, match=message):
        text_column_choice(str(upload))
    warned = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gr, "Warning", warned.append)
        detect_text_column(str(upload))
    assert warned == [message]
    with pytest.raises(gr.Error) as refused:
        score_upload(scorer, str(upload), "text", progress=_no_progress)
    assert refused.value.message == message


def test_scoring_stops_when_the_visitor_leaves(scorer, tmp_path, monkeypatch):
    """A closed or reloaded page stops the job after the chunk in progress, and its scratch folder goes."""
    import tempfile
    from types import SimpleNamespace

    import gradio as gr
    from gradio.context import LocalContext

    from review_sentiment.app import batch_tab

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    upload = tmp_path / "up.csv"
    toy_reviews(300).to_csv(upload, index=False)
    event = SimpleNamespace(_id="e1", alive=True)
    blocks = SimpleNamespace(_queue=SimpleNamespace(active_jobs=[None, [event]]))
    calls = []

    def progress(done, **kwargs):
        calls.append(done)
        event.alive = False  # the page went away during the first chunk

    blocks_token, event_token = LocalContext.blocks.set(blocks), LocalContext.event_id.set("e1")
    try:
        with pytest.raises(gr.Error, match=r"Stopped scoring up\.csv: the page was closed or reloaded"):
            score_upload(scorer, str(upload), "review", progress=progress)
    finally:
        LocalContext.blocks.reset(blocks_token)
        LocalContext.event_id.reset(event_token)
    assert calls == [(0, 300)] and not list(scratch.iterdir())
    assert not batch_tab.client_left()  # outside Gradio's queue: never "left"


def test_messages_for_visitors_drop_paths_and_command_line_advice():
    from review_sentiment.app.batch_tab import for_visitor

    upload = "/tmp/gradio/0a1b/reviews.csv"
    message = (
        f"could not read {upload} as Parquet: /opt/venv/lib/pyarrow/_parquet.pyx failed; 12.0 reviews/s "
        "(use --on-bad-lines skip or report)"
    )
    assert for_visitor(message, {upload: "reviews.csv"}) == (
        "could not read reviews.csv as Parquet: _parquet.pyx failed; 12.0 reviews/s"
    )
    assert for_visitor("output /x/y.csv exists; pass --overwrite to replace it", {}) == "output y.csv exists"


def test_batch_tab_refuses_too_many_rows_before_scoring(scorer, tmp_path, monkeypatch):
    import tempfile

    import gradio as gr
    import pyarrow.parquet as pq

    from review_sentiment.app import batch_tab

    upload = tmp_path / "many.parquet"
    toy_reviews(25).to_parquet(upload)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setattr(batch_tab, "MAX_UPLOAD_ROWS", 10)
    monkeypatch.setattr(batch_tab, "score_file", lambda *a, **k: pytest.fail("scored before the row cap"))
    monkeypatch.setattr(pq.ParquetFile, "iter_batches", lambda *a, **k: pytest.fail("Parquet rows read to count"))
    with pytest.raises(
        gr.Error, match=r"many\.parquet has more than 10 rows; the app scores up to 10\. The `score-csv`"
    ):
        score_upload(scorer, str(upload), "review", progress=_no_progress)
    csv = tmp_path / "many.csv"
    toy_reviews(25).to_csv(csv, index=False)
    with pytest.raises(gr.Error, match="more than 10 rows"):
        score_upload(scorer, str(csv), "review", progress=_no_progress)
    assert not list(scratch.iterdir())  # a refused file leaves no scratch folder behind


SCRATCH_APP = """
import gradio as gr
from review_sentiment.app import batch_tab, ui

batch_tab.new_scratch()
with gr.Blocks() as demo:
    gr.Markdown("scratch")
ui.launch(demo)
"""


def test_scratch_folders_go_when_the_app_stops(tmp_path):
    import sys

    other = tmp_path / "sentiment-app-1-another-app"  # another (live) app's folder is not ours to remove
    other.mkdir()
    process, _ = serve(command=[sys.executable, "-c", SCRATCH_APP], env={"TMPDIR": str(tmp_path)})
    ours = [p for p in tmp_path.glob("sentiment-app-*") if p != other]
    try:
        assert len(ours) == 1
    finally:
        process.terminate()  # SIGTERM, as Docker and Spaces stop an app
        process.wait(timeout=30)
    assert not ours[0].exists() and other.exists()


def test_only_predict_and_analyze_are_api_endpoints(exported):
    from gradio_client import Client

    from review_sentiment.app.ui import QUEUE_MAX_SIZE, build_demo

    demo = build_demo(Scorer.load(exported["int8"]))
    events = {fn.api_name: fn for fn in demo.fns.values()}
    assert {name for name, fn in events.items() if fn.api_visibility != "private"} == {"predict", "analyze"}
    assert {"score_file", "detect_text_column"} <= set(events)  # still there for the page
    assert events["score_file"].concurrency_limit == 1 and demo._queue.max_size == QUEUE_MAX_SIZE
    process, url = serve(env={"SENTIMENT_MODEL": str(exported["int8"])})
    try:
        api = Client(url, verbose=False).view_api(print_info=False, return_format="dict")
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert set(api["named_endpoints"]) == {"/predict", "/analyze"} and not api["unnamed_endpoints"]
    # Outputs are named and typed, not "value_14" / "Any".
    analyze_outputs = [r["label"] for r in api["named_endpoints"]["/analyze"]["returns"]]
    assert analyze_outputs == ["Sentiment", "What pushed the prediction", "Note"]
    predict_output = api["named_endpoints"]["/predict"]["returns"][0]["python_type"]["type"]
    assert all(key in predict_output for key in ("label", "score", "confidence", "sure", "provider"))


def test_a_long_review_costs_no_more_rows_than_the_token_budget(bag_of_words_model):
    """A review read to the model's whole window gets fewer, larger units: its rows times its tokens stay
    within the budget (never under MIN_UNITS units), and the weights still add up to the review's logit."""
    scorer = Scorer.load(bag_of_words_model)  # reads 64 tokens
    text = "great film. the plot. awful acting. " * 20  # 2-3 tokens a sentence: 20+ sentences read
    result = explain(scorer, text, row_tokens=64 * 9)
    assert result.granularity == "sentence group" and MIN_UNITS <= len(result.spans) <= 8  # at most 9 rows
    assert unit_budget(64, 48, 64 * 2) == MIN_UNITS and unit_budget(10, 48, 3072) == 48
    assert sum(result.weights) == pytest.approx(scorer.run_ids(scorer.encoder.encode([result.text]))[0, 1])
