"""`sentiment push`: a model folder to the Hugging Face Hub as a model repo, with its card.

Three kinds of folder go up: an exported ONNX folder (manifest.json, model.onnx, tokenizer, README.md) and
a training run's merged/ or adapter/ (training_manifest.json beside the weights). Everything that can be
checked here is checked before the first Hub call: the folder's kind and files, its card (written from
training_manifest.json when merged/ or adapter/ has none of ours), the offline switch and the token.
What goes up is a staged copy in which the JSON files that name paths of the training machine (the
manifest, an adapter's adapter_config.json) name them by their public names instead; the folder itself
is left as it is.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from .card import (
    hub_model_id,
    local_paths,
    model_name,
    public_manifest,
    public_model_id,
    training_card_metrics,
    write_model_card,
)
from .errors import UserError
from .manifest import MANIFEST, TRAINING_MANIFEST, read_manifest, verify_files

log = logging.getLogger(__name__)

T = TypeVar("T")
CARD = "README.md"
KIND_NAMES = {"onnx": "exported ONNX model", "merged": "merged model", "adapter": "LoRA adapter"}
# The weights each kind of training folder must hold (any one of them).
WEIGHTS = {
    "adapter": ("adapter_model.safetensors", "adapter_model.bin"),
    "merged": ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"),
}
_NOT_A_MODEL = (
    "{folder} is not a folder that push uploads: give an exported ONNX folder (manifest.json, from "
    "`sentiment export`) or a training run's merged/ or adapter/ (training_manifest.json, from `sentiment train`)"
)


def folder_kind(folder: Path) -> str:
    """ "onnx", "merged" or "adapter", from the files in `folder`; anything else is refused in one line."""
    if not folder.is_dir():
        raise UserError(f"model folder not found: {folder}")
    if (folder / MANIFEST).is_file():
        return "onnx"
    if not (folder / TRAINING_MANIFEST).is_file():
        if (folder / "merged").is_dir() or (folder / "adapter").is_dir():
            adapter = " or its adapter/ (the LoRA adapter)" if (folder / "adapter").is_dir() else ""
            raise UserError(
                f"{folder} is a training run's folder: push its merged/ (a plain transformers model){adapter}, "
                "or an ONNX export of it"
            )
        raise UserError(_NOT_A_MODEL.format(folder=folder))
    kind = "adapter" if (folder / "adapter_config.json").is_file() else "merged"
    if kind == "merged" and not (folder / "config.json").is_file():
        raise UserError(_NOT_A_MODEL.format(folder=folder))
    if not any((folder / name).is_file() for name in WEIGHTS[kind]):
        raise UserError(f"{folder} is a {KIND_NAMES[kind]} folder without its weights ({' or '.join(WEIGHTS[kind])})")
    return kind


def _is_our_card(text: str) -> bool:
    """A card with Hub front matter and none of peft's placeholders (peft writes 39 of them into adapter/)."""
    return text.startswith("---\n") and "pipeline_tag: text-classification" in text and "More Information" not in text


def prepare_card(folder: Path, kind: str) -> dict:
    """Check (or, for merged/ and adapter/, write) the folder's card; return the folder's manifest.

    merged/ from `sentiment merge`, or adapter/ from a run older than our adapter card, gets the card
    `sentiment train` writes. A card that names a path of the training machine is refused, not rewritten:
    it may hold the user's own edits.
    """
    if kind == "onnx":
        manifest = read_manifest(folder)
        verify_files(folder, manifest)
    else:
        manifest = json.loads((folder / TRAINING_MANIFEST).read_text())
    card = folder / CARD
    if kind != "onnx" and (not card.is_file() or not _is_our_card(card.read_text())):
        write_model_card(card, manifest, kind, training_card_metrics(manifest))
        log.info("wrote the model card %s", card)
    if not card.is_file():
        raise UserError(f"{folder} has no model card ({CARD}); export it again with `sentiment export`")
    leaked = [path for path in local_paths(manifest) if path in card.read_text()]
    if leaked:
        remedy = "export it again" if kind == "onnx" else f"delete {CARD} and push again to have a new one written"
        raise UserError(f"{card} names paths of the machine that trained it ({', '.join(leaked)}): {remedy}")
    return manifest


def public_json_files(folder: Path, kind: str, manifest: dict) -> dict[str, dict]:
    """The folder's JSON files that name a path of the training machine, as they are uploaded: file name →
    content with those paths replaced by public names (see `card.public_manifest`). Only the manifest and an
    adapter's adapter_config.json are rewritten: the runtime files whose sha256 the manifest holds are not."""
    name = MANIFEST if kind == "onnx" else TRAINING_MANIFEST
    cleaned = {name: public_manifest(manifest)}
    if kind == "adapter":
        config = json.loads((folder / "adapter_config.json").read_text())
        if isinstance(config.get("base_model_name_or_path"), str):
            config["base_model_name_or_path"] = public_model_id(config["base_model_name_or_path"])
        cleaned["adapter_config.json"] = config
    return {name: content for name, content in cleaned.items() if content != json.loads((folder / name).read_text())}


def _place(source: Path, target: Path) -> None:
    """`source` at `target` without copying its bytes where the system allows (weights can be gigabytes)."""
    try:
        os.symlink(source.resolve(), target)
    except OSError:
        shutil.copy2(source, target)


@contextmanager
def staged_copy(folder: Path, replaced: dict[str, dict]) -> Iterator[Path]:
    """A temporary copy of `folder` (files linked) in which each file named in `replaced` holds its new JSON."""
    with tempfile.TemporaryDirectory(prefix="sentiment-push-") as tmp:
        stage = Path(tmp) / folder.name
        stage.mkdir()
        for path in sorted(folder.rglob("*")):
            target = stage / path.relative_to(folder)
            if path.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            elif path.relative_to(folder).as_posix() in replaced:
                target.write_text(json.dumps(replaced[path.relative_to(folder).as_posix()], indent=2) + "\n")
            elif path.is_file():
                _place(path, target)
        yield stage


def _check_repo_id(repo: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo)
    except HFValidationError as error:
        raise UserError(f"--repo {repo!r} is not a Hub repo id: {str(error).splitlines()[0]}") from error
    if repo.count("/") != 1:
        raise UserError(f"--repo {repo!r}: give the owner too, as user/name or organization/name")


def require_token() -> None:
    """Refuse, before any network call, to talk to the Hub without a token (push and space push)."""
    from huggingface_hub import get_token

    if not get_token():
        raise UserError("not logged in to the Hugging Face Hub: run `hf auth login` or set HF_TOKEN")


def _check_can_reach_hub() -> None:
    """Offline mode and a missing token, each refused before any network call."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise UserError("HF_HUB_OFFLINE is set, so huggingface_hub makes no network call: unset it to push")
    require_token()


def _why(error: Exception, repo: str) -> str:
    """One line: what the Hub's (or the network's) error most likely means."""
    names = {cls.__name__ for cls in type(error).__mro__}
    status = getattr(getattr(error, "response", None), "status_code", None)
    first = str(error).splitlines()[0] if str(error) else type(error).__name__
    if "OfflineModeIsEnabled" in names:
        return "huggingface_hub is in offline mode (HF_HUB_OFFLINE is set): unset it to push"
    if names & {"ConnectionError", "Timeout", "ConnectError", "TimeoutException", "ProxyError"}:
        return f"the Hugging Face Hub is unreachable (offline, or a proxy in the way?): {type(error).__name__}"
    if status == 401:
        return "the Hub refused the token (expired or revoked?): run `hf auth login` again or set HF_TOKEN"
    if status == 403:
        return f"the token may not write to {repo} (a read-only token, or someone else's namespace?): {first}"
    return f"{type(error).__name__}: {first}"


def _on_hub(what: str, repo: str, call: Callable[[], T]) -> T:
    try:
        return call()
    except Exception as error:
        raise UserError(f"could not {what}: {_why(error, repo)}") from error


def push_model(folder: Path, repo: str, private: bool = False) -> str:
    """Create (or reuse) the model repo `repo` and upload `folder` with its card; return the repo's URL.

    The JSON files that name paths of the training machine go up with public names instead (a staged copy;
    `folder` is left as it is). An existing repo keeps its visibility: `private` applies when the repo is
    created.
    """
    folder = Path(folder)
    kind = folder_kind(folder)
    _check_repo_id(repo)
    manifest = prepare_card(folder, kind)
    _check_can_reach_hub()
    if kind == "adapter" and not hub_model_id(manifest["base_model"]):
        log.warning(
            "the adapter's base model is %s, not on the Hub: whoever loads the adapter needs that folder too",
            model_name(manifest["base_model"]),
        )
    cleaned = public_json_files(folder, kind, manifest)
    if cleaned:
        log.info(
            "uploading %s with the training machine's paths replaced by public names (%s itself is unchanged)",
            ", ".join(sorted(cleaned)),
            folder,
        )
    from huggingface_hub import HfApi, constants

    api = HfApi()
    _on_hub(
        f"create the model repo {repo}",
        repo,
        lambda: api.create_repo(repo, repo_type="model", private=private, exist_ok=True),
    )
    with staged_copy(folder, cleaned) as stage:
        _on_hub(
            f"upload {folder} to {repo}",
            repo,
            lambda: api.upload_folder(
                repo_id=repo,
                folder_path=str(stage),
                repo_type="model",
                commit_message=f"Upload the {KIND_NAMES[kind]} with `sentiment push`",
            ),
        )
    log.info("pushed the %s in %s to %s", KIND_NAMES[kind], folder, repo)
    return f"{constants.ENDPOINT}/{repo}"
