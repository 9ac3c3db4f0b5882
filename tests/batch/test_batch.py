import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from review_sentiment.batch.cli import main
from review_sentiment.batch.config import BatchConfig
from review_sentiment.batch.parts import output_lock
from review_sentiment.batch.score_file import score_file
from review_sentiment.batch.tables import TableReader
from review_sentiment.scorer import Scorer

from ..conftest import toy_reviews

SCORE_CSV = [sys.executable, "-m", "review_sentiment.batch"]


def reviews_frame(count: int = 30) -> pd.DataFrame:
    frame = toy_reviews(count, seed=11).rename(columns={"review": "Review Text"})
    frame.insert(0, "id", range(count))
    frame["note"] = "x"
    return frame


def test_every_row_once_in_order_with_columns_kept(exported, tmp_path, capsys):
    source = tmp_path / "reviews.csv"
    frame = reviews_frame(50)
    frame.loc[3, "Review Text"] = "   "
    frame.loc[4, "Review Text"] = None
    frame.loc[5, "Review Text"] = "<br /><br />"
    frame.to_csv(source, index=False)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    # fp32: int8's dynamic activation scales depend on the batch, so exact agreement is an fp32 property
    assert main([str(source), "--model", str(exported["none"]), "--chunk-rows", "7", "--batch-size", "4"]) == 0
    assert hashlib.sha256(source.read_bytes()).hexdigest() == digest  # the input is never modified
    out = pd.read_csv(tmp_path / "reviews.scored.csv", keep_default_na=False)
    assert list(out.columns) == ["id", "Review Text", "sentiment", "note", "label", "score", "confidence", "status"]
    assert out["id"].tolist() == list(range(50))
    assert out.loc[3:5, "status"].tolist() == ["skipped: empty", "skipped: empty", "skipped: empty"]
    assert (out.loc[3:5, "label"] == "").all()
    scored = out[out.status == "ok"]
    assert len(scored) == 47
    expected = Scorer.load(exported["none"]).predict(scored["Review Text"].tolist())
    assert scored["label"].tolist() == [p.label for p in expected]
    np.testing.assert_allclose(pd.to_numeric(scored["score"]), [p.score for p in expected], atol=1e-5)
    summary = capsys.readouterr().err
    assert "rows 50, scored 47, skipped 3" in summary and "CPUExecutionProvider" in summary


def test_label_column_collision_and_jsonl_non_text_values(exported, tmp_path):
    source = tmp_path / "r.jsonl"
    rows = [{"text": "great wonderful", "label": "gold"}, {"text": 42, "label": "gold"}, {"text": None, "label": "x"}]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main([str(source), "--model", str(exported["int8"]), "--output", str(tmp_path / "o.parquet")]) == 0
    out = pd.read_parquet(tmp_path / "o.parquet")
    assert list(out.columns) == ["text", "label", "label_pred", "score", "confidence", "status"]
    assert out["label"].tolist() == ["gold", "gold", "x"]
    assert out["status"].tolist() == ["ok", "skipped: not text (int)", "skipped: missing"]


def test_length_sorting_inside_windows_keeps_input_order(exported):
    texts = [" ".join(["great"] * n) if n % 2 else " ".join(["awful"] * n) for n in range(1, 60)]
    scorer = Scorer.load(exported["none"])
    together = scorer.predict(texts, batch_size=8)
    one_by_one = [scorer.predict(t) for t in texts]
    assert [p.label for p in together] == [p.label for p in one_by_one]
    np.testing.assert_allclose([p.score for p in together], [p.score for p in one_by_one], atol=1e-5)


def test_memory_is_bounded_by_chunk_and_window(exported, tmp_path):
    source = tmp_path / "big.csv"
    reviews_frame(1000).to_csv(source, index=False)
    assert max(len(f) for f in TableReader(str(source), "csv", chunk_rows=64)) == 64
    pulled = 0

    def texts():
        nonlocal pulled
        for i in range(10_000):
            pulled += 1
            yield f"great film number {i}"

    first = next(Scorer.load(exported["int8"]).iter_logits(texts(), batch_size=8, window=32))
    assert first.shape == (2,) and pulled <= 32


def test_csv_injection_is_escaped_unless_raw(exported, tmp_path):
    source = tmp_path / "r.csv"
    pd.DataFrame(
        {"text": ['=HYPERLINK("http://x")', "great", "@SUM(A1)"], "n": ["-5", "+cmd|' /C calc'!A0", "1"]}
    ).to_csv(source, index=False)
    assert main([str(source), "--model", str(exported["int8"])]) == 0
    out = pd.read_csv(tmp_path / "r.scored.csv", dtype=str)
    assert out["text"].tolist() == ['\'=HYPERLINK("http://x")', "great", "'@SUM(A1)"]
    assert out["n"].tolist() == ["-5", "'+cmd|' /C calc'!A0", "1"]
    assert main([str(source), "--model", str(exported["int8"]), "--raw", "--overwrite"]) == 0
    assert pd.read_csv(tmp_path / "r.scored.csv", dtype=str)["text"][0] == '=HYPERLINK("http://x")'


BAD_CSV = 'text,stars\n"great film",5\n"awful",1,extra\n"fine",3\n'


@pytest.mark.parametrize(
    ("mode", "code", "statuses"),
    [
        ("error", 2, None),
        ("skip", 0, ["ok", "ok"]),
        ("report", 0, ["ok", "bad line 3: 3 fields, expected 2", "ok"]),
    ],
)
def test_bad_lines(exported, tmp_path, capsys, mode, code, statuses):
    source = tmp_path / "bad.csv"
    source.write_text(BAD_CSV)
    assert main([str(source), "--model", str(exported["int8"]), "--on-bad-lines", mode]) == code
    if statuses is None:
        assert "malformed input at line 3: 3 fields, expected 2" in capsys.readouterr().err
        assert not (tmp_path / "bad.scored.csv").exists()
    else:
        assert pd.read_csv(tmp_path / "bad.scored.csv")["status"].tolist() == statuses


def test_encodings_bom_and_byte_offset(exported, tmp_path, capsys):
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufefftext\ngreat film\n".encode())
    assert main([str(bom), "--model", str(exported["int8"])]) == 0
    assert pd.read_csv(tmp_path / "bom.scored.csv").columns[0] == "text"
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text\ncaf\xe9 was great\n".encode("latin-1"))
    assert main([str(latin), "--model", str(exported["int8"]), "--encoding", "utf-8-sig"]) == 2
    assert "not valid utf-8-sig at line 2 (byte offset 8)" in capsys.readouterr().err
    assert main([str(latin), "--model", str(exported["int8"]), "--encoding", "latin-1"]) == 0
    assert pd.read_csv(tmp_path / "latin.scored.csv")["text"][0] == "café was great"
    assert "read as latin-1" in capsys.readouterr().err  # an explicit encoding is used as given


def test_stdin_to_stdout(exported):
    data = reviews_frame(12).to_csv(index=False)
    result = subprocess.run(
        [*SCORE_CSV, "-", "--model", str(exported["int8"])], input=data.encode(), capture_output=True, timeout=120
    )
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert lines[0] == "id,Review Text,sentiment,note,label,score,confidence,status" and len(lines) == 13
    assert b"rows 12, scored 12" in result.stderr


def test_refusals(exported, tmp_path, capsys):
    source = tmp_path / "r.csv"
    reviews_frame(3).to_csv(source, index=False)
    assert main([str(source), "--model", str(exported["int8"]), "--output", str(source)]) == 2
    assert "would replace the input" in capsys.readouterr().err
    assert main([str(source), "--model", str(exported["int8"]), "--resume"]) == 2
    assert "no interrupted run" in capsys.readouterr().err
    assert main([str(source), "--model", str(exported["int8"]), "--text-column", "body"]) == 2
    assert "text column 'body' not found; columns are: id, Review Text, sentiment, note" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.csv")]) == 2
    assert "input file not found" in capsys.readouterr().err
    for option in ("--threads", "--batch-size"):
        assert main([str(source), "--model", str(exported["int8"]), option, "-1"]) == 2
        assert "--batch-size, --threads and --chunk-rows must be positive" in capsys.readouterr().err


def test_resume_accepts_another_batching(tmp_path):
    """Batching changes no score (fp32, static int8): a run started with one batch size resumes with another."""
    from review_sentiment.batch.config import BatchConfig
    from review_sentiment.batch.score_file import _fingerprint

    source = tmp_path / "r.csv"
    reviews_frame(3).to_csv(source, index=False)
    first = _fingerprint(BatchConfig(str(source)))
    assert _fingerprint(BatchConfig(str(source), batch_size=8, threads=1, resume=True)) == first
    assert _fingerprint(BatchConfig(str(source), min_confidence=0.8)) != first


def test_killed_run_resumes_to_identical_output(exported, tmp_path):
    source = tmp_path / "big.csv"
    reviews_frame(30_000).to_csv(source, index=False)
    args = [*SCORE_CSV, str(source), "--model", str(exported["int8"]), "--chunk-rows", "500"]
    reference = tmp_path / "reference.csv"
    subprocess.run([*args, "--output", str(reference)], check=True, capture_output=True, timeout=300)
    output = tmp_path / "resumed.csv"
    parts = Path(str(output) + ".parts")
    process = subprocess.Popen([*args, "--output", str(output)], stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(list(parts.glob("part-*.csv"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done = len(list(parts.glob("part-*.csv")))
    assert 3 <= done < 60 and not output.exists(), "the run should have been killed midway"
    subprocess.run([*args, "--output", str(output), "--resume"], check=True, capture_output=True, timeout=300)
    assert output.read_bytes() == reference.read_bytes()
    assert not parts.exists()


# Regressions of the first release (each failed on it) ------------------------------------------


@pytest.mark.parametrize("mode", ["error", "report"])
def test_a_long_quoted_field_with_newlines_is_one_row(exported, tmp_path, mode):
    frame = reviews_frame(20)
    long_review = "A great film.\n" + ('It was wonderful, "really", and moving.\r\n' * 12_000)
    frame.loc[7, "Review Text"] = long_review  # ~500 kB with quotes and newlines
    source = tmp_path / "long.csv"
    frame.to_csv(source, index=False)
    assert len(pd.read_csv(source)) == 20
    assert main([str(source), "--model", str(exported["int8"]), "--on-bad-lines", mode]) == 0
    out = pd.read_csv(tmp_path / "long.scored.csv", dtype=str, keep_default_na=False)
    assert out["id"].tolist() == [str(i) for i in range(20)]
    assert out.loc[7, "Review Text"] == long_review and (out["status"] == "ok").all()


def test_a_quote_never_closed_is_one_bad_row_not_many(exported, tmp_path):
    source = tmp_path / "open.csv"
    source.write_text('id,text\n1,great film\n2,"awful\n3,fine\n4,boring\n')
    assert main([str(source), "--model", str(exported["int8"])]) == 2
    assert main([str(source), "--model", str(exported["int8"]), "--on-bad-lines", "report"]) == 0
    out = pd.read_csv(tmp_path / "open.scored.csv", dtype=str, keep_default_na=False)
    assert out["id"].tolist() == ["1", ""] and out["status"][1].startswith("bad line 3: a quoted field")


def test_json_lines_keys_first_seen_late_keep_columns_aligned(exported, tmp_path):
    rows = [{"text": "great film"}] * 5 + [{"text": "awful", "stars": 1, "extra": {"a": [1]}}]
    source = tmp_path / "late.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = ["--model", str(exported["int8"]), "--chunk-rows", "2"]
    assert main([str(source), *model, "--output", str(tmp_path / "o.csv")]) == 0
    out = pd.read_csv(tmp_path / "o.csv", dtype=str, keep_default_na=False)
    assert list(out.columns) == ["text", "stars", "extra", "label", "score", "confidence", "status"]
    assert out["stars"].tolist() == [""] * 5 + ["1"] and out["extra"][5] == '{"a": [1]}'
    assert main([str(source), *model, "--output", str(tmp_path / "o.parquet")]) == 0
    table = pq.read_table(tmp_path / "o.parquet")
    assert table.column("stars").to_pylist() == [None] * 5 + [1] and table.num_rows == 6


def test_a_failed_resume_never_deletes_finished_parts(exported, tmp_path, capsys):
    source = tmp_path / "r.csv"
    reviews_frame(40).to_csv(source, index=False)
    output = tmp_path / "out.csv"
    parts = tmp_path / "out.csv.parts"
    scorer = Scorer.load(exported["none"])

    class Dies:
        provider, folder, labels, calls = scorer.provider, scorer.folder, scorer.labels, 0

        def logits(self, *args, **kwargs):
            self.calls += 1
            if self.calls > 2:
                raise KeyboardInterrupt
            return scorer.logits(*args, **kwargs)

    cfg = BatchConfig(input=str(source), output=str(output), chunk_rows=10, model=str(exported["none"]))
    with pytest.raises(KeyboardInterrupt):
        score_file(cfg, Dies())
    finished = sorted(p.name for p in parts.glob("part-*"))
    assert finished == ["part-000000.csv", "part-000001.csv"]
    assert main([str(source), "--output", str(output), "--chunk-rows", "10", "--resume", "--model", "nowhere"]) == 2
    assert "model folder not found" in capsys.readouterr().err
    assert sorted(p.name for p in parts.glob("part-*")) == finished  # still there
    args = [str(source), "--output", str(output), "--chunk-rows", "10", "--model", str(exported["none"])]
    assert main([*args, "--resume"]) == 0
    assert main([*args, "--output", str(tmp_path / "ref.csv")]) == 0
    assert output.read_bytes() == (tmp_path / "ref.csv").read_bytes()


def test_a_second_run_on_the_same_output_is_refused(exported, tmp_path, capsys):
    source = tmp_path / "r.csv"
    reviews_frame(3).to_csv(source, index=False)
    with output_lock(tmp_path / "r.scored.csv"):
        assert main([str(source), "--model", str(exported["int8"])]) == 2
    assert "another score-csv run is writing" in capsys.readouterr().err
    assert main([str(source), "--model", str(exported["int8"])]) == 0  # the lock went with the first run
    assert not list(tmp_path.glob(".*.lock"))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("reviews.2024.csv", "reviews.2024.scored.csv"),
        ("reviews.2023.csv", "reviews.2023.scored.csv"),
        ("r.tsv", "r.scored.tsv"),
        ("r.jsonl", "r.scored.jsonl"),
        ("r.parquet", "r.scored.parquet"),
        ("r.json", "r.scored.json"),
    ],
)
def test_default_output_keeps_the_whole_stem_and_the_format(name, expected):
    assert Path(BatchConfig(input=f"data/{name}").output) == Path("data") / expected


def test_json_array_files_are_read_and_written(exported, tmp_path):
    rows = [{"id": i, "review": "great film" if i % 2 else "awful, boring"} for i in range(7)]
    source = tmp_path / "r.json"
    source.write_text(json.dumps(rows, indent=2))
    assert main([str(source), "--model", str(exported["none"]), "--chunk-rows", "3"]) == 0
    out = json.loads((tmp_path / "r.scored.json").read_text())
    assert [r["id"] for r in out] == list(range(7)) and all(r["status"] == "ok" for r in out)
    assert [r["label"] for r in out] == [
        p.label for p in Scorer.load(exported["none"]).predict([r["review"] for r in rows])
    ]
    not_array = tmp_path / "one.json"
    not_array.write_text('{"review": "great"}')
    assert main([str(not_array), "--model", str(exported["none"])]) == 2


def test_duplicate_headers_are_made_unique_and_headers_escaped(exported, tmp_path):
    source = tmp_path / "dup.csv"
    source.write_text("text,text,=cmd\ngreat film,awful,1\n")
    assert main([str(source), "--model", str(exported["int8"])]) == 0
    lines = (tmp_path / "dup.scored.csv").read_text().splitlines()
    assert lines[0] == "text,text.1,'=cmd,label,score,confidence,status"
    assert lines[1].startswith("great film,awful,1,")


def test_numbers_are_never_scored_as_reviews(exported, tmp_path, capsys):
    source = tmp_path / "n.csv"
    source.write_text("id,reviewer,what_they_said,stars\n1,ann,loved it,5\n2,bob,hated it,1\n")
    assert main([str(source), "--model", str(exported["int8"])]) == 2
    assert "could not find the text column" in capsys.readouterr().err
    assert main([str(source), "--model", str(exported["int8"]), "--text-column", "id"]) == 0
    out = pd.read_csv(tmp_path / "n.scored.csv", dtype=str, keep_default_na=False)
    assert out["status"].tolist() == ["skipped: no words"] * 2 and (out["label"] == "").all()
    ids_first = tmp_path / "ids.csv"
    ids_first.write_text("text,review,when\n1,great movie,2024-01-01\n2,awful,2024-01-02\n")
    assert main([str(ids_first), "--model", str(exported["int8"])]) == 0  # `text` holds ids: `review` is read
    out = pd.read_csv(tmp_path / "ids.scored.csv", dtype=str, keep_default_na=False)
    assert out["status"].tolist() == ["ok", "ok"]
    words = tmp_path / "w.csv"
    words.write_text('review\n"1,234"\n4/5\n$12\n50%\n2024-01-01\n10/10 great\n')
    assert main([str(words), "--model", str(exported["int8"])]) == 0
    statuses = pd.read_csv(tmp_path / "w.scored.csv")["status"].tolist()
    assert statuses == ["skipped: no words"] * 5 + ["ok"]


def test_hostile_csv_corners(exported, tmp_path, capsys):
    model = ["--model", str(exported["int8"])]
    header = tmp_path / "h.csv"
    header.write_text('"id,text\n1,x\n')  # the header's quote never closes: no row may vanish silently
    assert main([str(header), *model]) == 2
    assert "opens a quote that is never closed" in capsys.readouterr().err
    blank = tmp_path / "b.csv"
    blank.write_text("id,text\n1,good\n   \n\t\n2,bad\n")
    assert main([str(blank), *model]) == 0
    assert pd.read_csv(tmp_path / "b.scored.csv")["id"].tolist() == [1, 2]  # as pandas reads it
    assert main([str(blank), *model, "--output", str(blank / "x.csv")]) == 2
    assert main([str(blank), *model, "--output", "/proc/no/such/x.csv"]) == 2
    assert main([str(tmp_path), *model]) == 2
    assert "is a folder" in capsys.readouterr().err
    utf16 = tmp_path / "u.csv"
    utf16.write_bytes("text\ngreat\n".encode("utf-16"))
    assert main([str(utf16), *model, "--encoding", "utf-8"]) == 2 and "--encoding utf-16" in capsys.readouterr().err
    assert main([str(utf16), *model, "--overwrite"]) == 0  # auto: its BOM says UTF-16
    assert main([str(utf16), *model, "--encoding", "utf-16", "--overwrite"]) == 0


def test_json_corners_big_integers_items_and_trailing_text(exported, tmp_path, capsys):
    model = ["--model", str(exported["int8"])]
    big = tmp_path / "big.jsonl"
    big.write_text('{"id": 18446744073709551615, "text": "great"}\n{"id": 1, "text": "awful"}\n')
    assert main([str(big), *model, "--output", str(tmp_path / "big.parquet")]) == 0
    assert pq.read_table(tmp_path / "big.parquet").column("id").to_pylist() == ["18446744073709551615", "1"]
    items = tmp_path / "items.json"
    items.write_text('[{"text": "great"}, 5, {"text": "awful"}]')
    assert main([str(items), *model]) == 2
    assert "malformed input at item 2: a JSON int, not an object" in capsys.readouterr().err
    assert main([str(items), *model, "--on-bad-lines", "report"]) == 0
    assert json.loads((tmp_path / "items.scored.json").read_text())[1]["status"].startswith("bad item 2:")
    junk = tmp_path / "junk.json"
    junk.write_text('[{"text": "great"}] garbage')
    assert main([str(junk), *model]) == 2 and "text after the end of the JSON array" in capsys.readouterr().err


def test_a_resumed_run_reports_its_own_speed_and_parquet_keeps_nan(exported, tmp_path):
    import pyarrow as pa

    from review_sentiment.scoring import Summary

    summary = Summary(rows=10, scored=10, scored_now=4, seconds=2.0)
    assert "2.0 reviews/s" in summary.text()
    source = tmp_path / "nan.parquet"
    pq.write_table(pa.table({"text": ["great", "", "awful"], "x": [float("nan"), 1.5, None]}), source)
    assert main([str(source), "--model", str(exported["int8"])]) == 0
    out = pq.read_table(tmp_path / "nan.scored.parquet")
    x = out.column("x").to_pylist()
    assert x[0] != x[0] and x[1:] == [1.5, None]  # NaN stays NaN, null stays null
    assert out.column("score").to_pylist()[1] is None  # a row with no score has a null score


def test_broken_pipe_is_not_a_traceback(exported, tmp_path):
    source = tmp_path / "r.csv"
    reviews_frame(3000).to_csv(source, index=False)
    pipeline = f"{' '.join(SCORE_CSV)} {source} --model {exported['int8']} --output - --chunk-rows 100 | head -c 100"
    result = subprocess.run(["bash", "-c", pipeline], capture_output=True, text=True, timeout=300)
    assert "Traceback" not in result.stderr


def test_json_output_is_strict_json_whatever_the_values(exported, tmp_path):
    import datetime
    import decimal

    import pyarrow as pa

    source = tmp_path / "odd.parquet"
    table = pa.table(
        {
            "text": [
                "great film",
                "awful",
                "bad \ud800 movie".encode("utf-16", "surrogatepass").decode("utf-16", "replace"),
            ],
            "v": [float("inf"), float("-inf"), float("nan")],
            "when": [[datetime.datetime(2024, 1, 1)], [], None],
            "price": pa.array([{"d": decimal.Decimal("1.50")}, None, None]),
        }
    )
    pq.write_table(table, source)
    for fmt in ("json", "jsonl", "csv"):
        out = tmp_path / f"odd.{fmt}"
        assert main([str(source), "--model", str(exported["int8"]), "--output", str(out)]) == 0
    rows = json.loads((tmp_path / "odd.json").read_text(), parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    assert [r["v"] for r in rows] == [None, None, None] and rows[0]["when"] == ["2024-01-01 00:00:00"]
    lone = tmp_path / "sur.jsonl"
    lone.write_text('{"text": "bad \\ud800 movie awful", "x": "\\udc00"}\n')
    assert main([str(lone), "--model", str(exported["int8"]), "--output", str(tmp_path / "sur.csv")]) == 0
    out = pd.read_csv(tmp_path / "sur.csv", dtype=str)
    assert out["status"].tolist() == ["ok"] and out["x"][0] == "\ufffd"


def test_min_confidence_sets_unsure_rows_aside_and_labels_give_accuracy(bag_of_words_model, tmp_path, capsys):
    """Bag-of-words logits (0, Σ±1): two cue words are 88% sure, one 73%, a cancelled pair 50%."""
    rows = pd.DataFrame(
        {
            "review": ["great wonderful", "awful", "great awful", "loved superb", "boring dull", "12345"],
            "gold": ["pos", "negative", "1", "0", "0", "1"],
        }
    )
    source = tmp_path / "labelled.csv"
    rows.to_csv(source, index=False)
    args = [str(source), "--model", str(bag_of_words_model), "--min-confidence", "0.8", "--label-column", "gold"]
    assert main(args) == 0
    out = pd.read_csv(tmp_path / "labelled.scored.csv")
    assert out["status"].tolist() == ["ok", "uncertain", "uncertain", "ok", "ok", "skipped: no words"]
    assert out["label"].tolist()[:5] == ["positive", "negative", "negative", "positive", "negative"]
    summary = capsys.readouterr().err
    # Independently: the five scored rows, and the three confident ones.
    scored = out[out["status"].isin(["ok", "uncertain"])]
    gold = scored["gold"].map({"pos": "positive", "negative": "negative", "1": "positive", "0": "negative"})
    confident = scored["status"] == "ok"
    overall, sure = (gold == scored["label"]).mean(), (gold == scored["label"])[confident].mean()
    assert "uncertain 2, below 0.8" in summary
    assert f"accuracy {overall:.2%} on 5 labelled, {sure:.2%} on the 3 at or above 0.8" in summary


def test_min_confidence_and_label_column_are_checked(bag_of_words_model, tmp_path, capsys):
    source = tmp_path / "r.csv"
    source.write_text("review\ngreat\n")
    assert main([str(source), "--model", str(bag_of_words_model), "--min-confidence", "80"]) == 2
    assert "--min-confidence must be between 0 and 1" in capsys.readouterr().err
    assert main([str(source), "--model", str(bag_of_words_model), "--label-column", "gold"]) == 2
    assert "label column 'gold' not found" in capsys.readouterr().err
    assert not (tmp_path / "r.scored.csv").exists()


def test_gold_counts_survive_missing_labels_and_name_unknown_values():
    """Ray hands frames whose label column is a string array with NA where a row was not scored."""
    from review_sentiment.scoring import Summary, result_names

    names = result_names(["review", "gold"])
    frame = pd.DataFrame(
        {
            "review": ["great", "", "awful", "fine"],
            "gold": ["pos", "neg", "yes", None],
            names["label"]: pd.array(["positive", None, "negative", "positive"], dtype="string"),
            names["status"]: ["ok", "skipped: empty", "uncertain", "ok"],
        }
    )
    summary = Summary(label_column="gold", min_confidence=0.8)
    summary.record(Summary.counts(frame, names, frame["gold"], ("negative", "positive")))
    assert summary.gold["labelled"] == 1 and summary.gold["correct"] == 1 and summary.gold["unrecognised"] == 1
    assert "1 value(s) of 'gold' name no label (e.g. 'yes')" in summary.gold_warning()
