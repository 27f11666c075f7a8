"""Options declared once: a dataclass field holds an option's default, its flags and its help, and the
command-line tools are made from the dataclass.

Every CPTR command that runs a job (``cptr-export``, ``cptr-train source|finetune|encoder|mapper``)
takes one options dataclass (:class:`~cptr.export.style.ExportOptions`,
:class:`~cptr.training.config.TrainConfig`, ...). Its fields say what each option is::

    @dataclass
    class EncoderJob:
        steps: int = option(20000, min=1, help="Training steps.")
        style: str | None = option(None, help="Registered style whose source generator the encoder inverts.")

and :func:`options_command` turns a function that takes the dataclass into a Typer command whose options
are those fields (``--steps``, ``--style``), so the library call and its command line cannot drift apart:
a field added to the dataclass is an option, with the same default, at once. A field declared with plain
``dataclasses.field`` (or a plain default) is not an option.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from cptr.helptext import reflow_app

T = TypeVar("T")
_MISSING = dataclasses.MISSING
_META = "cptr_option"


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """How one dataclass field appears on the command line."""

    flags: tuple[str, ...] = ()  # default: --field-name (and --field-name/--no-field-name for a bool that defaults to True)
    help: str | None = None
    commands: tuple[str, ...] = ()  # the commands that take it, where one dataclass serves several (empty: all)
    cli_type: Any = None  # the type Typer parses, where it differs from the field's (e.g. list[str] for a dict field)
    parse: Callable[[Any], Any] | None = None  # command-line value -> field value
    typer: dict[str, Any] = dataclasses.field(default_factory=dict)  # min=, max=, ... passed to typer.Option


def option(
    default: Any = _MISSING,
    *names: str,
    flags: tuple[str, ...] = (),
    help: str | None = None,
    factory: Callable[[], Any] | None = None,
    commands: str = "",
    cli_type: Any = None,
    parse: Callable[[Any], Any] | None = None,
    **typer_options: Any,
) -> Any:
    """A dataclass field that is also a command-line option (see the module docstring).

    ``names`` (or ``flags``, with ``factory``) are its flags, ``--field-name`` when none are given.
    ``commands`` is a space-separated list of the commands that take it; ``typer_options`` (``min``,
    ``max``, ...) go to :func:`typer.Option`. Without ``default`` or ``factory`` the option is required."""
    spec = OptionSpec(names + flags, help, tuple(commands.split()), cli_type, parse, typer_options)
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={_META: spec})
    return dataclasses.field(default=default, metadata={_META: spec})


def option_fields(cls: type, command: str | None = None) -> list[tuple[dataclasses.Field, OptionSpec]]:
    """The fields of ``cls`` that are options (of ``command``, when given), in declaration order."""
    out = []
    for f in dataclasses.fields(cls):
        spec = f.metadata.get(_META)
        if spec is not None and (command is None or not spec.commands or command in spec.commands):
            out.append((f, spec))
    return out


def field_default(f: dataclasses.Field) -> Any:
    """The field's default (``...``, Typer's "required", where it has none)."""
    if f.default is not _MISSING:
        return f.default
    if f.default_factory is not _MISSING:
        return f.default_factory()
    return ...


def _flags(name: str, kind: Any, spec: OptionSpec, default: Any) -> tuple[str, ...]:
    if spec.flags:
        return spec.flags
    flag = "--" + name.replace("_", "-")
    return (f"{flag}/--no-{name.replace('_', '-')}",) if kind is bool and default is True else (flag,)


def typer_parameters(
    cls: type, command: str | None = None, *, defaults: dict[str, Any] | None = None, unset: bool = False
) -> list[inspect.Parameter]:
    """One keyword-only Typer parameter per option field of ``cls``.

    ``defaults`` overrides the dataclass's defaults (a command with its own, e.g. ``cptr-train source``).
    With ``unset``, every option but a required one and a flag defaults to None ("not typed"), and its
    help shows the default it stands for: a resumed run tells typed options from left-out ones."""
    hints = typing.get_type_hints(cls)
    params = []
    for f, spec in option_fields(cls, command):
        kind = spec.cli_type if spec.cli_type is not None else hints[f.name]
        default = (defaults or {}).get(f.name, field_default(f))
        if typing.get_origin(kind) is list and f.default_factory is not _MISSING:
            default = []  # a repeatable option whose field is filled by its parse (e.g. NAME=PATH -> dict)
        text = spec.help
        if unset and default is not ... and kind is not bool:
            if default not in (None, ""):  # escaped: Rich would take [default: ...] as markup
                text = f"{text or ''} \\[default: {default}]".strip()
            default, kind = None, kind | None
        params.append(
            inspect.Parameter(
                f.name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=kind,
                default=typer.Option(default, *_flags(f.name, kind, spec, default), help=text, **spec.typer),
            )
        )
    return params


def parsed(cls: type, values: dict[str, Any], command: str | None = None) -> dict[str, Any]:
    """The option fields among command-line ``values``, each through its ``parse`` (None stays None)."""
    specs = {f.name: spec for f, spec in option_fields(cls, command)}
    return {k: (specs[k].parse(v) if specs[k].parse is not None and v is not None else v) for k, v in values.items() if k in specs}


def build(cls: type[T], values: dict[str, Any], command: str | None = None) -> T:
    """``cls`` from command-line ``values`` (see :func:`parsed`)."""
    return cls(**parsed(cls, values, command))


def options_command(cls: type[T], command: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate ``run(options: cls, **extra)`` into a Typer command whose options are the option fields of
    ``cls`` (of ``command``), followed by ``run``'s own keyword parameters (options that are not part
    of the dataclass, e.g. ``cptr-export --server``). The docstring and name stay ``run``'s."""

    def decorate(run: Callable[..., Any]) -> Callable[..., Any]:
        # run's own parameters after the options object, their annotations resolved in run's module
        own = [
            p.replace(annotation=eval(p.annotation, run.__globals__) if isinstance(p.annotation, str) else p.annotation)
            for p in list(inspect.signature(run).parameters.values())[1:]
        ]
        names = {p.name for p in own}

        @functools.wraps(run)
        def as_command(**values: Any) -> Any:
            extra = {k: values.pop(k) for k in list(values) if k in names}
            try:
                options = build(cls, values, command)
            except ValueError as e:  # a parse refused a value: a usage error (exit status 2), not a traceback
                raise typer.BadParameter(str(e)) from None
            return run(options, **extra)

        params = typer_parameters(cls, command) + [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
        # Typer reads both: the signature for the options, the annotations for their types (not run's)
        as_command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        as_command.__annotations__ = {p.name: p.annotation for p in params}
        del as_command.__wrapped__
        return as_command

    return decorate


def script_app(cls: type[T], main: Callable[[T], int | None], help: str | None = None) -> typer.Typer:
    """The one-command Typer app of a script whose ``main(options)`` takes ``cls``: the options are ``cls``'s fields,
    ``help`` (the script's docstring) is its description, and ``main``'s return value, when an int, its exit status.
    Run it with ``script_app(...)(prog_name="python benchmarks/x.py")``."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    def command(options: T) -> None:
        status = main(options)
        if status:
            raise typer.Exit(status)

    app.command(help=help)(options_command(cls)(command))
    return reflow_app(app)  # help paragraphs whole at any width


def positive_ints(flag: str, example: str) -> Callable[[str], str]:
    """An option's ``parse=`` for a comma list of positive integers (``1,4``): the value unchanged when it is one,
    else a ValueError naming ``flag`` with ``example``."""

    def check(value: str) -> str:
        try:
            ok = all(int(v) > 0 for v in value.split(","))
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"{flag} must be positive integers separated by commas, e.g. {example}; got {value!r}")
        return value

    return check
