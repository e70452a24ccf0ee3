"""Chapter support: the one set-up call every notebook of the book makes right after its parameters cell.

A chapter's parameters cell declares each parameter with a type annotation (``steps: list[int] = [16, 32]``);
papermill's injected cell then rebinds values without annotations, so :func:`check_parameters` can check
every value against the declared type before any heavy work, and parse the text papermill's ``-p`` gives
for a list (``-p steps "[16, 32]"``).
"""
from __future__ import annotations

import ast
import json
import time
import types
import typing
from dataclasses import dataclass, field

import torch

from . import experiments as E
from .models import resolve_device

_TRUE, _FALSE = ("True", "true", "1", "yes"), ("False", "false", "0", "no")


def _type_name(hint) -> str:
    """How a type hint reads in an error message."""
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def _example(name: str, hint) -> str:
    """A papermill option that passes a valid value of ``hint`` for ``name``."""
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint) or (str,)
        return f'-y "{name}: [16, 32]"' if item in (int, float) else f'-y "{name}: [a, b]"'
    if origin is typing.Literal:
        return f"-p {name} {typing.get_args(hint)[0]}"
    return f"-p {name} VALUE"


def _coerce(name: str, value, hint):
    """``value`` as the type ``hint`` declares, or ValueError naming the parameter and the accepted form."""
    bad = ValueError(
        f"parameter {name}={value!r} ({type(value).__name__}) must be {_type_name(hint)}; "
        f"with papermill pass it as {_example(name, hint)}"
    )
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None or value == "None":
            if type(None) in options:
                return None
            raise bad
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(name, value, option)
            except ValueError:
                pass
        raise bad
    if origin is typing.Literal:
        accepted = typing.get_args(hint)
        if value not in accepted:
            raise ValueError(f"parameter {name}={value!r}: accepted values: {', '.join(map(repr, accepted))}")
        return value
    if origin is list or hint is list:
        if isinstance(value, str):  # papermill's -p gives a list as its text
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                raise bad from None
        if not isinstance(value, (list, tuple)):
            raise bad
        (item,) = typing.get_args(hint) or (None,)
        return [v if item is None else _coerce(f"{name}[{i}]", v, item) for i, v in enumerate(value)]
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value in _TRUE + _FALSE:
            return value in _TRUE
        raise bad
    if hint in (int, float):
        # an int is a float's value too; a bool is neither; papermill's strings are parsed
        accepted = int if hint is int else (int, float)
        if isinstance(value, accepted) and not isinstance(value, bool):
            return hint(value)
        if isinstance(value, str):
            try:
                return hint(value)
            except ValueError:
                raise bad from None
        raise bad
    if hint is str:
        if isinstance(value, str):
            return value
        raise bad
    return value  # a hint this checker does not know: left as given


def check_parameters(namespace: dict) -> dict:
    """Check and coerce every annotated parameter in ``namespace`` (a notebook's globals()); returns them by name."""
    hints = namespace.get("__annotations__", {})
    params = {}
    for name, hint in hints.items():
        if name not in namespace:
            continue
        params[name] = namespace[name] = _coerce(name, namespace[name], hint)
    return params


def rerun_command(chapter: str, params: dict) -> str:
    """The papermill command that reruns ``chapter`` with ``params`` (from the repository root)."""
    yaml = json.dumps(params, separators=(", ", ": "), default=str)  # JSON is YAML
    return f"papermill notebooks/{chapter}.ipynb {chapter}_out.ipynb -y '{yaml}'"


@dataclass
class Chapter:
    """What :func:`setup` found: the checked parameters, the device, provenance and the start time."""

    name: str
    params: dict
    device: torch.device
    provenance: dict
    full_settings: dict = field(default_factory=dict)
    wall_start: float = field(default_factory=time.time)


def setup(chapter: str, namespace: dict) -> Chapter:
    """Check the parameters, apply ``profile`` where the chapter has profiles, seed torch and resolve the device."""
    wall_start = time.time()
    params = check_parameters(namespace)
    full_settings = {}
    if "profile" in namespace and chapter in E.FULL_PROFILE:
        full_settings = E.apply_profile(chapter, namespace["profile"], namespace)  # profile="full" sets these
        if full_settings:
            params.update(check_parameters({**namespace, "__annotations__": {
                k: v for k, v in namespace.get("__annotations__", {}).items() if k in full_settings}}))
            print("profile full:", full_settings)
    E.shown_tables().clear()
    torch.manual_seed(int(namespace.get("seed", 0)))
    dev = resolve_device(namespace.get("device", "auto"))
    prov = E.provenance(command=rerun_command(chapter, params), device=dev)
    return Chapter(chapter, params, dev, prov, full_settings, wall_start)
