"""What a first training run meets (issue 14): no network fails in a second and in one line, progress
shows within seconds, and a short run's training curves can be read."""

from __future__ import annotations

import json
import logging
from itertools import pairwise
from types import SimpleNamespace

import matplotlib.pyplot as plt
import pytest
from huggingface_hub import constants

from review_sentiment.cli import main
from review_sentiment.errors import UserError
from review_sentiment.train import data, loop, modeling
from review_sentiment.train.report import plot_training_curves, training_curves_figure

from ..conftest import toy_reviews, train_args


class Probe:
    """A stand-in for the Hub probe: records the timeouts it was given, answers `reachable`."""

    def __init__(self, reachable: bool) -> None:
        self.reachable = reachable
        self.timeouts: list[float] = []

    def __call__(self, timeout: float) -> bool:
        self.timeouts.append(timeout)
        return self.reachable


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """Online mode (no offline switch) over empty caches, the probe faked, and every library loader
    replaced by one that records its calls: nothing here can touch the network."""
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setattr("datasets.config.HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))
    calls: list[tuple[str, tuple, dict]] = []

    def recorder(what: str):
        def record(*args, **kwargs):
            calls.append((what, args, kwargs))
            raise OSError(f"{what} was called")

        return record

    monkeypatch.setattr(modeling.AutoTokenizer, "from_pretrained", recorder("AutoTokenizer"))
    monkeypatch.setattr(modeling.AutoModelForSequenceClassification, "from_pretrained", recorder("AutoModel"))
    monkeypatch.setattr("datasets.load_dataset", recorder("load_dataset"))
    probe = Probe(reachable=False)
    monkeypatch.setattr(data, "hub_reachable", probe)
    return SimpleNamespace(probe=probe, calls=calls, cache=tmp_path / "hub-cache", monkeypatch=monkeypatch)


def _cache_model(cache, repo: str) -> None:
    """A Hub cache entry for `repo` as huggingface_hub lays it out: refs/main and a snapshot's config.json."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("abc123")
    (folder / "snapshots" / "abc123").mkdir(parents=True)
    (folder / "snapshots" / "abc123" / "config.json").write_text("{}")


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert not [line for line in err if "Retrying" in line or "WARNING" in line or "Traceback" in line], err
    assert [line for line in err if line.startswith("error:")] == [err[-1]], err
    return err[-1]


def test_an_unreachable_hub_fails_fast_for_a_base_model_not_in_the_cache(hub, tiny_base, toy_csv, tmp_path, capsys):
    args = [*train_args(tiny_base, toy_csv, tmp_path / "out"), "--base-model", "nobody/not-cached-model"]
    assert main(args) == 2
    line = _one_error_line(capsys)
    assert "base model 'nobody/not-cached-model' could not be fetched from the Hugging Face Hub" in line
    assert f"{constants.ENDPOINT} is unreachable" in line and "not in the local cache" in line
    assert "local model folder" in line and "--base-model minilm" in line
    # Failed fast: one short probe, and transformers (whose retries take half a minute) never asked.
    assert hub.probe.timeouts == [data.HUB_PROBE_SECONDS] and data.HUB_PROBE_SECONDS <= 3
    assert hub.calls == []


def test_an_unreachable_hub_fails_fast_for_a_hub_dataset_not_in_the_cache(hub, tiny_base, tmp_path, capsys):
    assert main(train_args(tiny_base, "imdb", tmp_path / "out")) == 2  # type: ignore[arg-type]
    line = _one_error_line(capsys)
    assert "dataset 'imdb' could not be fetched from the Hugging Face Hub" in line
    assert "unreachable" in line and "CSV/TSV/Parquet/JSONL file" in line
    assert hub.probe.timeouts == [data.HUB_PROBE_SECONDS]
    assert hub.calls == []


def test_hf_hub_offline_reads_the_cache_only_and_never_probes(hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="HF_HUB_OFFLINE is set, and it is not in the local cache"):
        modeling.base_model_source("nobody/not-cached-model")
    _cache_model(hub.cache, "somebody/cached-model")
    assert modeling.base_model_source("somebody/cached-model") == ("somebody/cached-model", True)
    assert hub.probe.timeouts == []


@pytest.mark.parametrize(("reachable", "cache_only"), [(False, True), (True, False)])
def test_a_cached_base_model_is_loaded_from_the_cache_only_when_the_hub_is_unreachable(hub, reachable, cache_only):
    hub.probe.reachable = reachable
    _cache_model(hub.cache, "somebody/cached-model")
    with pytest.raises(UserError):
        modeling.load_tokenizer("somebody/cached-model")  # the recorder refuses, after being asked
    assert hub.calls[0][1] == ("somebody/cached-model",)
    assert hub.calls[0][2]["local_files_only"] is cache_only
    assert len(hub.probe.timeouts) == 1


def test_a_cached_hub_dataset_is_read_in_datasets_offline_mode_when_the_hub_is_unreachable(hub, tmp_path):
    import datasets

    (tmp_path / "datasets-cache" / "stanfordnlp___imdb" / "plain_text" / "0.0.0" / "abc").mkdir(parents=True)
    seen = []

    def load_dataset(repo, split):
        seen.append((repo, split, datasets.config.HF_HUB_OFFLINE))
        return SimpleNamespace(to_pandas=lambda: toy_reviews(20))

    hub.monkeypatch.setattr("datasets.load_dataset", load_dataset)
    assert len(data.load_reviews("imdb")) == 20
    assert seen == [("stanfordnlp/imdb", "train", True)]
    assert datasets.config.HF_HUB_OFFLINE is False  # restored after the call
    assert hub.probe.timeouts == [data.HUB_PROBE_SECONDS]


@pytest.mark.parametrize(
    ("answer", "reachable"),
    [(ConnectionError("Failed to resolve 'huggingface.co'"), False), (200, True), (401, True), (503, False)],
)
def test_the_probe_is_one_short_request_through_huggingface_hubs_session(monkeypatch, answer, reachable):
    requests_made = []

    def head(url, timeout):
        requests_made.append((url, timeout))
        if isinstance(answer, Exception):
            raise answer
        return SimpleNamespace(status_code=answer)

    monkeypatch.setattr("huggingface_hub.utils.get_session", lambda: SimpleNamespace(head=head))
    assert data.hub_reachable(timeout=1.5) is reachable
    assert requests_made == [(constants.ENDPOINT, 1.5)]


class Clock:
    """A fake `time` for the loop: each reading moves `tick` seconds on, whatever the real clock did."""

    def __init__(self, tick: float) -> None:
        self.now, self.tick = 1000.0, tick

    def monotonic(self) -> float:
        self.now += self.tick
        return self.now


@pytest.mark.parametrize("tick", [0.0, 1.0])
def test_progress_is_logged_at_the_first_step_and_after_a_few_seconds_of_work(
    tiny_base, toy_csv, tmp_path, monkeypatch, caplog, tick
):
    monkeypatch.setattr(loop, "time", Clock(tick))
    out = tmp_path / "run"
    args = ["--epochs", "1", "--eval-every", "0", "--log-every", "1000", "--max-samples", "80"]
    with caplog.at_level(logging.INFO, logger="review_sentiment"):
        assert main(train_args(tiny_base, toy_csv, out, *args)) == 0
    rows = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if r["kind"] == "train"]
    total = steps[-1]
    assert total == 9  # 72 training reviews in batches of 8
    messages = [r.getMessage() for r in caplog.records]
    first = next(i for i, m in enumerate(messages) if m.startswith(f"step 1/{total} loss"))
    assert any(m.startswith("preparing: reading") for m in messages[:first])
    assert any(m.startswith("ready in") and "reviews tokenized" in m for m in messages[:first])
    if tick == 0.0:  # no time passes: only --log-every's rule (never here) and the first and last step
        assert steps == [1, total]
    else:  # a second per reading of the clock: a row well before --log-every's 1000 steps
        assert steps[0] == 1 and 1 < steps[1] < total
        assert all(later - earlier <= 5 for earlier, later in pairwise(steps))
        assert any(m.startswith(f"step {steps[1]}/{total} loss") for m in messages)


def _train_row(step: int, loss: float) -> dict:
    return {"kind": "train", "step": step, "epoch": 0, "loss": loss, "lr": 1e-4, "reviews_per_s": 10.0}


def _eval_row(step: int, accuracy: float) -> dict:
    return {"kind": "eval", "step": step, "epoch": 0, "val_accuracy": accuracy, "val_loss": 0.6}


@pytest.mark.parametrize(
    "rows",
    [[_train_row(12, 0.69), _eval_row(12, 0.75)], [_train_row(12, 0.69)], [_eval_row(1, 0.5)], []],
    ids=["one-step-with-eval", "one-step", "one-eval-at-step-1", "empty"],
)
def test_a_short_runs_curves_start_at_step_0_with_every_point_marked(rows):
    fig = training_curves_figure(rows)
    try:
        loss_ax, acc_ax = fig.axes
        last = max((r["step"] for r in rows), default=0)
        for ax in (loss_ax, acc_ax):
            left, right = ax.get_xlim()
            assert left == 0 and right > last and right - left >= 1
        drawn = [line for ax in fig.axes for line in ax.get_lines() if len(line.get_xdata())]
        assert drawn or not rows
        for line in drawn:
            assert line.get_marker() not in (None, "None", "", " "), line.get_label()
        points = {(ax.get_title(), x, y) for ax in fig.axes for line in ax.get_lines() for x, y in line.get_xydata()}
        for row in rows:
            if row["kind"] == "eval":
                assert ("validation accuracy", row["step"], row["val_accuracy"]) in points
                bottom, top = acc_ax.get_ylim()
                assert bottom < row["val_accuracy"] < top
            else:
                assert ("loss", row["step"], row["loss"]) in points
                assert loss_ax.get_ylim()[0] == 0 and loss_ax.get_ylim()[1] > row["loss"]
    finally:
        plt.close(fig)


def test_training_curves_png_is_written_from_a_one_row_history(tmp_path):
    history = tmp_path / "history.jsonl"
    history.write_text(json.dumps(_train_row(12, 0.69)) + "\n")
    path = plot_training_curves(history, tmp_path / "training_curves.png")
    assert path.stat().st_size > 1000
