"""Command-line options generated from a config dataclass: each option is written once, with help."""

from __future__ import annotations

import argparse
import types
import typing
from dataclasses import MISSING, fields
from pathlib import Path


def _unwrap_optional(hint):
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def add_config_arguments(parser: argparse.ArgumentParser, config_cls: type, positional: tuple[str, ...] = ()) -> None:
    """One option per dataclass field: `--snake-case`, typed, with choices for Literal fields."""
    hints = typing.get_type_hints(config_cls)
    for f in fields(config_cls):
        hint = _unwrap_optional(hints[f.name])
        kwargs: dict = {"help": f.metadata.get("help", "")}
        required = f.default is MISSING and f.default_factory is MISSING
        if not required:
            kwargs["default"] = f.default if f.default is not MISSING else f.default_factory()
            if kwargs["default"] is True:
                kwargs["help"] += " (default: on; --no-" + f.name.replace("_", "-") + " turns it off)"
            elif kwargs["default"] not in (None, False):
                kwargs["help"] += f" (default: {kwargs['default']})"
        if hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction if kwargs.get("default") else "store_true"
        elif typing.get_origin(hint) is typing.Literal:
            kwargs["choices"] = typing.get_args(hint)
        elif typing.get_origin(hint) is list:
            kwargs["nargs"] = "+"
        elif hint in (int, float, str, Path):
            kwargs["type"] = hint
        if f.name in positional:
            kwargs.pop("default", None) if required else kwargs.update(nargs="?")
            parser.add_argument(f.name, **kwargs)
        else:
            parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, required=required, **kwargs)


def config_from_args(config_cls: type, args: argparse.Namespace):
    return config_cls(**{f.name: getattr(args, f.name) for f in fields(config_cls) if hasattr(args, f.name)})
