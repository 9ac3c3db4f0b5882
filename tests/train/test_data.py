import json

import numpy as np
import pandas as pd
import pytest

from review_sentiment.errors import UserError
from review_sentiment.train.balance import class_weights, imbalance, oversample
from review_sentiment.train.config import TrainConfig
from review_sentiment.train.data import (
    Reviews,
    load_reviews,
    run_split,
    stratified_split,
    training_split,
    validation_split,
)

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


def test_three_classes_are_found_in_alphabetical_order(tmp_path):
    path = tmp_path / "r.csv"
    pd.DataFrame({"text": ["a", "b", "c", "d"], "label": ["pos", "neg", "neutral", " neg "]}).to_csv(path, index=False)
    reviews = load_reviews(str(path))
    assert reviews.names == ("neg", "neutral", "pos")
    assert reviews.labels.tolist() == [2, 0, 1, 0]
    assert reviews.balance() == {"neg": 2, "neutral": 1, "pos": 1}
    assert reviews.describe()["labels"] == ["neg", "neutral", "pos"]


def test_star_ratings_keep_numeric_order_not_text_order(tmp_path):
    path = tmp_path / "r.csv"
    stars = [10, 2, 1, 4, 2, 10, 1, 4]
    pd.DataFrame({"text": [f"review {i}" for i in range(8)], "stars": stars}).to_csv(path, index=False)
    reviews = load_reviews(str(path), label_column="stars")
    assert reviews.names == ("1", "2", "4", "10")  # as text, "10" would sort before "2"
    assert [reviews.names[i] for i in reviews.labels] == [str(s) for s in stars]


def test_a_value_outside_labels_names_the_value_and_its_row(tmp_path):
    path = tmp_path / "r.csv"
    labels = ["good", "bad", "okay", "bad", "meh"]
    pd.DataFrame({"text": [f"review {i}" for i in range(5)], "label": labels}).to_csv(path, index=False)
    with pytest.raises(UserError, match=r"row 5: 'meh' is not one of the labels \['bad', 'okay', 'good'\]"):
        load_reviews(str(path), labels=("bad", "okay", "good"))
    ordered = load_reviews(str(path), labels=("bad", "okay", "good", "meh"))
    assert ordered.names == ("bad", "okay", "good", "meh") and ordered.labels.tolist() == [2, 0, 1, 0, 3]


def test_labels_option_is_parsed_once_and_refused_when_malformed():
    assert TrainConfig(dataset="r.csv", labels=" bad, okay ,good").labels == "bad,okay,good"
    assert TrainConfig(dataset="r.csv", labels="bad,okay,good").spec.labels == ("bad", "okay", "good")
    assert TrainConfig(dataset="r.csv").labels is None
    for wrong in ("only", "a,A", "a,,b"):
        with pytest.raises(UserError, match="--labels"):
            TrainConfig(dataset="r.csv", labels=wrong)


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


def _numbered(labels: list[int], names: tuple[str, ...] = ("negative", "positive")) -> Reviews:
    return Reviews([f"review {i}" for i in range(len(labels))], np.array(labels), "x", names=names)


def _numbers(reviews: Reviews) -> list[int]:
    return [int(text.split()[1]) for text in reviews.texts]


def test_a_binary_split_and_oversampling_are_those_of_the_two_class_code():
    """Pinned from the version before N labels: the same seed gives the same rows, so a binary run is
    unchanged and an old run's hold-out is re-created exactly by export and evaluate."""
    reviews = _numbered([int(i % 4 == 0 or i % 7 == 0) for i in range(60)])
    train, val = stratified_split(reviews, 0.2, seed=11)
    assert _numbers(val) == [0, 2, 6, 9, 10, 32, 36, 38, 40, 41, 53, 57]
    assert _numbers(oversample(train, seed=3))[len(train) :] == [48, 7, 12, 14, 12, 48, 49, 28, 4, 7, 16, 21, 35, 24]
    subset_train, subset_val = training_split(reviews, 0.25, 5, max_samples=40)
    assert _numbers(subset_val) == [6, 17, 22, 24, 26, 28, 43, 44, 45, 56] and len(subset_train) == 30
    assert class_weights(reviews).tolist() == pytest.approx([60 / (2 * 39), 60 / (2 * 21)])  # rows / (2 × class)


def test_three_classes_split_oversample_and_weigh_per_class():
    names = ("negative", "neutral", "positive")
    reviews = _numbered([0] * 30 + [1] * 10 + [2] * 20, names)
    train, val = stratified_split(reviews, 0.2, seed=0)
    assert val.balance() == {"negative": 6, "neutral": 2, "positive": 4} and val.names == names
    assert not set(train.texts) & set(val.texts) and len(train) + len(val) == 60
    balanced = oversample(train, seed=0)
    assert balanced.balance() == {"negative": 24, "neutral": 24, "positive": 24}
    assert balanced.texts[: len(train)] == train.texts and set(balanced.texts) == set(train.texts)
    weights = class_weights(reviews)
    assert weights.tolist() == pytest.approx([60 / (3 * 30), 60 / (3 * 10), 60 / (3 * 20)])
    assert np.bincount(reviews.labels) @ weights == pytest.approx(len(reviews))  # balanced: the loss scale kept
    assert imbalance(reviews) == "'neutral' 17% of the training reviews, 'negative' 50% (3.0x)"
    assert imbalance(balanced) is None


def test_a_class_without_reviews_is_kept_and_left_alone(tmp_path):
    reviews = _numbered([0] * 6 + [2] * 3, ("1", "2", "3"))
    assert reviews.balance() == {"1": 6, "2": 0, "3": 3}
    assert oversample(reviews, seed=0).balance() == {"1": 6, "2": 0, "3": 6}
    assert "'2' 0% of the training reviews" in imbalance(reviews)


def test_an_eval_file_is_read_with_the_training_labels(tmp_path):
    train = pd.DataFrame({"text": [f"train {i}" for i in range(30)], "label": ["bad", "okay", "good"] * 10})
    train.to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame({"text": ["eval 1", "eval 2"], "label": ["good", "good"]}).to_csv(tmp_path / "one.csv", index=False)
    params = {"dataset": str(tmp_path / "train.csv"), "eval_file": str(tmp_path / "one.csv"), "seed": 0}
    train_set, held_out = run_split(params)
    # One class only in the eval file is fine: its labels are the training data's, in their order.
    assert held_out.names == train_set.names == ("bad", "good", "okay")
    assert held_out.balance() == {"bad": 0, "good": 2, "okay": 0}
    assert validation_split({**params, "labels": list(train_set.names)}).texts == held_out.texts
    pd.DataFrame({"text": ["eval 1", "eval 2"], "label": ["good", "great"]}).to_csv(tmp_path / "new.csv", index=False)
    with pytest.raises(UserError, match=r"row 2: 'great' is not one of the labels \['bad', 'good', 'okay'\]"):
        run_split({**params, "eval_file": str(tmp_path / "new.csv")})


def test_the_labels_a_manifest_records_fix_the_split_and_an_old_manifest_is_binary(tmp_path):
    data = toy_reviews(40, seed=2)
    data["sentiment"] = data["sentiment"].map({0: "negative", 1: "positive"})
    data.to_csv(tmp_path / "all.csv", index=False)
    data.iloc[:10].to_csv(tmp_path / "eval.csv", index=False)
    params = {"dataset": str(tmp_path / "all.csv"), "seed": 4, "val_fraction": 0.25}
    found = run_split(params)[1]
    recorded = run_split({**params, "labels": ["negative", "positive"]})[1]
    assert found.texts == recorded.texts and found.labels.tolist() == recorded.labels.tolist()
    old = validation_split({**params, "eval_file": str(tmp_path / "eval.csv")})  # no `labels`: before the option
    assert old.names == ("negative", "positive") and len(old) == 10
    every, swapped = load_reviews(params["dataset"]), load_reviews(params["dataset"], labels=("positive", "negative"))
    assert swapped.names == ("positive", "negative") and swapped.labels.tolist() == (1 - every.labels).tolist()


def test_blank_and_missing_labels_are_counted_and_dropped_never_a_class(tmp_path, caplog):
    """A label cell of spaces is a missing label, not a class named '' (which crashed the run's end)."""
    path = tmp_path / "three.csv"
    frame = pd.DataFrame(
        {"review": [f"review number {i}" for i in range(12)], "label": ["negative", "neutral", "positive"] * 4}
    )
    frame.loc[[0, 4], "label"] = ["  ", None]
    frame.to_csv(path, index=False)
    with caplog.at_level("INFO"):
        reviews = load_reviews(str(path))
    assert reviews.names == ("negative", "neutral", "positive") and len(reviews) == 10
    assert "dropped 2 without a label" in caplog.text
