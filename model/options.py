"""Config dataclasses as command lines: each field's help is its documentation and its --flag's help.

A field declared with `option(default, help)` becomes `--field-name` with that default, type and
help (`add_options`); `required=True` or `choices=...` pass on to argparse. Bools become
`--x/--no-x`, lists a repeatable flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import field
from typing import Any


def option(default: Any, help: str, **extra: Any) -> Any:
    """A config field documented once: `help` is what the CLI shows for it."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **extra})
    return field(default=default, metadata={"help": help, **extra})


def option_fields(cls: type) -> list[dataclasses.Field[Any]]:
    """The fields of `cls` declared with `option` (those a command line can set)."""
    return [f for f in dataclasses.fields(cls) if "help" in f.metadata]


def add_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type) -> None:
    """One flag per `option` field of the dataclass `cls`: its type, default, choices and help."""
    hints = typing.get_type_hints(cls)
    for f in option_fields(cls):
        flag, meta = "--" + f.name.replace("_", "-"), dict(f.metadata)
        kind = hints[f.name]
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default,
                                help=meta["help"])
        elif typing.get_origin(kind) is list:
            parser.add_argument(flag, action="append", type=typing.get_args(kind)[0], default=None,
                                required=meta.get("required", False), help=meta["help"])
        else:
            base = next(a for a in typing.get_args(kind) if a is not type(None)) \
                if isinstance(kind, types.UnionType) else kind
            parser.add_argument(flag, type=base, default=f.default, choices=meta.get("choices"),
                                required=meta.get("required", False), help=meta["help"])


def take_options(values: dict[str, Any], cls: type) -> dict[str, Any]:
    """Remove the values of `cls`'s option fields from `values` and return them."""
    return {f.name: values.pop(f.name) for f in option_fields(cls) if f.name in values}
