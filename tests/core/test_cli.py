"""The command line: fast help without the heavy stages, every command described, one line for a missing extra."""

import json
import subprocess
import sys

import pytest

from review_sentiment import errors
from review_sentiment.cli import build_parser, main

HEAVY = (
    "torch",
    "transformers",
    "peft",
    "optimum",
    "datasets",
    "gradio",
    "onnxruntime",
    "matplotlib",
    "ray",
    "numpy",
    "pandas",
    "pyarrow",
    "tokenizers",
)


def test_building_every_parser_imports_no_heavy_stage():
    """`sentiment --help`, `sentiment score --help` and `score-csv --help` build from configs alone."""
    code = (
        "import json, sys\n"
        "from review_sentiment.cli import build_parser\n"
        "from review_sentiment.batch.cli import build_parser as batch_parser\n"
        "build_parser(); batch_parser()\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


@pytest.mark.parametrize("argv", [["--help"], ["score", "--help"], ["train", "--help"], ["export", "--help"]])
def test_help_works(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_every_command_has_a_description_and_states_its_defaults():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name, command in commands.items():
        if name == "score":
            continue  # score-csv's own parser answers `sentiment score --help`
        assert command.description, name
        for action in command._actions:
            if action.default not in (None, False, "==SUPPRESS==") and action.help and action.dest != "help":
                assert "default" in action.help, f"{name} {action.dest}"


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["train", "--dataset", "x.csv"], "train"),
        (["evaluate", "model"], "train"),
        (["export", "model"], "export"),
        (["app"], "app"),
        (["space", "build"], "app"),
    ],
)
def test_a_stage_that_is_not_installed_is_one_line_naming_its_extra(monkeypatch, capsys, argv, extra):
    missing = {"torch", "gradio", "optimum.onnxruntime"}
    monkeypatch.setattr(errors, "_installed", lambda module: module not in missing)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"pip install 'review-sentiment[{extra}]'" in err


def test_score_csv_without_a_runtime_names_cpu_and_gpu(monkeypatch, capsys, tmp_path):
    (tmp_path / "r.csv").write_text("text\nfine\n")
    monkeypatch.setattr(errors, "_installed", lambda module: module != "onnxruntime")
    assert main(["score", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert "review-sentiment[cpu]" in err and "[gpu]" in err
    assert not (tmp_path / "r.scored.csv").exists()


def test_export_without_a_runtime_names_it(monkeypatch, capsys):
    monkeypatch.setattr(errors, "_installed", lambda module: module != "onnxruntime")
    assert main(["export", "model"]) == 2
    assert "review-sentiment[cpu]" in capsys.readouterr().err


def test_evaluation_figures_print_a_row_per_class_and_the_error_in_stars(capsys):
    from review_sentiment.cli import print_metrics

    row = {"precision": 0.5, "recall": 0.25, "f1": 0.3333, "support": 4}
    metrics = {
        "accuracy": 0.75,
        "macro_f1": 0.5,
        "roc_auc": 0.8,
        "count": 12,
        "per_class": {"1": row, "2": row, "10 (the best)": row},
        "mean_absolute_error": 1.25,
        "within_one_class": 0.9,
        "ece": 0.05,
        "brier": 0.2,
        "coverage": [{"coverage": 1.0, "threshold": 0.4, "accuracy": 0.75, "reviews": 12}],
    }
    print_metrics(metrics)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "accuracy 0.7500  macro F1 0.5000  ROC-AUC (macro, one-vs-rest) 0.8000  on 12 reviews"
    assert lines[1] == "mean absolute error 1.2500 (in label units)  within one class 0.9000"
    assert lines[2:5] == [
        f"  {name:<13} precision 0.5000  recall 0.2500  F1 0.3333  support 4" for name in ("1", "2", "10 (the best)")
    ]
    two = {k: v for k, v in metrics.items() if k not in ("mean_absolute_error", "within_one_class")}
    print_metrics({**two, "per_class": {"negative": row, "positive": row}})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("accuracy 0.7500  macro F1 0.5000  ROC-AUC 0.8000")
    assert lines[1] == "  negative  precision 0.5000  recall 0.2500  F1 0.3333  support 4"  # as before N labels
