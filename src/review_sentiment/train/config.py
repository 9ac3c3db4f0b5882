"""The typed configs of the training stage (`sentiment train`, `sentiment evaluate`); torch-free, so
the command-line parser is built from them without importing PyTorch."""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Literal

from ..card import HUB_ID_OF_ALIAS
from ..errors import UserError
from ..text import LABELS, TextSpec, Truncation

# Options that may change between a run and its --resume without changing the result.
RESUME_FREE = {"resume", "overwrite", "time_limit", "stop_after_steps", "device", "log_every"}
# A progress line at least this often, whatever --log-every says: on a CPU one step of a BERT-base can
# take seconds, and 20 steps of silence look like a hang.
LOG_SECONDS = 5.0
# Peak learning rates by method: the adapters start from zero and want more than full fine-tuning, whose
# every weight is already pretrained. Full: the better of 5e-5 and 1e-4 in benchmarks/bench_trials.py.
LORA_LR = 3e-4
FULL_LR = 1e-4
# LoRA's options, None unless given (so that --method full can refuse any of them), and what LoRA runs use.
LORA_OPTIONS = ("lora_r", "lora_alpha", "lora_dropout", "lora_targets")
LORA_DEFAULTS = {"lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.1}


def unused_options(method: str) -> tuple[str, ...]:
    """The options a run of `method` has no use for: neither recorded in its manifest nor compared on resume."""
    return LORA_OPTIONS if method == "full" else ()


@dataclass
class TrainConfig:
    dataset: str = field(
        metadata={"help": "'imdb' or a Hub dataset id, or a CSV/TSV/Parquet/JSONL file or aclImdb folder"}
    )
    output: Path = field(
        default=Path("runs/sentiment"), metadata={"help": "folder for adapter/, merged/, metrics and plots"}
    )
    base_model: str = field(
        default="bert-base-uncased", metadata={"help": "Hub id or local folder; 'minilm' = bundled offline MiniLM-L6"}
    )
    text_column: str | None = field(default=None, metadata={"help": "text column (detected when omitted)"})
    label_column: str | None = field(
        default=None,
        metadata={
            "help": "label column (detected when omitted): two or more classes; 0/1, neg/pos, true/false and "
            "negative/positive are the two classes negative, positive"
        },
    )
    labels: str | None = field(
        default=None,
        metadata={
            "help": "the label names in order, comma-separated (--labels negative,neutral,positive): fixes the "
            "names, their order and the model's classes, and any other value in the label column is an error. "
            "Without it they are found in the data: numbers keep numeric order (1,2,...,10), text is alphabetical"
        },
    )
    eval_file: str | None = field(default=None, metadata={"help": "validation data; default: a stratified hold-out"})
    val_fraction: float = field(default=0.1, metadata={"help": "share held out for validation (stratified, seeded)"})
    max_samples: int | None = field(default=None, metadata={"help": "use a stratified random subset of this many rows"})
    max_length: int = field(default=256, metadata={"help": "tokens per review, special tokens included"})
    truncation: Truncation = field(default="head+tail", metadata={"help": "which part of a long review to keep"})
    epochs: float = field(default=3.0, metadata={"help": "passes over the training data (fractions allowed)"})
    batch_size: int = field(default=16, metadata={"help": "reviews per forward pass"})
    grad_accum: int = field(default=1, metadata={"help": "forward passes per optimizer step"})
    method: Literal["lora", "full"] = field(
        default="lora",
        metadata={
            "help": "'lora' trains low-rank adapters (and the classifier head) and merges them; 'full' trains every "
            "weight of the base model (no adapter/, no merge; merged/ is the trained model)"
        },
    )
    lr: float | None = field(
        default=None,
        metadata={"help": f"peak learning rate (default {LORA_LR:g} with LoRA, {FULL_LR:g} with --method full)"},
    )
    schedule: Literal["linear", "cosine", "constant"] = field(
        default="linear",
        metadata={"help": "learning rate after the warm-up: decays to 0 linearly or on a cosine, or stays"},
    )
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    warmup_ratio: float = field(default=0.06, metadata={"help": "share of steps with linear warm-up"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm"})
    lora_r: int | None = field(
        default=None, metadata={"help": f"LoRA rank (--method lora; default {LORA_DEFAULTS['lora_r']})"}
    )
    lora_alpha: int | None = field(
        default=None, metadata={"help": f"LoRA scaling alpha (--method lora; default {LORA_DEFAULTS['lora_alpha']})"}
    )
    lora_dropout: float | None = field(
        default=None,
        metadata={"help": f"dropout on the LoRA path (--method lora; default {LORA_DEFAULTS['lora_dropout']:g})"},
    )
    lora_targets: list[str] | None = field(
        default=None, metadata={"help": "module names to adapt (default per architecture)"}
    )
    class_weights: Literal["none", "auto"] = field(
        default="none", metadata={"help": "'auto' weights the loss by inverse class frequency"}
    )
    oversample: bool = field(default=False, metadata={"help": "repeat minority-class reviews until balanced"})
    eval_every: int = field(
        default=500, metadata={"help": "evaluate every N optimizer steps (and at each epoch end); 0: epoch ends only"}
    )
    eval_batch_size: int = field(default=64, metadata={"help": "reviews per evaluation batch"})
    patience: int = field(default=3, metadata={"help": "stop after N evaluations without a better accuracy; 0: never"})
    checkpoint_every: int = field(default=100, metadata={"help": "save a resumable checkpoint every N optimizer steps"})
    seed: int = field(default=42, metadata={"help": "seed for the split, shuffling, dropout and LoRA init"})
    device: Literal["auto", "cuda", "cpu"] = field(default="auto", metadata={"help": "'auto' uses CUDA when present"})
    precision: Literal["auto", "fp32", "bf16", "fp16"] = field(
        default="auto",
        metadata={
            "help": "autocast dtype; 'auto': bf16 on GPUs with native bf16 (compute capability 8.0+), else fp16 + loss "
            "scaling; on CPU bf16 where the CPU has native bf16, else fp32. --resume keeps the dtype the run started with"
        },
    )
    deterministic: bool = field(
        default=False,
        metadata={
            "help": "deterministic CUDA kernels, so a --resume on CUDA ends bit-exact like an uninterrupted run; "
            "give it to the first run and again to every --resume of it (a resume keeps the first run's options). "
            "Slower on CUDA; no effect on CPU, where runs are exact already"
        },
    )
    resume: bool = field(default=False, metadata={"help": "continue from the output folder's last checkpoint"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing output folder"})
    time_limit: float | None = field(
        default=None, metadata={"help": "minutes; then finish with the best weights so far (resumable)"}
    )
    stop_after_steps: int | None = field(
        default=None, metadata={"help": "optimizer steps; then finish like --time-limit"}
    )
    log_every: int = field(
        default=20,
        metadata={
            "help": f"log training loss every N optimizer steps, and at the first step and after every "
            f"{LOG_SECONDS:g} s of training, whichever comes first"
        },
    )

    def __post_init__(self) -> None:
        self.output = Path(self.output)
        if self.lr is None:  # resolved here, so a checkpoint records the rate it ran with
            self.lr = FULL_LR if self.method == "full" else LORA_LR
        # Later stages re-create the validation split from the manifest, from any working folder.
        for name in ("dataset", "eval_file"):
            value = getattr(self, name)
            if value and Path(value).exists():
                setattr(self, name, str(Path(value).resolve()))
        # A local base model as an absolute path: a relative one ("models/tiny-bert") reads, from any other
        # folder, as a Hub id, and cards and `sentiment push` would name it as one.
        if self.base_model not in HUB_ID_OF_ALIAS and Path(self.base_model).is_dir():
            self.base_model = str(Path(self.base_model).resolve())
        checks = [
            (0 < self.val_fraction < 0.9, "--val-fraction must be between 0 and 0.9"),
            (self.epochs > 0, "--epochs must be positive"),
            (self.batch_size > 0 and self.grad_accum > 0, "--batch-size and --grad-accum must be positive"),
            (self.lr > 0, "--lr must be positive"),
            (self.lora_r is None or self.lora_r > 0, "--lora-r must be positive"),
            (self.max_samples is None or self.max_samples >= 4, "--max-samples must be at least 4"),
            (self.checkpoint_every >= 1, "--checkpoint-every must be at least 1"),
            (self.log_every >= 1, "--log-every must be at least 1"),
            (self.eval_every >= 0 and self.patience >= 0, "--eval-every and --patience must be 0 or more"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)
        self._resolve_lora_options()
        labels = LABELS  # until the data says otherwise: the run's manifest records the labels it found
        if self.labels is not None:
            from ..labels import parse_labels  # here: labels imports numpy, and --help must not

            labels = parse_labels(self.labels)
            # Written back as parsed, so `--labels "a, b"` and `--labels a,b` are the same option on --resume.
            self.labels = ",".join(labels)
        try:
            self.spec = TextSpec(self.max_length, self.truncation, labels)
        except ValueError as error:
            raise UserError(str(error)) from error

    def _resolve_lora_options(self) -> None:
        """LoRA's defaults for a LoRA run; for --method full, any LoRA option given is refused."""
        if self.method == "lora":
            for name, value in LORA_DEFAULTS.items():
                if getattr(self, name) is None:
                    setattr(self, name, value)
            return
        given = [f"--{n.replace('_', '-')}" for n in unused_options(self.method) if getattr(self, n) is not None]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise UserError(f"{', '.join(given)} {verb} only to --method lora; --method full trains every weight")

    def to_dict(self) -> dict:
        """The options as a checkpoint's state.json records them (paths as strings)."""
        return {k: _plain(v) for k, v in asdict(self).items()}

    @classmethod
    def defaults(cls) -> dict:
        """Each option's default, as `to_dict` writes it (an option without a default is left out).

        A checkpoint written before an option existed ran with the behaviour the option's default keeps,
        so an option added later must default to what the code did without it.
        """
        found = {}
        for option in fields(cls):
            if option.default is not MISSING:
                found[option.name] = _plain(option.default)
            elif option.default_factory is not MISSING:
                found[option.name] = _plain(option.default_factory())
        # What an option-less run resolves to (runs from before --method were all LoRA runs).
        found.update(lr=LORA_LR, **LORA_DEFAULTS)
        return found


def _plain(value: object) -> object:
    return str(value) if isinstance(value, Path) else value


@dataclass
class EvaluateConfig:
    model: Path = field(
        metadata={
            "help": "a training run's folder (its merged/ is evaluated), a merged model folder, a LoRA adapter "
            "folder, or an exported ONNX folder"
        }
    )
    dataset: str | None = field(
        default=None,
        metadata={
            "help": "labelled reviews: CSV/TSV/Parquet/JSONL, aclImdb folder or Hub id "
            "(default: the model's own validation hold-out, re-created from its manifest)"
        },
    )
    output: Path | None = field(
        default=None,
        metadata={"help": "folder for metrics.json and plots (default: evaluation/ in the model folder evaluated)"},
    )
    text_column: str | None = field(default=None, metadata={"help": "text column (detected when omitted)"})
    label_column: str | None = field(default=None, metadata={"help": "label column (detected when omitted)"})
    split: str = field(default="test", metadata={"help": "split to use for a Hub dataset"})
    batch_size: int = field(default=64, metadata={"help": "reviews per batch"})
    device: Literal["auto", "cuda", "cpu"] = field(default="auto", metadata={"help": "PyTorch device for torch models"})
