from pathlib import Path

import pandas as pd
import pytest

from review_sentiment.app.explain import explain, split_units
from review_sentiment.app.ui import EXAMPLES, analyze, model_facts, score_upload
from review_sentiment.app.ui import serve_in_background as serve
from review_sentiment.cli import main
from review_sentiment.scorer import Scorer

from ..conftest import toy_reviews


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
    shown = dict(mixed.highlighted())
    assert shown["great "] == "strongly positive" and shown["awful "] == "strongly negative" and shown["plot "] is None


def test_long_reviews_are_explained_by_sentence_with_bounded_cost():
    words = " ".join(f"word{i}" for i in range(30))
    assert split_units(words, 48)[1] == "word"
    long = " ".join(f"Sentence number {i} is here." for i in range(30))
    units, granularity = split_units(long, 48)
    assert granularity == "sentence" and len(units) == 30
    huge = " ".join(f"Sentence {i}." for i in range(1000))
    units, granularity = split_units(huge, 48)
    assert granularity == "sentence group" and len(units) <= 48
    assert " ".join(units) == huge


def test_analyze_handles_empty_huge_and_truncated_input(scorer):
    assert analyze(scorer, "   ") == ({}, [], "Type or paste a review first.")
    assert "the app takes up to 200,000" in analyze(scorer, "great " * 40_000)[2]
    confidences, words, note = analyze(scorer, "great " * 30_000)
    assert set(confidences) == {"negative", "positive"} and abs(sum(confidences.values()) - 1) < 1e-6
    assert "head+tail" in note
    assert len(words) <= 48


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
    toy_reviews(25).to_csv(upload, index=False)
    preview, chart, download, summary = score_upload(scorer, str(upload), "review", progress=lambda *a, **k: None)
    assert len(preview) == 20 and "label" in preview.columns
    assert chart.value["data"] and sum(row[1] for row in chart.value["data"]) == 25
    assert pd.read_csv(download)["status"].eq("ok").all()
    assert "rows 25, scored 25" in summary
    assert not Path(download).with_name("up.csv").exists()  # the upload copy is removed after scoring
    assert upload.exists()


def test_model_panel_shows_provider_and_metrics(scorer):
    facts = model_facts(scorer)
    assert "CPUExecutionProvider" in facts and "validation accuracy" in facts and "int8" in facts


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
        process.wait(timeout=30)


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
    assert dict(words)["great "] == "strongly pos" and "towards pos" in note
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
