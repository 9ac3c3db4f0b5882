"""The app with a model of more than two labels: a hand-made three-class bag-of-words graph, so every figure
the app shows can be computed here independently (and no training run is needed)."""

import json

import numpy as np
import pandas as pd
import pytest

from review_sentiment.app.batch_tab import NOT_SCORED_GREY, bar_colors, distribution
from review_sentiment.app.explain import explain, strength_colors
from review_sentiment.app.ui import analyze, build_demo, headline, model_facts, predict_answer, score_upload
from review_sentiment.scorer import Scorer
from review_sentiment.scoring import Summary

from ..conftest import NEGATIVE, NEUTRAL, POSITIVE, THREE_CLASSES, toy_reviews_3class, write_bag_of_words

# Each token adds its row to the logits (negative, neutral, positive): a cue word 1 to its class, a plain
# word 0.5 to neutral, anything else nothing (a word outside the vocabulary is spelled in letters: "xyz"
# weighs nothing, but a word starting with "a" or "i" does, those letters being plain words too).
ROWS = {**{w: (1.0, 0.0, 0.0) for w in NEGATIVE}, **{w: (0.0, 0.5, 0.0) for w in NEUTRAL}}
ROWS.update({w: (0.0, 0.0, 1.0) for w in POSITIVE})


def _logits(words: list[str]) -> np.ndarray:
    return np.sum([ROWS.get(w, (0.0, 0.0, 0.0)) for w in words] + [(0.0, 0.0, 0.0)], axis=0)


def _log_odds(z: np.ndarray, c: int) -> float:
    others = np.delete(z, c)
    return float(z[c] - np.log(np.exp(others).sum()))


@pytest.fixture(scope="module")
def three_class_model(tiny_base, tmp_path_factory):
    """An exported folder whose graph sums a row of ROWS per token; labels negative, neutral, positive."""
    folder = tmp_path_factory.mktemp("bag-of-words-3")
    return write_bag_of_words(
        folder, tiny_base, ROWS, THREE_CLASSES, validation_metrics={"accuracy": 0.9, "count": 300}
    )


@pytest.fixture(scope="module")
def scorer3(three_class_model):
    return Scorer.load(three_class_model)


def test_a_prediction_has_every_class(scorer3):
    text = "the plot was great and wonderful and loved"
    p = scorer3.predict(text)
    expected = np.exp(_logits(text.split()))
    expected /= expected.sum()
    assert scorer3.labels == THREE_CLASSES and p.score is None  # no one class is "the" score
    assert list(p.probabilities) == list(THREE_CLASSES)
    np.testing.assert_allclose(list(p.probabilities.values()), expected, rtol=1e-6)
    assert p.label == "positive" and p.confidence == pytest.approx(expected.max())


def test_weights_are_drops_of_the_predicted_classs_log_odds(scorer3):
    """The plain words win (neutral), the cue words pull away from it, each weight exactly the drop in the
    log-odds of neutral that hiding the word causes."""
    text = "the plot was great and the xyz awful but the music was really quite dull"
    words = text.split()
    result = explain(scorer3, text)
    full = _logits(words)
    predicted = int(np.argmax(full))
    assert result.prediction.label == THREE_CLASSES[predicted] == "neutral"
    for unit, weight in zip(result.units, result.weights, strict=True):
        hidden = list(words)
        hidden.remove(unit)  # a repeated word: every copy is its own unit, each weighs the same
        assert weight == pytest.approx(_log_odds(full, predicted) - _log_odds(_logits(hidden), predicted), abs=1e-5)
    weights = dict(zip(result.units, result.weights, strict=True))
    assert weights["great"] < 0 and weights["awful"] < 0 < weights["plot"] and weights["xyz"] == 0.0
    shown = {piece.strip(): category for piece, category in result.highlighted(scorer3.labels)}
    assert shown["awful"] == "strongly away from neutral" and shown["xyz"] is None
    assert {c for c in shown.values() if c} <= set(strength_colors(scorer3.labels))  # every category has a colour


def test_analyze_shows_every_class_most_probable_first(scorer3):
    confidences, words, note = analyze(scorer3, "great wonderful loved it but the ending was awful", 0.9)
    assert list(confidences) == sorted(confidences, key=confidences.get, reverse=True) and len(confidences) == 3
    assert sum(confidences.values()) == pytest.approx(1.0) and next(iter(confidences)) == "positive"
    assert "Green pushed towards positive (the prediction), red away from it" in note
    assert note.startswith(f"**Not sure**: {confidences['positive']:.1%} confident in positive")
    shown = {c for _, c in words if c}
    assert "strongly towards positive" in shown and shown <= set(strength_colors(scorer3.labels))
    assert all("neutral" not in c and "negative" not in c for c in shown)  # only the predicted class is named


def test_predict_answers_every_classs_probability(scorer3, bag_of_words_model):
    answer = predict_answer(scorer3, "awful boring dull but the plot was fine", 0.5)
    assert set(answer) == {"label", "confidence", "probabilities", "sure", "provider"}
    assert list(answer["probabilities"]) == list(THREE_CLASSES)
    assert sum(answer["probabilities"].values()) == pytest.approx(1.0)
    assert answer["label"] == max(answer["probabilities"], key=answer["probabilities"].get) == "negative"
    assert answer["confidence"] == answer["probabilities"]["negative"]
    binary = predict_answer(Scorer.load(bag_of_words_model), "great film", 0.5)
    assert set(binary) == {"label", "score", "confidence", "sure", "provider"}  # two labels: as it always was


def test_the_page_shows_every_class(scorer3):
    import gradio as gr

    demo = build_demo(scorer3)
    label = next(b for b in demo.blocks.values() if isinstance(b, gr.Label))
    words = next(b for b in demo.blocks.values() if isinstance(b, gr.HighlightedText))
    assert label.num_top_classes == 3 and "strongly towards neutral" in words.color_map and not words.show_legend
    predict = next(fn for fn in demo.fns.values() if fn.api_name == "predict")
    assert "probabilities" in predict.fn.__annotations__["return"].__annotations__
    facts = model_facts(scorer3)
    assert "| labels (in the order of the logits) | negative, neutral, positive |" in facts
    assert "which of negative, neutral or positive it is" in headline(scorer3)


def test_the_api_answers_every_class(three_class_model):
    from gradio_client import Client

    from review_sentiment.app.ui import serve_in_background as serve

    process, url = serve(env={"SENTIMENT_MODEL": str(three_class_model)})
    try:
        client = Client(url, verbose=False)
        answer = client.predict("awful boring dull film", api_name="/predict")
        assert answer["label"] == "negative" and sum(answer["probabilities"].values()) == pytest.approx(1.0)
        label, words, _ = client.predict("the plot was great and wonderful and loved", api_name="/analyze")
        assert [c["label"] for c in label["confidences"]] == ["positive", "neutral", "negative"]
        assert "strongly towards positive" in json.dumps(words)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_batch_tab_scores_three_classes(scorer3, tmp_path):
    upload = tmp_path / "three.csv"
    frame = toy_reviews_3class(30)
    frame.to_csv(upload, index=False)
    preview, chart, download, summary = score_upload(scorer3, str(upload), "review", progress=lambda *a, **k: None)
    scored = pd.read_csv(download)
    probs = ["p_negative", "p_neutral", "p_positive"]
    assert list(scored.columns) == ["review", "sentiment", "label", "confidence", *probs, "status"]
    np.testing.assert_allclose(scored[probs].sum(axis=1), 1.0, atol=1e-5)
    assert (scored["label"] == scored[probs].idxmax(axis=1).str[2:]).all()
    shown = preview["value"]
    assert list(shown.columns) == ["label", "confidence", "status", "review", *probs, "sentiment"]
    assert shown["p_neutral"].tolist() == [f"{v:.3f}" for v in scored["p_neutral"][:20]]
    counts = scored["label"].value_counts()
    bars = dict(chart["value"].values.tolist())
    assert list(bars) == [*THREE_CLASSES, "not scored"] and sum(bars.values()) == 30
    assert all(bars[name] == counts.get(name, 0) for name in THREE_CLASSES)
    assert "rows 30, scored 30" in summary


def test_chart_colours_for_more_labels():
    stars = bar_colors(("1", "2", "3", "4", "5"))
    legend = strength_colors(("negative", "positive"))
    assert stars["1"] == legend["strongly negative"] and stars["5"] == legend["strongly positive"]
    named = bar_colors(("sport", "politics", "music", "science"))
    assert len({named[name] for name in ("sport", "politics", "music", "science")}) == 4
    summary = Summary(rows=4, scored=3, skipped=1, labels={"music": 2, "sport": 1})
    chart = distribution(summary, ("sport", "politics", "music", "science"))
    assert chart["value"].values.tolist() == [
        ["sport", 1],
        ["politics", 0],
        ["music", 2],
        ["science", 0],
        ["not scored", 1],
    ]
    assert chart["color_map"]["not scored"] == NOT_SCORED_GREY


def test_a_trained_three_class_export_in_the_app(exported_3class, tmp_path):
    scorer = Scorer.load(exported_3class)
    text = "Great wonderful loved it, a delightful film."
    confidences, words, note = analyze(scorer, text)
    assert set(confidences) == set(THREE_CLASSES) and sum(confidences.values()) == pytest.approx(1.0)
    predicted = next(iter(confidences))
    assert predicted == scorer.predict(text).label and f"towards {predicted} (the prediction)" in note
    assert all(c.endswith(predicted) for _, c in words if c)
    upload = tmp_path / "three.csv"
    toy_reviews_3class(12, seed=3).to_csv(upload, index=False)
    _, _, download, _ = score_upload(scorer, str(upload), "review", progress=lambda *a, **k: None)
    assert {"p_negative", "p_neutral", "p_positive"} <= set(pd.read_csv(download).columns)
