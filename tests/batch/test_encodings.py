"""score-csv --encoding auto: told from a bounded leading sample, said in the log and the summary."""

import io
import logging

import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from review_sentiment.batch import encodings, tables
from review_sentiment.batch.cli import main
from review_sentiment.batch.config import BatchConfig
from review_sentiment.batch.encodings import detect_encoding
from review_sentiment.batch.lines import DecodedLines, UndecodableInput
from review_sentiment.batch.score_file import score_file
from review_sentiment.batch.tables import TableReader
from review_sentiment.errors import UserError

WESTERN = "café – naïve; “quoted” Größe señor"


def test_a_cp1252_file_round_trips_and_the_summary_names_its_encoding(exported, tmp_path, capsys, caplog):
    source = tmp_path / "cp.csv"
    source.write_bytes(f"id,text\n1,{WESTERN}\n2,awful film\n".encode("cp1252"))
    with caplog.at_level(logging.INFO, logger="review_sentiment"):
        assert main([str(source), "--model", str(exported["int8"])]) == 0
    assert pd.read_csv(tmp_path / "cp.scored.csv")["text"].tolist() == [WESTERN, "awful film"]
    assert "read as cp1252 (detected)" in capsys.readouterr().err
    assert f"reading {source} as cp1252 (detected)" in caplog.text
    utf8 = tmp_path / "u8.csv"
    utf8.write_text(f"id,text\n1,{WESTERN}\n", encoding="utf-8")
    assert main([str(utf8), "--model", str(exported["int8"])]) == 0
    assert pd.read_csv(tmp_path / "u8.scored.csv")["text"][0] == WESTERN
    assert "read as utf-8 (detected)" in capsys.readouterr().err
    # An explicit encoding is used as given, even where auto would read the file.
    assert main([str(source), "--model", str(exported["int8"]), "--encoding", "utf-8", "--overwrite"]) == 2
    assert "not valid utf-8 at line 2 (byte offset 13)" in capsys.readouterr().err
    assert main([str(source), "--model", str(exported["int8"]), "--encoding", "cp1252", "--overwrite"]) == 0
    assert pd.read_csv(tmp_path / "cp.scored.csv")["text"][0] == WESTERN


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [
        ("utf-8-sig", "utf-8-sig"),
        ("utf-8", "utf-8"),
        ("utf-16", "utf-16"),
        ("utf-32", "utf-32"),
        ("utf-16-le", "utf_16_le"),  # no BOM: NUL bytes, so never taken for UTF-8
        ("utf-16-be", "utf_16_be"),
        ("cp1252", "cp1252"),
        ("latin-1", "cp1252"),  # latin-1's letters read the same in cp1252
    ],
)
def test_detection_boms_first_then_utf8_then_charset_normalizer(encoding, expected):
    text = "id,text\n1,café, naïve but señor Größe loved it\n2,awful\n"
    data = text.encode(encoding)
    found = detect_encoding(data, complete=True)
    assert found.encoding == expected and found.fallback is None
    assert data.decode(found.encoding) == text
    assert detect_encoding(b"", complete=True).encoding == "utf-8"


def test_a_character_cut_by_the_end_of_the_sample_is_still_utf8():
    data = ("a" * 99 + "é").encode()
    assert detect_encoding(data[:-1], complete=False).encoding == "utf-8"
    assert detect_encoding(data[:-1], complete=True).encoding != "utf-8"  # the file really ends mid-character


def test_only_a_bounded_sample_is_read_to_detect(tmp_path, monkeypatch):
    """The sample is at most SAMPLE_BYTES; what it cannot show (ASCII, then cp1252 after it) is handled while
    reading on, nothing read before changes, and the summary says where."""
    monkeypatch.setattr(tables, "SAMPLE_BYTES", 64)
    seen = []

    def spy(sample: bytes, complete: bool) -> encodings.Detected:
        seen.append(len(sample))
        return encodings.detect_encoding(sample, complete)

    monkeypatch.setattr(tables, "detect_encoding", spy)
    late = tmp_path / "late.csv"
    rows = [f"{i},plain ascii review {i}" for i in range(20)]
    late.write_bytes(("id,text\n" + "\n".join(rows) + f"\n20,{WESTERN}\n").encode("cp1252"))
    reader = TableReader(str(late), "csv", chunk_rows=7)
    frame = pd.concat(list(reader))
    assert seen == [64]
    assert frame["text"].tolist()[-1] == WESTERN and len(frame) == 21
    assert reader.encoding_used.startswith("cp1252 (detected at byte ")
    # Beyond the sample but valid UTF-8: still UTF-8, not switched.
    utf8 = tmp_path / "late8.csv"
    utf8.write_text("id,text\n" + "\n".join(rows) + f"\n20,{WESTERN}\n", encoding="utf-8")
    reader = TableReader(str(utf8), "csv", chunk_rows=7)
    assert pd.concat(list(reader))["text"].tolist()[-1] == WESTERN
    assert reader.encoding_used == "utf-8 (detected)"


def test_no_switch_once_the_file_showed_utf8():
    data = "é".encode() + b"x" * 10 + "é".encode("cp1252")
    lines = DecodedLines(io.BytesIO(data), "utf-8", fallback="cp1252", detected=True, block=4)
    with pytest.raises(UndecodableInput, match=r"not valid utf-8 at line 1 \(byte offset 12\): fix or remove") as error:
        list(lines)
    assert error.value.utf8_elsewhere and error.value.line == 1


def test_a_stray_byte_in_utf8_names_its_line_and_does_not_advise_another_encoding(
    exported, tmp_path, capsys, monkeypatch
):
    """One cp1252 byte in a UTF-8 file, after the sample: reading it all as cp1252 would garble every other é."""
    monkeypatch.setattr(tables, "SAMPLE_BYTES", 256)
    source = tmp_path / "late.csv"
    rows = "".join(f"{i},naïve café review {i}\n" for i in range(100))
    source.write_bytes(f"id,text\n{rows}".encode() + "100,café\n".encode("cp1252"))
    assert main([str(source), "--model", str(exported["int8"])]) == 2
    err = capsys.readouterr().err
    assert "input is utf-8 (detected from the start of the file) but has a byte that is not valid utf-8" in err
    assert "at line 102 (byte offset" in err and "would misread the accented characters elsewhere" in err
    assert "pass its encoding" not in err


def test_auto_reads_stdin_and_json_too(tmp_path):
    data = f"id,text\n1,{WESTERN}\n".encode("cp1252")
    reader = TableReader("-", "csv", chunk_rows=5, stdin=io.BytesIO(data))
    assert next(iter(reader))["text"][0] == WESTERN and reader.encoding_used == "cp1252 (detected)"
    jsonl = tmp_path / "r.jsonl"
    jsonl.write_bytes(f'{{"text": "{WESTERN}"}}\n'.encode("utf-16"))
    reader = TableReader(str(jsonl), "jsonl", chunk_rows=5)
    assert next(iter(reader))["text"][0] == WESTERN and reader.encoding_used == "utf-16 (detected)"


def test_an_unknown_encoding_is_refused_before_anything_runs():
    with pytest.raises(UserError, match="unknown encoding 'nope'"):
        BatchConfig(input="x.csv", encoding="nope")


def test_progress_reports_rows_after_each_chunk(bag_of_words_model, tmp_path):
    from review_sentiment.scorer import Scorer

    source = tmp_path / "r.csv"
    pd.DataFrame({"text": ["great film"] * 23}).to_csv(source, index=False)
    seen = []
    summary = score_file(BatchConfig(input=str(source), chunk_rows=5), Scorer.load(bag_of_words_model), seen.append)
    assert seen == [5, 10, 15, 20, 23] and summary.rows == 23


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00\ufeff"), max_size=200),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32"]),
)
def test_unicode_encodings_are_read_back_unchanged(text, encoding):
    """Whatever the text, UTF-8 (with or without a BOM) and BOM-marked UTF-16/32 are read back exactly."""
    reader = TableReader("-", "csv", chunk_rows=5)
    assert "".join(reader._decoded(io.BytesIO(text.encode(encoding)), universal=True)) == text


WESTERN_SENTENCES = [
    "Un film très émouvant, où les acteurs sont à la hauteur. Déçu par la fin.",
    "Größe, übermäßig süß – „schön“ gesagt, aber zu lang. Die Schauspieler: großartig!",
    "El señor tenía razón: ¡qué película! Año y niño, “muy” buena — ¿verdad?",
    "Não gostei da atuação, a direção é fraca – mas a canção é ótima, é o coração.",
    "Ça alors… une œuvre « magistrale », façon Noël, à voir ‘absolument’.",
]


@pytest.mark.parametrize("sentence", WESTERN_SENTENCES)
def test_western_european_cp1252_text_is_read_as_cp1252(sentence):
    """charset-normalizer alone reads the French one as iso8859-10 ("trčs", "oų"): cp1252 must win."""
    for text in (sentence, (sentence + "\n") * 3, f"id,text\n1,{sentence}\n"):
        data = text.encode("cp1252")
        found = detect_encoding(data, complete=True)
        assert found.encoding == "cp1252" and data.decode(found.encoding) == text


_WESTERN_CHARS = st.characters(
    min_codepoint=0x20,
    max_codepoint=0xFF,
    categories=["Lu", "Ll", "Zs", "Po", "Pd", "Ps", "Pe", "Pi", "Pf"],
    exclude_characters="\xa0",
)


@settings(max_examples=200, deadline=None)
@given(text=st.text(_WESTERN_CHARS, min_size=1, max_size=300))
def test_random_western_text_in_cp1252_is_read_back_exactly(text):
    """Latin-1 letters, punctuation and spaces written as cp1252 come back unchanged, whatever their mix.

    Bytes that are also valid UTF-8 ("Â¡" is "¡" in UTF-8) are read as UTF-8 by design: left out.
    """
    data = text.encode("cp1252")
    assume(not _is_utf8(data))
    found = detect_encoding(data, complete=True)
    assert data.decode(found.encoding) == text


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Отличный фильм, актёры играют прекрасно. Сюжет немного затянут.\n" * 3, "cp1251"),
        ("Πολύ καλή ταινία, οι ηθοποιοί είναι εξαιρετικοί.\n" * 3, "cp1253"),
        # CJK: charset-normalizer is sure (chaos 0) but scores coherence low; the cp1252 reading is mojibake.
        ("这部电影非常好看，演员的表演很精彩，我推荐大家去看。\n" * 3, "gbk"),
        ("이 영화는 정말 재미있었고 배우들의 연기가 훌륭했습니다.\n" * 3, "euc-kr"),
    ],
)
def test_text_charset_normalizer_is_confident_is_in_another_script_is_not_forced_to_cp1252(text, encoding):
    data = text.encode(encoding)
    found = detect_encoding(data, complete=True)
    assert found.encoding != "cp1252" and data.decode(found.encoding) == text


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# cp1252 letters that start a UTF-8 character (é, ð), followed by ones that could continue it (», °): the
# decoder holds all of them at the end of a block, waiting for the rest of the character.
@pytest.mark.parametrize(
    ("at", "chars"), [((1 << 20) - 1, "é"), ((1 << 20) - 2, "é»"), ((2 << 20) - 1, "é"), ((2 << 20) - 3, "ð°»")]
)
def test_a_cp1252_byte_held_at_a_block_edge_still_switches(tmp_path, at, chars):
    """An é (a UTF-8 lead byte) in the last bytes of a 1 MiB block or of the sample is held by the decoder, not
    proof of UTF-8: the switch to cp1252 still happens there, and gets the held byte."""
    header = b"id,text\n"
    rows, size = [], len(header)
    while size < at + 100_000:
        rows.append(f"{len(rows)},plain ascii review number {len(rows)}\n".encode())
        size += len(rows[-1])
    data = bytearray(header + b"".join(rows))
    data[at : at + len(chars)] = chars.encode("cp1252")
    source = tmp_path / "edge.csv"
    source.write_bytes(bytes(data))
    reader = TableReader(str(source), "csv", chunk_rows=50_000)
    texts = pd.concat(list(reader))["text"].tolist()
    assert len(texts) == len(rows) and sum(chars in t for t in texts) == 1
    assert reader.encoding_used == f"cp1252 (detected at byte {at}; ASCII before it)"
