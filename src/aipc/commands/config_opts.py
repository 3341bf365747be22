"""A verb's flags generated from a config dataclass: one definition per setting (type, default, help,
rule, flag name and old spellings) in the dataclass, none copied into the command.

:func:`config_command` turns a function ``f(cfg_values: dict, **extra)`` into a typer command whose
parameters are the dataclass's fields (plus ``f``'s own extra parameters, e.g. ``--json``); the fields'
rules are registered with :mod:`aipc.commands.options` so they are checked at parse time.
:func:`config_values` merges hidden aliases and splits list flags back into field values.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from typing import Any, Callable

import typer

from aipc.commands import options


def _flag(f: dataclasses.Field) -> str:
    return f.metadata.get("name") or "--" + f.name.replace("_", "-")


def _alias_param(f: dataclasses.Field, i: int) -> str:
    return f"{f.name}__alias{i}"


def _cli_type(hint: Any, meta: dict) -> Any:
    """The annotation typer sees: a list flag given as one split string is a str."""
    if meta.get("split"):
        return typing.Optional[str]
    return hint


def _is_optional(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)


def _option(f: dataclasses.Field, hint: Any) -> Any:
    meta = f.metadata
    default = f.default if f.default is not dataclasses.MISSING else (
        f.default_factory() if f.default_factory is not dataclasses.MISSING else ...)
    if meta.get("argument"):
        return typer.Argument(default, help=meta.get("help"))
    if meta.get("split") and isinstance(default, list):
        default = meta["split"].join(default)
    name = _flag(f)
    decls = [name]
    if (hint is bool and default is not False) or hint == typing.Optional[bool]:
        decls = [f"{name}/--no-{name[2:]}"]  # a switch that is on by default (or unset) can be turned off
    multiple = typing.get_origin(hint) is list and not meta.get("split")
    if multiple and default is ...:
        return typer.Option(..., *decls, help=meta.get("help"))
    return typer.Option(default, *decls, help=meta.get("help"))


def _alias_option(f: dataclasses.Field, hint: Any, alias: str) -> Any:
    typ = _cli_type(hint, f.metadata)
    if not _is_optional(typ) and typing.get_origin(typ) is not list:
        typ = typing.Optional[typ]
    return typ, typer.Option(None, alias, hidden=True, help=f"Old spelling of {_flag(f)}.")


def config_params(cls: type) -> list[inspect.Parameter]:
    """One inspect.Parameter per CLI field of ``cls`` (and one hidden one per old spelling)."""
    hints = typing.get_type_hints(cls)
    params: list[inspect.Parameter] = []
    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli", True):
            continue
        hint = hints[f.name]
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD if f.metadata.get("argument") else inspect.Parameter.KEYWORD_ONLY
        params.append(inspect.Parameter(f.name, kind, default=_option(f, hint), annotation=_cli_type(hint, f.metadata)))
        for i, alias in enumerate(f.metadata.get("aliases", ())):
            typ, opt = _alias_option(f, hint, alias)
            params.append(inspect.Parameter(_alias_param(f, i), inspect.Parameter.KEYWORD_ONLY, default=opt,
                                            annotation=typ))
    return params


def register_rules(verb: str, cls: type) -> None:
    """Make the fields' rules (and their old spellings) the verb's parse-time rules."""
    table = options.VERB_RULES.setdefault(verb, {})
    for f in dataclasses.fields(cls):
        rule = f.metadata.get("rule")
        if rule is None or not f.metadata.get("cli", True):
            continue
        table[f.name if f.metadata.get("argument") else _flag(f)] = rule
        for alias in f.metadata.get("aliases", ()):
            table[alias] = rule


def config_values(cls: type, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Field values from the command's keyword arguments: old spellings folded in, split lists split."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli", True):
            continue
        value = kwargs.pop(f.name, None)
        for i, alias in enumerate(f.metadata.get("aliases", ())):
            old = kwargs.pop(_alias_param(f, i), None)
            if old is not None:
                value = old  # the old spelling was given; the new one then holds its default
        if f.metadata.get("split") and isinstance(value, str):
            value = [t.strip() for t in value.split(f.metadata["split"]) if t.strip()]
        if isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def config_command(verb: str, cls: type) -> Callable[[Callable], Callable]:
    """Decorator: ``f(values: dict, **extra)`` becomes a command taking every CLI field of ``cls`` too."""
    register_rules(verb, cls)

    def wrap(f: Callable) -> Callable:
        sig = inspect.signature(f)
        extra = [p for n, p in sig.parameters.items() if n != "values"]
        fields = config_params(cls)
        pos = [p for p in fields if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
        kw = [p for p in fields if p.kind is inspect.Parameter.KEYWORD_ONLY]
        extra = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in extra]

        @functools.wraps(f)
        def command(*args: Any, **kwargs: Any) -> Any:
            names = [p.name for p in pos]
            kwargs.update(zip(names, args))
            values = config_values(cls, kwargs)
            return f(values=values, **kwargs)

        command.__signature__ = sig.replace(parameters=[*pos, *kw, *extra])
        del command.__wrapped__  # typer must read __signature__, not f's own
        return command

    return wrap
