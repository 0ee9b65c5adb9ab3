"""Config fields that carry their command-line flag and help text: one place for every option.

A field declared with :func:`option` holds its name, type, default, flag and help together,
so :class:`betavae.config.TrainConfig` (its ``FLAGS``), ``betavae train``'s options and
``betavae sweep``'s are all read from it and nothing is typed twice. A leaf: it imports only
the standard library, so that any module may declare options without importing another.
"""

from __future__ import annotations

import dataclasses
from dataclasses import MISSING, dataclass
from typing import Any

_KEY = "betavae.option"


@dataclass(frozen=True)
class OptionHelp:
    """How a config field is given on the command line and described there.

    ``flag``: the option (``--latent``), or None where the field has none (a table).
    ``help``: what the setting is; for a field whose values are the names of a registry,
    ``{names}`` marks where the help lists them, read when the help is shown.
    ``default_text``: the default in words, where the field's default is None and means
    something (``by image size``). ``names``: that registry, as ``module:ATTRIBUTE``, left
    unimported until needed (registries import torch). ``seed``: the value seeds a
    generator, and is checked as the flags are read.
    """

    flag: str | None
    help: str = ""
    default_text: str | None = None
    names: str | None = None
    seed: bool = False


def option(default: Any = MISSING, flag: str | None = None, help: str = "", *,
           default_factory: Any = MISSING, default_text: str | None = None, names: str | None = None,
           seed: bool = False) -> Any:
    """A dataclass field with ``default`` (or ``default_factory``) that carries its :class:`OptionHelp`."""
    described = OptionHelp(flag, help, default_text, names, seed)
    return dataclasses.field(default=default, default_factory=default_factory, metadata={_KEY: described})


def option_help(field: dataclasses.Field) -> OptionHelp | None:
    """The :class:`OptionHelp` of ``field``, or None where it was not declared with :func:`option`."""
    return field.metadata.get(_KEY)


def field_names(options: type) -> tuple[str, ...]:
    """The field names of the dataclass ``options``, in order: an objective's ``OPTIONS``."""
    return tuple(field.name for field in dataclasses.fields(options))


def shown_default(field: dataclasses.Field) -> str | None:
    """The default of ``field`` as help shows it: its ``default_text``, ``on`` / ``off`` for a switch,
    ``25`` for 25.0, ``none`` for an empty list; None where there is nothing to show."""
    described = option_help(field)
    if described is not None and described.default_text is not None:
        return described.default_text
    value = field.default_factory() if field.default_factory is not MISSING else field.default
    if value is None or value is MISSING:
        return None
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return str(value)
