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
import pytest

from review_sentiment.batch import main
from review_sentiment.runtime import Scorer
from review_sentiment.streams import TableReader

from .conftest import toy_reviews

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
    assert main([str(latin), "--model", str(exported["int8"])]) == 2
    assert "not valid utf-8-sig at byte offset 8" in capsys.readouterr().err
    assert main([str(latin), "--model", str(exported["int8"]), "--encoding", "latin-1"]) == 0
    assert pd.read_csv(tmp_path / "latin.scored.csv")["text"][0] == "café was great"


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
