from review_sentiment.text import ReviewEncoder, TextSpec, clean_text, pad_batch


def test_clean_text_removes_html_entities_and_whitespace():
    assert clean_text("Great<br /><br />film &amp; cast\n\t  ok") == "Great film & cast ok"


def _encoder(tiny_base, truncation, max_length=10):
    return ReviewEncoder.from_file(tiny_base / "tokenizer.json", TextSpec(max_length, truncation))


def test_head_tail_keeps_first_quarter_and_last_three_quarters(tiny_base):
    words = " ".join(["great"] * 20 + ["awful"] * 20)
    enc = _encoder(tiny_base, "head+tail")
    ids = enc.encode([words])[0]
    tok = enc.tokenizer
    assert len(ids) == 10
    assert tok.id_to_token(ids[0]) == "[CLS]" and tok.id_to_token(ids[-1]) == "[SEP]"
    content = [tok.id_to_token(i) for i in ids[1:-1]]
    assert content == ["great"] * 2 + ["awful"] * 6  # budget 8: 2 head, 6 tail


def test_head_and_tail_strategies(tiny_base):
    words = " ".join(["great"] * 20 + ["awful"] * 20)
    head = _encoder(tiny_base, "head").encode([words])[0]
    tail = _encoder(tiny_base, "tail").encode([words])[0]
    tok = _encoder(tiny_base, "head").tokenizer
    assert {tok.id_to_token(i) for i in head[1:-1]} == {"great"}
    assert {tok.id_to_token(i) for i in tail[1:-1]} == {"awful"}


def test_short_text_is_not_truncated_and_padding_masks(tiny_base):
    enc = _encoder(tiny_base, "head+tail", 32)
    short, longer = enc.encode(["great film", "the film was great and moving"])
    assert enc.truncate([1, 2, 3])[1] is False
    ids, mask = pad_batch([short, longer], enc.pad_id)
    assert len(ids[0]) == len(ids[1]) == len(longer)
    assert mask[0] == [1] * len(short) + [0] * (len(longer) - len(short))


def test_spec_round_trips_and_validates():
    spec = TextSpec(128, "tail")
    assert TextSpec.from_dict(spec.to_dict()) == spec
    import pytest

    with pytest.raises(ValueError, match="truncation"):
        TextSpec(128, "middle")


def test_cleaning_keeps_text_that_is_not_a_tag():
    assert clean_text("7 < 8 but > 6") == "7 < 8 but > 6"
    assert clean_text("I <3 this film") == "I <3 this film"
    assert clean_text("<<The Matrix>> rocks, <grin>") == "<<The Matrix>> rocks, <grin>"
    assert clean_text("<a" + " " * 300 + ">x") == clean_text(clean_text("<a" + " " * 300 + ">x")) == "x"
    assert clean_text("Great<br /><br />film<i>!</i>") == "Great film !"


def test_cleaning_is_idempotent_on_generated_text():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    pieces = st.sampled_from(["<", ">", "/", "&", ";", "#", "!", "lt", "gt", "amp", "b", "i", "br", " ", "\n", "60"])
    markup = st.sampled_from(["&lt;", "&gt;", "&amp;", "&#60;", "&#x3c;", "<br />", "<i>", "</b>", "&nbsp;"])
    texts = st.lists(pieces | markup, max_size=30).map("".join) | st.text(max_size=60)

    @settings(max_examples=3000, deadline=None, derandomize=True)
    @given(texts)
    def idempotent(text):
        once = clean_text(text)
        assert clean_text(once) == once

    idempotent()
    assert clean_text("&lt;i&gt;quoted&lt;/i&gt;") == clean_text(clean_text("&lt;i&gt;quoted&lt;/i&gt;"))
