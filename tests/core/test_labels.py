"""How a label column's values become class names and indices, for training and for gold labels."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from review_sentiment.errors import UserError
from review_sentiment.labels import column_classes, parse_labels, probability_columns
from review_sentiment.scoring import gold_class
from review_sentiment.text import LABELS


@pytest.mark.parametrize(
    "values", [[0, 1, 1], ["pos", "neg"], ["Positive", "negative", "NEG"], [True, False], [1.0, 0.0], ["1", "0"]]
)
def test_two_classes_keep_the_names_and_words_they_always_had(values):
    labels, index = column_classes(pd.Series(values), "label")
    assert labels == LABELS
    assert [labels[i] for i in index] == [
        "positive" if str(v).lower() in {"1", "1.0", "pos", "positive", "true"} else "negative" for v in values
    ]


def test_numbers_are_classes_in_numeric_order_and_whole_floats_name_the_same_class():
    labels, index = column_classes(pd.Series([10, 2.0, 1, "2", 9]), "rating")
    assert labels == ("1", "2", "9", "10")
    assert index.tolist() == [3, 1, 0, 1, 2]


def test_text_labels_are_alphabetical_ignoring_case_and_match_any_case():
    labels, index = column_classes(pd.Series(["neutral", "Positive", "negative", "positive"]), "label")
    assert [name.lower() for name in labels] == ["negative", "neutral", "positive"]
    assert index.tolist() == [1, 2, 0, 2]


def test_declared_labels_fix_the_order_and_a_value_outside_them_names_itself_and_its_row():
    labels, index = column_classes(pd.Series(["pos", "neu", "neg"]), "label", parse_labels("neg,neu,pos"))
    assert labels == ("neg", "neu", "pos") and index.tolist() == [2, 1, 0]
    values = pd.Series(["neg", "pos", "mixed"], index=[0, 1, 7])  # index 7: the 8th data row of the file
    with pytest.raises(UserError, match=r"row 8: 'mixed' is not one of the labels \['neg', 'neu', 'pos'\]"):
        column_classes(values, "label", parse_labels("neg,neu,pos"))


def test_one_class_or_an_id_column_is_refused():
    with pytest.raises(UserError, match="one class only"):
        column_classes(pd.Series(["good", "good"]), "label")
    with pytest.raises(UserError, match="is it the label column"):
        column_classes(pd.Series([f"review {i}" for i in range(500)]), "label")
    with pytest.raises(UserError, match="more than once"):
        parse_labels("good,Good,bad")


def test_probability_columns_are_safe_distinct_headers():
    assert probability_columns(["1", "2"]) == ("p_1", "p_2")
    assert probability_columns(["1-2 stars", "1_2 stars", "Très bon", "!!"]) == (
        "p_1_2_stars",
        "p_1_2_stars_2",
        "p_très_bon",
        "p_class",
    )


def test_gold_labels_of_a_star_model_are_its_names_and_binary_words_only_count_for_two_classes():
    stars = ("1", "2", "3", "4", "5")
    assert [gold_class(v, stars) for v in [3, "5", 4.0, "pos", None, "0"]] == [2, 4, 3, None, None, None]
    assert [gold_class(v, LABELS) for v in ["pos", 0, "Positive", "meh"]] == [1, 0, 1, None]
    flipped = ("positive", "negative")  # --labels positive,negative: the words keep their meaning
    assert [gold_class(v, flipped) for v in ["pos", 0, "true", "negative"]] == [0, 1, 0, 1]
    assert [gold_class(v, ("bad", "good")) for v in [0, 1, "Good"]] == [0, 1, 1]


@settings(deadline=None)  # a loaded CI machine is slow, not wrong
@given(st.lists(st.sampled_from(["1", "2", "3", "4", "7", "8", "9", "10"]), min_size=2))
def test_every_value_maps_back_to_its_own_name(values):
    if len(set(values)) < 2:
        return
    labels, index = column_classes(pd.Series(values), "rating")
    assert [labels[i] for i in index] == values
    assert np.all(np.diff([float(n) for n in labels]) > 0)


def test_one_class_is_never_split_by_how_a_file_writes_a_number():
    labels, index = column_classes(pd.Series(["1", "01", 1.0, "1.50", 1.5, " 2 "]), "rating")
    assert labels == ("1", "1.5", "2") and index.tolist() == [0, 0, 0, 1, 1, 2]


def test_binary_words_keep_their_meaning_and_other_pairs_take_only_0_and_1():
    assert gold_class("pos", ("good", "bad")) is None  # which of good/bad "pos" means is a guess: refused
    assert gold_class("true", ("good", "bad")) is None
    assert gold_class(0, ("1", "2")) is None  # 0 is not a position among star numbers
    assert gold_class(1, ("1", "2")) == 0


def test_signed_labels_keep_their_sign_in_column_names():
    assert probability_columns(["-1", "0", "1"]) == ("p_minus_1", "p_0", "p_1")


def test_an_id_column_as_labels_is_refused_even_when_small():
    with pytest.raises(UserError, match="60 distinct values in 60 rows"):
        column_classes(pd.Series(range(60)), "id")


def test_a_value_outside_an_eval_files_labels_says_where_the_labels_came_from():
    with pytest.raises(UserError, match="not one of the labels \\['neg', 'pos'\\] of the training data"):
        column_classes(pd.Series(["neg", "meh"]), "label", ("neg", "pos"), origin="of the training data")
