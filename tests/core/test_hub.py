"""`sentiment push`: which folders go up, the card and metadata they carry, and what is asked of the Hub (faked)."""

import inspect
import json
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from huggingface_hub import HfApi, ModelCard
from huggingface_hub.errors import HfHubHTTPError

from review_sentiment.card import write_model_card
from review_sentiment.cli import main
from review_sentiment.manifest import TRAINING_MANIFEST
from review_sentiment.scorer import Scorer

from .test_cli import HEAVY

LOCAL_DATA = "/home/someone/data/imdb_train.parquet"
LOCAL_BASE = "/home/someone/.venv/lib/python3.12/site-packages/tiny-bert"
ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:tmp|home|work|root|Users|var|private)/")
PEFT_BOILERPLATE = f"---\nbase_model: {LOCAL_BASE}\nlibrary_name: peft\n---\n# Model Card for Model ID\n" + (
    "- **Developed by:** [More Information Needed]\n" * 39
)


class FakeHub:
    """Stands in for huggingface_hub.HfApi: binds each call to the real method's signature, records it,
    and raises `error` from the call named in `fail`. `cards` keeps README.md as each upload found it, and
    `uploads` a copy of each uploaded folder (the staged folder push uploads is gone once it returns)."""

    calls: list[tuple[str, tuple, dict]]
    cards: list[str]
    uploads: list[Path]
    root: Path
    fail: str | None = None
    error: Exception = RuntimeError("500 Server Error\nmore detail")

    def _record(self, name: str, *args, **kwargs) -> None:
        inspect.signature(getattr(HfApi, name)).bind(self, *args, **kwargs)
        FakeHub.calls.append((name, args, kwargs))
        if name == FakeHub.fail:
            raise FakeHub.error

    def create_repo(self, *args, **kwargs) -> None:
        self._record("create_repo", *args, **kwargs)

    def upload_folder(self, *args, **kwargs) -> None:
        FakeHub.cards.append((Path(kwargs["folder_path"]) / "README.md").read_text())
        copy = FakeHub.root / f"upload-{len(FakeHub.uploads)}"
        FakeHub.uploads.append(Path(shutil.copytree(kwargs["folder_path"], copy)))  # linked files as their bytes
        self._record("upload_folder", *args, **kwargs)


@pytest.fixture
def hub(monkeypatch, tmp_path_factory):
    FakeHub.calls, FakeHub.cards, FakeHub.uploads, FakeHub.fail = [], [], [], None
    FakeHub.root = tmp_path_factory.mktemp("hub")
    monkeypatch.setattr("huggingface_hub.HfApi", FakeHub)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: "hf_fake")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)  # tests/conftest.py sets it
    return FakeHub


def training_manifest(source: str = LOCAL_DATA, base: str = LOCAL_BASE) -> dict:
    """What `sentiment train` writes to training_manifest.json, trained on `source` from `base`."""
    part = {"source": source, "rows": 90, "balance": {"negative": 45, "positive": 45}}
    part |= {"dropped_empty": 0, "dropped_duplicates": 1}
    return {
        "text_spec": {"max_length": 64, "truncation": "head+tail", "labels": ["negative", "positive"]},
        "base_model": base,
        "data": {"train": part, "validation": {**part, "rows": 10}, "split": "stratified 10% hold-out, seed 42"},
        "metrics": {"accuracy": 0.9, "macro_f1": 0.8989, "roc_auc": 0.95, "count": 10, "warning": None},
        "training": {"device": "cpu", "steps": 12, "best_step": 12, "stop_reason": "completed"},
        "hyperparameters": {"dataset": source, "output": "/home/someone/runs/x", "base_model": base, "lr": 3e-4},
        "package_version": "test",
    }


def _training_folder(root: Path, kind: str, manifest: dict) -> Path:
    folder = root / kind
    folder.mkdir(parents=True)
    (folder / TRAINING_MANIFEST).write_text(json.dumps(manifest))
    (folder / "tokenizer.json").write_text("{}")
    if kind == "adapter":
        (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "minilm"}))
        (folder / "adapter_model.safetensors").write_bytes(b"weights")
        (folder / "README.md").write_text(PEFT_BOILERPLATE)
    else:
        (folder / "config.json").write_text("{}")
        (folder / "model.safetensors").write_bytes(b"weights")
    return folder


@pytest.fixture
def onnx_folder(bag_of_words_model, tmp_path) -> Path:
    """An exported folder whose manifest (and card) come from a run on the Hub's IMDB from the bundled MiniLM."""
    folder = tmp_path / "onnx"
    shutil.copytree(bag_of_words_model, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    training = training_manifest("stanfordnlp/imdb", "minilm")
    manifest |= {key: training[key] for key in ("base_model", "data", "hyperparameters")}
    manifest["validation_metrics"] = {**training["metrics"], "measured_on": "fp32 ONNX, 10 reviews"}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    write_model_card(folder / "README.md", manifest, "onnx", manifest["validation_metrics"], "\n## ONNX export\n")
    return folder


def _push(folder: Path, *extra: str) -> int:
    return main(["push", str(folder), "--repo", "someone/sentiment", *extra])


def test_push_uploads_an_export_as_a_model_repo_with_its_metadata(onnx_folder, hub, capsys):
    assert _push(onnx_folder, "--private") == 0
    assert capsys.readouterr().out.splitlines()[-1] == "https://huggingface.co/someone/sentiment"
    (create, args, kwargs), (upload, _, uploaded) = hub.calls
    assert (create, upload) == ("create_repo", "upload_folder") and args == ("someone/sentiment",)
    assert kwargs["repo_type"] == "model" and kwargs["private"] is True and kwargs["exist_ok"] is True
    assert Path(uploaded["folder_path"]).name == onnx_folder.name and uploaded["repo_type"] == "model"
    assert not Path(uploaded["folder_path"]).exists()  # a staged copy, removed after the upload
    assert uploaded["repo_id"] == "someone/sentiment"
    card = ModelCard(hub.cards[0])  # the Hub's own parser of the front matter
    assert card.data.library_name == "onnx" and card.data.pipeline_tag == "text-classification"
    assert card.data.license == "apache-2.0" and {"onnx", "sentiment-analysis"} <= set(card.data.tags)
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert card.data.datasets == ["stanfordnlp/imdb"]  # a Hub id is kept as it is
    accuracy = next(r for r in card.data.eval_results if r.metric_type == "accuracy")
    assert accuracy.metric_value == 0.9 and accuracy.dataset_type == "stanfordnlp/imdb"
    assert "## ONNX export" in hub.cards[0]
    assert _push(onnx_folder) == 0 and hub.calls[2][2]["private"] is False


def test_push_writes_our_card_over_peft_boilerplate_and_for_a_bare_merged_folder(tmp_path, hub, caplog):
    caplog.set_level(logging.WARNING, logger="review_sentiment")
    for kind, library in (("adapter", "peft"), ("merged", "transformers")):
        folder = _training_folder(tmp_path, kind, training_manifest())
        assert _push(folder) == 0
        card = (folder / "README.md").read_text()
        assert hub.cards[-1] == card and (hub.uploads[-1] / "README.md").read_text() == card
        assert "More Information Needed" not in card and "/home/someone" not in card
        data = ModelCard(card).data
        assert data.library_name == library and data.datasets is None and data.base_model is None
        assert next(r for r in data.eval_results if r.metric_type == "accuracy").dataset_type == "local"
        assert "imdb_train.parquet (a local file)" in card and "tiny-bert (a local model folder)" in card
    assert "PeftModel.from_pretrained" in (tmp_path / "adapter" / "README.md").read_text()
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "the adapter's base model is tiny-bert (a local model folder), not on the Hub" in warning
    # A card of ours is left as the user edited it.
    (tmp_path / "merged" / "README.md").write_text(card + "\nEdited by hand.\n")
    assert _push(tmp_path / "merged") == 0 and hub.cards[-1].endswith("Edited by hand.\n")


EVAL_FILE = "/home/someone/data/held_out.csv"
PUBLIC_OPTIONS = {"dataset": "imdb_train.parquet", "output": "x", "base_model": "tiny-bert", "lr": 3e-4}


def _json_and_cards(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in folder.rglob("*") if p.suffix in (".json", ".md")}


def _assert_no_training_machine_path(folder: Path) -> None:
    """No absolute path, nor the run's relative output folder, in any JSON file or card of `folder`."""
    for name, text in _json_and_cards(folder).items():
        assert not ABSOLUTE_PATH.search(text) and "runs/x" not in text and "someone" not in text, name


def test_an_exports_json_goes_up_with_public_names_and_still_loads(onnx_folder, hub, caplog):
    caplog.set_level(logging.INFO, logger="review_sentiment")
    manifest = json.loads((onnx_folder / "manifest.json").read_text())
    training = training_manifest()
    manifest |= {key: training[key] for key in ("base_model", "data", "hyperparameters")}
    manifest["hyperparameters"] |= {"output": "runs/x", "eval_file": EVAL_FILE}  # output as given: relative
    manifest["data"]["validation"]["source"] = EVAL_FILE
    manifest["data"]["split"] = f"eval file {EVAL_FILE}"
    manifest["source_model"] = "/home/someone/runs/x/merged"
    (onnx_folder / "manifest.json").write_text(json.dumps(manifest))
    write_model_card(onnx_folder / "README.md", manifest, "onnx", manifest["validation_metrics"])
    before = _json_and_cards(onnx_folder)
    assert _push(onnx_folder) == 0
    uploaded = hub.uploads[-1]
    assert sorted(p.name for p in uploaded.iterdir()) == sorted(p.name for p in onnx_folder.iterdir())
    _assert_no_training_machine_path(uploaded)
    public = json.loads((uploaded / "manifest.json").read_text())
    assert public["base_model"] == "tiny-bert" and public["source_model"] == "merged"
    assert public["hyperparameters"] == PUBLIC_OPTIONS | {"eval_file": "held_out.csv"}
    assert [public["data"][part]["source"] for part in ("train", "validation")] == [
        "imdb_train.parquet",
        "held_out.csv",
    ]
    assert public["data"]["split"] == "eval file held_out.csv"
    kept = set(manifest) - {"base_model", "data", "hyperparameters", "source_model"}
    assert {key: public[key] for key in kept} == {key: manifest[key] for key in kept}
    assert Scorer.load(uploaded).manifest == public  # schema and runtime files' sha256 still hold
    assert _json_and_cards(onnx_folder) == before  # the folder pushed is left as it is
    assert "uploading manifest.json with the training machine's paths replaced by public names" in caplog.text


def test_training_folders_json_goes_up_with_public_names_and_the_local_base_warning_stays(tmp_path, hub, caplog):
    caplog.set_level(logging.INFO, logger="review_sentiment")
    manifest = training_manifest()
    manifest["hyperparameters"]["output"] = "runs/x"  # as given: relative to where training ran
    for kind in ("adapter", "merged"):
        _training_folder(tmp_path, kind, manifest)
    adapter_config = json.dumps({"base_model_name_or_path": LOCAL_BASE, "r": 4})
    (tmp_path / "adapter" / "adapter_config.json").write_text(adapter_config)
    warnings = {}
    for kind, cleaned in (("adapter", "adapter_config.json, training_manifest.json"), ("merged", TRAINING_MANIFEST)):
        caplog.clear()
        assert _push(tmp_path / kind) == 0
        _assert_no_training_machine_path(hub.uploads[-1])
        public = json.loads((hub.uploads[-1] / TRAINING_MANIFEST).read_text())
        assert public["base_model"] == "tiny-bert" and public["hyperparameters"] == PUBLIC_OPTIONS
        assert public["data"]["train"]["source"] == public["data"]["validation"]["source"] == "imdb_train.parquet"
        assert f"uploading {cleaned} with the training machine's paths replaced" in caplog.text
        warnings[kind] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    config = json.loads((hub.uploads[0] / "adapter_config.json").read_text())
    assert config == {"base_model_name_or_path": "tiny-bert", "r": 4}
    assert (tmp_path / "adapter" / "adapter_config.json").read_text() == adapter_config
    # Whoever loads the adapter must bring that base model: push still says so. merged/ needs no base.
    (warning,) = warnings["adapter"]
    assert "the adapter's base model is tiny-bert (a local model folder), not on the Hub" in warning
    assert warnings["merged"] == []


def test_the_bundled_minilm_alias_goes_up_as_its_hub_id(tmp_path, hub, caplog):
    caplog.set_level(logging.WARNING, logger="review_sentiment")
    folder = _training_folder(tmp_path, "adapter", training_manifest("stanfordnlp/imdb", "minilm"))
    assert _push(folder) == 0
    config = json.loads((hub.uploads[-1] / "adapter_config.json").read_text())
    public = json.loads((hub.uploads[-1] / TRAINING_MANIFEST).read_text())
    assert config["base_model_name_or_path"] == public["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert public["data"]["train"]["source"] == "stanfordnlp/imdb" and public["hyperparameters"]["output"] == "x"
    assert not caplog.records  # a base model on the Hub: no warning


def test_push_refuses_other_folders_in_one_line_before_any_hub_call(tmp_path, onnx_folder, hub, capsys):
    run = tmp_path / "run"
    _training_folder(run, "merged", training_manifest())
    (tmp_path / "notes").mkdir()
    no_weights = _training_folder(tmp_path / "w", "adapter", training_manifest())
    (no_weights / "adapter_model.safetensors").unlink()
    leaky = tmp_path / "leaky"
    shutil.copytree(onnx_folder, leaky)
    manifest = json.loads((leaky / "manifest.json").read_text())
    manifest["data"]["train"]["source"] = LOCAL_DATA
    (leaky / "manifest.json").write_text(json.dumps(manifest))
    (leaky / "README.md").write_text((leaky / "README.md").read_text() + f"\nTrained on {LOCAL_DATA}\n")
    cases = [
        (run, "a training run's folder: push its merged/"),
        (tmp_path / "notes", "not a folder that push uploads"),
        (tmp_path / "missing", "model folder not found"),
        (no_weights, "without its weights (adapter_model.safetensors"),
        (leaky, f"names paths of the machine that trained it ({LOCAL_DATA}): export it again"),
    ]
    for folder, message in cases:
        assert _push(folder) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert main(["push", str(onnx_folder), "--repo", "sentiment"]) == 2
    assert "give the owner too" in capsys.readouterr().err
    assert hub.calls == []


def test_offline_and_logged_out_are_one_line_without_a_network_call(onnx_folder, tmp_path, hub, monkeypatch, capsys):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    for folder in (onnx_folder, _training_folder(tmp_path, "adapter", training_manifest())):
        assert _push(folder) == 2
        err = capsys.readouterr().err.strip()
        assert "HF_HUB_OFFLINE is set" in err and len(err.splitlines()) == 1, err
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    assert _push(onnx_folder) == 2
    err = capsys.readouterr().err.strip()
    assert "not logged in" in err and "`hf auth login`" in err and "HF_TOKEN" in err and len(err.splitlines()) == 1
    assert hub.calls == []


def test_the_real_client_offline_gives_one_line(onnx_folder, monkeypatch, capsys):
    """huggingface_hub's own HfApi with HF_HUB_OFFLINE (our check before it left out): no network, one line."""
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("review_sentiment.hub._check_can_reach_hub", lambda: None)
    assert _push(onnx_folder) == 2
    err = capsys.readouterr().err.strip()
    assert "could not create the model repo someone/sentiment: huggingface_hub is in offline mode" in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("step", "error", "message"),
    [
        ("create_repo", requests.ConnectionError("Max retries exceeded\nmore"), "the Hugging Face Hub is unreachable"),
        ("upload_folder", HfHubHTTPError("403 Forbidden", response=requests.Response()), "may not write to"),
        ("upload_folder", RuntimeError("500 Server Error\nmore detail"), "RuntimeError: 500 Server Error"),
    ],
)
def test_hub_errors_are_one_line_naming_the_step(onnx_folder, hub, capsys, step, error, message):
    if isinstance(error, HfHubHTTPError):
        error.response.status_code = 403
    hub.fail, hub.error = step, error
    assert _push(onnx_folder) == 2
    err = capsys.readouterr().err.strip()
    what = "create the model repo someone/sentiment" if step == "create_repo" else f"upload {onnx_folder} to"
    assert f"could not {what}" in err and message in err and len(err.splitlines()) == 1, err


def test_push_help_and_a_refused_push_import_no_heavy_module(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["push", "--help"])
    assert exit_info.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "MODEL_FOLDER" in help_text and "--private" in help_text and "hf auth login" in help_text
    assert "merged/ or adapter/" in help_text and "model-index" in help_text
    code = (
        "import json, sys\n"
        "from review_sentiment.cli import main\n"
        f"assert main(['push', {str(tmp_path)!r}, '--repo', 'a/b']) == 2\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.splitlines()[-1]) == []
