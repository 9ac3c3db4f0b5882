import json

import numpy as np
import pandas as pd
import pytest

from review_sentiment.errors import UserError
from review_sentiment.train.data import load_reviews, oversample, stratified_split

from ..conftest import toy_reviews


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".jsonl"])
def test_every_table_format_loads_with_detected_columns(tmp_path, suffix):
    frame = toy_reviews(20)
    path = tmp_path / f"reviews{suffix}"
    {
        ".csv": lambda: frame.to_csv(path, index=False),
        ".tsv": lambda: frame.to_csv(path, sep="\t", index=False),
        ".parquet": lambda: frame.to_parquet(path),
        ".jsonl": lambda: frame.to_json(path, orient="records", lines=True),
    }[suffix]()
    reviews = load_reviews(str(path))
    assert len(reviews) == 20
    assert reviews.balance() == {"negative": 10, "positive": 10}


def test_acl_imdb_folder_layout(tmp_path):
    for label, text in (("pos", "A wonderful film."), ("neg", "Dull<br />and slow.")):
        (tmp_path / "aclImdb" / "train" / label).mkdir(parents=True)
        (tmp_path / "aclImdb" / "train" / label / "0_9.txt").write_text(text)
    reviews = load_reviews(str(tmp_path / "aclImdb"))
    assert sorted(zip(reviews.texts, reviews.labels.tolist(), strict=False)) == [
        ("A wonderful film.", 1),
        ("Dull and slow.", 0),
    ]


def test_word_labels_cleaning_empty_and_duplicates_are_reported(tmp_path):
    path = tmp_path / "r.csv"
    pd.DataFrame(
        {
            "Review Text": ["Great<br/>film", "great film", "Great<br/>film", "  ", "Awful."],
            "Polarity": ["Positive", "POS", "positive", "neg", "negative"],
        }
    ).to_csv(path, index=False)
    reviews = load_reviews(str(path))
    assert reviews.texts == ["Great film", "great film", "Awful."]
    assert reviews.labels.tolist() == [1, 1, 0]
    assert (reviews.dropped_empty, reviews.dropped_duplicates) == (1, 1)


def test_undetectable_columns_list_what_was_found(tmp_path):
    path = tmp_path / "r.csv"
    pd.DataFrame({"a": ["x", "y"], "b": ["u", "v"], "stars": [1, 0]}).to_csv(path, index=False)
    with pytest.raises(UserError, match=r"could not find the text column; columns are: a, b, stars"):
        load_reviews(str(path))


def test_three_classes_is_an_error_naming_them(tmp_path):
    path = tmp_path / "r.csv"
    pd.DataFrame({"text": ["a", "b", "c"], "label": ["pos", "neg", "neutral"]}).to_csv(path, index=False)
    with pytest.raises(UserError, match=r"exactly two classes, found 3: \['neg', 'neutral', 'pos'\]"):
        load_reviews(str(path))


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        load_reviews(str(tmp_path / "nope.csv"))
    (tmp_path / "empty.csv").write_text("text,label\n")
    with pytest.raises(UserError, match="holds no rows"):
        load_reviews(str(tmp_path / "empty.csv"))


def test_stratified_split_is_seeded_and_keeps_class_shares(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps({"text": f"review {i}", "label": int(i % 4 == 0)}) + "\n" for i in range(200)))
    reviews = load_reviews(str(path))
    train, val = stratified_split(reviews, 0.1, seed=7)
    _again, val_again = stratified_split(reviews, 0.1, seed=7)
    assert val.texts == val_again.texts and len(train) + len(val) == 200
    assert val.balance() == {"negative": 15, "positive": 5}
    assert not set(train.texts) & set(val.texts)
    balanced = oversample(train, seed=0)
    assert balanced.balance()["negative"] == balanced.balance()["positive"] == 135
    assert np.isin(balanced.texts, train.texts).all()


def test_an_eval_file_never_shares_a_review_with_training(tmp_path):
    from review_sentiment.train.data import run_split

    data = toy_reviews(120, seed=31)
    data.to_csv(tmp_path / "all.csv", index=False)
    data.iloc[:40].to_csv(tmp_path / "eval.csv", index=False)
    params = {
        "dataset": str(tmp_path / "all.csv"),
        "eval_file": str(tmp_path / "eval.csv"),
        "seed": 1,
        "val_fraction": 0.1,
    }
    train_set, held_out = run_split(params)
    assert not set(train_set.texts) & set(held_out.texts) and len(held_out) > 0
