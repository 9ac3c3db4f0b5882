"""score-csv with a model of three labels: p_<label> columns in every format, gold labels by name, resume.

The model is the hand-made graph of conftest.py, so every expected probability is a softmax of logits
counted from the review's words, computed here without the scorer.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from review_sentiment.batch.cli import main
from review_sentiment.batch.config import BatchConfig
from review_sentiment.batch.score_file import score_file
from review_sentiment.scorer import Scorer

from ..conftest import THREE_CLASSES
from .conftest import three_class_logits

PROBS = ["p_negative", "p_neutral", "p_positive"]
OURS = ["label", "confidence", *PROBS, "status"]
ROWS = [  # review, gold
    ("Great wonderful film.", "positive"),
    ("Awful boring plot.", "negative"),
    ("The story was quite long", "Neutral"),  # any case names a label
    ("Loved it, but the ending was dull.", "neutral"),  # a tie of negative and positive: the first wins
    ("   ", "positive"),
    ("12345", "negative"),
    ("Superb, moving and brilliant", "pos"),  # a binary word names no class of three
    ("Dreadful", "negative"),
]


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max())
    return exp / exp.sum()


def write_input(tmp_path) -> tuple:
    frame = pd.DataFrame(ROWS, columns=["review", "gold"])
    frame.insert(0, "id", range(len(frame)))
    source = tmp_path / "reviews.csv"
    frame.to_csv(source, index=False)
    return source, frame


def check_rows(out: pd.DataFrame, frame: pd.DataFrame) -> None:
    """`out`: label and status as text, probabilities as floats; a missing value is None or NaN."""
    assert list(out.columns) == [*frame.columns, *OURS]
    assert out["id"].astype(int).tolist() == frame["id"].tolist()
    skipped = {4: "skipped: empty", 5: "skipped: no words"}
    for i, review in enumerate(frame["review"]):
        if i in skipped:
            assert out["status"][i] == skipped[i] and pd.isna(out["label"][i])
            assert out.loc[i, [*PROBS, "confidence"]].isna().all()
            continue
        expected = softmax(three_class_logits(review))
        got = out.loc[i, PROBS].to_numpy(dtype=float)
        np.testing.assert_allclose(got, expected, atol=1e-6)
        assert got.sum() == pytest.approx(1.0, abs=1e-5)
        assert out["label"][i] == THREE_CLASSES[int(np.argmax(expected))]
        assert out["confidence"][i] == pytest.approx(expected.max(), abs=1e-6)
        assert out["status"][i] == "ok"


def test_three_labels_write_a_probability_per_class_and_gold_names(three_class_model, tmp_path, capsys, caplog):
    source, frame = write_input(tmp_path)
    assert main([str(source), "--model", str(three_class_model), "--label-column", "gold", "--chunk-rows", "3"]) == 0
    text = pd.read_csv(tmp_path / "reviews.scored.csv", dtype=str, keep_default_na=False)
    assert (text.loc[[4, 5], [*PROBS, "label", "confidence"]] == "").all().all()  # skipped rows: empty cells
    out = text.replace("", np.nan)
    check_rows(out.astype({p: float for p in [*PROBS, "confidence"]}), frame)
    assert out["label"][3] == "negative"  # the tie
    # Independently: the gold names of the scored rows, ignoring case; "pos" names none of the three.
    scored = out[out["status"] == "ok"]
    gold = scored["gold"].str.lower()
    known = gold.isin(THREE_CLASSES)
    accuracy = (gold[known] == scored["label"][known]).mean()
    shares = scored["label"].value_counts(normalize=True)
    said = capsys.readouterr().err + caplog.text
    assert f"accuracy {accuracy:.2%} on {known.sum()} labelled" in said and known.sum() == 5
    assert ", ".join(f"{c} {shares.get(c, 0):.1%}" for c in THREE_CLASSES) in said
    assert "1 value(s) of 'gold' name no label (e.g. 'pos')" in said
    assert "gold labels are the model's labels: negative, neutral, positive" in said
    assert "0/1" not in said  # binary words are offered for two labels only


def test_three_labels_in_parquet_and_json_lines(three_class_model, tmp_path):
    source, frame = write_input(tmp_path)
    model = ["--model", str(three_class_model), "--chunk-rows", "3"]
    assert main([str(source), *model, "--output", str(tmp_path / "o.parquet")]) == 0
    table = pq.read_table(tmp_path / "o.parquet")
    assert {n: table.schema.field(n).type for n in OURS} == {
        "label": pa.string(),
        "confidence": pa.float64(),
        **dict.fromkeys(PROBS, pa.float64()),
        "status": pa.string(),
    }
    parquet = table.to_pandas()
    check_rows(parquet, frame)
    assert main([str(source), *model, "--output", str(tmp_path / "o.jsonl")]) == 0
    records = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert all(list(r) == [*frame.columns, *OURS] for r in records)
    assert [records[4][p] for p in PROBS] == [None, None, None]  # null, never NaN, in JSON
    lines = pd.DataFrame(records)
    check_rows(lines, frame)
    assert lines[PROBS].equals(parquet[PROBS])  # the same numbers whatever the format


def test_an_interrupted_three_label_run_resumes_only_with_the_same_labels(
    three_class_model, bag_of_words_model, tmp_path, capsys
):
    source, _ = write_input(tmp_path)
    output, parts = tmp_path / "out.csv", tmp_path / "out.csv.parts"
    scorer = Scorer.load(three_class_model)

    class Dies:
        provider, folder, labels, calls = scorer.provider, scorer.folder, scorer.labels, 0

        def logits(self, *args, **kwargs):
            self.calls += 1
            if self.calls > 1:
                raise KeyboardInterrupt
            return scorer.logits(*args, **kwargs)

    cfg = BatchConfig(input=str(source), output=str(output), chunk_rows=3, model=str(three_class_model))
    with pytest.raises(KeyboardInterrupt):
        score_file(cfg, Dies())
    finished = sorted(p.name for p in parts.glob("part-*"))
    assert finished == ["part-000000.csv"]
    args = [str(source), "--output", str(output), "--chunk-rows", "3", "--resume"]
    assert main([*args, "--model", str(bag_of_words_model)]) == 2
    assert (
        "scored by a model with the labels ['negative', 'neutral', 'positive'], this model has ['negative', 'positive']"
        in capsys.readouterr().err
    )
    # A run.json from before label sets (no "labels") was a two-label run: a three-label model may not go on.
    run_file = parts / "run.json"
    recorded = json.loads(run_file.read_text())
    run_file.write_text(json.dumps({"fingerprint": recorded["fingerprint"]}))
    assert main([*args, "--model", str(three_class_model)]) == 2
    assert "this model has ['negative', 'neutral', 'positive']" in capsys.readouterr().err
    assert sorted(p.name for p in parts.glob("part-*")) == finished  # refusals keep the finished work
    run_file.write_text(json.dumps(recorded))
    assert main([*args, "--model", str(three_class_model)]) == 0
    reference = tmp_path / "ref.csv"
    assert main([str(source), "--output", str(reference), "--chunk-rows", "3", "--model", str(three_class_model)]) == 0
    assert output.read_bytes() == reference.read_bytes() and not parts.exists()
    assert pd.read_csv(output).columns.tolist()[-len(OURS) :] == OURS
