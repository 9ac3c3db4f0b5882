"""The text contract shared by training and serving: cleaning, labels and head+tail tokenization.

This module imports neither torch nor transformers, so the ONNX runtime can use it as it is and
training and serving tokenize every review identically.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

from .labels import LABELS, label_problem

if TYPE_CHECKING:
    from tokenizers import Tokenizer


Truncation = Literal["head", "tail", "head+tail"]
TRUNCATIONS: tuple[str, ...] = ("head", "tail", "head+tail")
LENGTHS = range(8, 4097)  # tokens a review may be cut to, special tokens included

# HTML element names: `<br />`, `</i>` and `<a href=…>` are tags; `<The Matrix>`, `I <3 it` and
# `7 < 8 but > 6` are text. Bounded so a stray "<" cannot swallow a whole review.
_TAG_NAMES = [
    "a",
    "abbr",
    "acronym",
    "address",
    "area",
    "article",
    "aside",
    "audio",
    "b",
    "base",
    "basefont",
    "bdi",
    "bdo",
    "big",
    "blink",
    "blockquote",
    "body",
    "br",
    "button",
    "canvas",
    "caption",
    "center",
    "cite",
    "code",
    "col",
    "colgroup",
    "dd",
    "del",
    "details",
    "dfn",
    "dir",
    "div",
    "dl",
    "dt",
    "em",
    "embed",
    "fieldset",
    "figcaption",
    "figure",
    "font",
    "footer",
    "form",
    "frame",
    "frameset",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "head",
    "header",
    "hr",
    "html",
    "i",
    "iframe",
    "img",
    "input",
    "ins",
    "kbd",
    "label",
    "legend",
    "li",
    "link",
    "main",
    "mark",
    "marquee",
    "menu",
    "meta",
    "nav",
    "nobr",
    "noscript",
    "object",
    "ol",
    "optgroup",
    "option",
    "p",
    "param",
    "pre",
    "q",
    "rp",
    "rt",
    "ruby",
    "s",
    "samp",
    "script",
    "section",
    "select",
    "small",
    "source",
    "span",
    "strike",
    "strong",
    "style",
    "sub",
    "summary",
    "sup",
    "table",
    "tbody",
    "td",
    "template",
    "textarea",
    "tfoot",
    "th",
    "thead",
    "time",
    "title",
    "tr",
    "track",
    "tt",
    "u",
    "ul",
    "var",
    "video",
    "wbr",
]
_TAG = re.compile(
    r"<(?:/?(?:" + "|".join(sorted(_TAG_NAMES, key=len, reverse=True)) + r")(?=[\s/>])[^<>]{0,200}|!--.{0,200}?--)>",
    re.IGNORECASE | re.DOTALL,
)
_SPACE = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Turn HTML tags (IMDB's `<br />`) into spaces, unescape entities and collapse whitespace.

    Idempotent, `clean_text(clean_text(x)) == clean_text(x)`, so text cleaned by one stage and cleaned
    again by another scores the same: unescaping can reveal a tag (`&lt;i&gt;`), removing a tag can
    join one (`<i<b>>`) and collapsing spaces can shorten one, so all three repeat until nothing
    changes. (So an escaped tag is removed like a tag, and a doubly escaped `&amp;amp;` becomes `&`.)
    """
    while True:
        cleaned = _SPACE.sub(" ", _TAG.sub(" ", html.unescape(text))).strip()
        if cleaned == text:
            return cleaned
        text = cleaned


@dataclass(frozen=True)
class TextSpec:
    """How a review becomes model input; fixed at training time and carried to every later stage."""

    max_length: int = 256
    truncation: Truncation = "head+tail"
    labels: tuple[str, ...] = LABELS

    def __post_init__(self) -> None:
        if self.truncation not in TRUNCATIONS:
            raise ValueError(f"truncation must be one of {', '.join(TRUNCATIONS)}, not {self.truncation!r}")
        if self.max_length not in LENGTHS:
            raise ValueError(
                f"max_length must be between {LENGTHS.start} and {LENGTHS.stop - 1}, not {self.max_length}"
            )
        if problem := label_problem(self.labels):
            raise ValueError(problem)

    def to_dict(self) -> dict:
        return {**asdict(self), "labels": list(self.labels)}

    @classmethod
    def from_dict(cls, data: dict) -> TextSpec:
        return cls(
            max_length=int(data["max_length"]),
            truncation=data["truncation"],
            labels=tuple(data.get("labels", LABELS)),
        )


class ReviewEncoder:
    """Tokenizes cleaned reviews to token ids, keeping the head, the tail, or both of long ones.

    Head+tail keeps the first quarter and the last three quarters of the token budget (Sun et al.
    2019, "How to Fine-Tune BERT for Text Classification?", best on IMDB).
    """

    def __init__(self, tokenizer: Tokenizer, spec: TextSpec) -> None:
        self.tokenizer = tokenizer
        self.spec = spec
        tokenizer.no_truncation()
        tokenizer.no_padding()
        # A BERT-family post-processor wraps a text as [CLS] ... [SEP]; read the wrapping off an
        # empty text rather than assuming token names.
        wrapped = tokenizer.encode("").ids
        self._prefix = wrapped[:1]
        self._suffix = wrapped[1:]
        self.pad_id = tokenizer.token_to_id("[PAD]") or 0
        self.budget = spec.max_length - len(wrapped)

    @classmethod
    def from_file(cls, tokenizer_json: str, spec: TextSpec) -> ReviewEncoder:
        from tokenizers import Tokenizer  # imported here: the CLI reads TextSpec to build --help

        return cls(Tokenizer.from_file(str(tokenizer_json)), spec)

    def window(self, count: int) -> tuple[int, int]:
        """Which of `count` content tokens the model reads: the first `head`, and those from `tail_start` on
        ((count, count) when all fit). The one place truncation is decided: encoding and the explainer use it."""
        if count <= self.budget or self.spec.truncation == "head":
            return min(count, self.budget), count
        head = 0 if self.spec.truncation == "tail" else self.budget // 4
        return head, count - (self.budget - head)

    def truncate(self, ids: list[int]) -> tuple[list[int], bool]:
        """Cut content ids to the budget by the spec's strategy; say whether anything was cut."""
        head, tail_start = self.window(len(ids))
        return ids[:head] + ids[tail_start:], len(ids) > self.budget

    @property
    def prefix_length(self) -> int:
        return len(self._prefix)

    def wrap(self, content_ids: list[int]) -> list[int]:
        """Content ids with the special tokens around them ([CLS] … [SEP] for BERT)."""
        return self._prefix + content_ids + self._suffix

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids with special tokens, at most `max_length` long, for already-cleaned texts."""
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [self.wrap(self.truncate(e.ids)[0]) for e in encodings]

    def count_tokens(self, text: str) -> int:
        """Content tokens of one text before truncation (to tell a user what was cut)."""
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[list[list[int]], list[list[int]]]:
    """Pad to the longest sequence of this batch (dynamic padding); returns ids and attention mask."""
    width = max(len(s) for s in sequences)
    ids = [list(s) + [pad_id] * (width - len(s)) for s in sequences]
    mask = [[1] * len(s) + [0] * (width - len(s)) for s in sequences]
    return ids, mask
