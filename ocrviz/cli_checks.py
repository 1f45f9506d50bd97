"""Argument checks and error reporting shared by ``ocrviz`` and its ``train`` / ``evaluate`` commands.

Bad input is one line on stderr saying what was given, what is allowed and how to fix it, and
exit status 2; nothing is half-written.  ``OneLineParser`` is argparse with that behaviour;
``glue_option_values`` lets ``--pixel -1,5`` reach the check that explains it (argparse would
take ``-1,5`` for an option); ``write_outputs`` writes a command's files as one set.

    >>> at_least("--threads", -1, 1)                   # doctest: +SKIP
    InputError: --threads -1: allowed are 1 and more
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from ocrviz.atomic import check_folder_writable, printable, write_atomic_many

PROG = "ocrviz"


class InputError(ValueError):
    """Bad input: reported as one line on stderr, exit status 2."""


def one_line(text: Any) -> str:
    """A message on one line (multi-line library errors joined with '; ')."""
    lines = [" ".join(part.split()) for part in str(text).split("\n")]
    return "; ".join(line for line in lines if line).replace(":;", ":")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what was given, what is allowed) raised as ``InputError``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(f"{one_line(message)} (see {self.prog} --help)")


def dataclass_parser(cls: type, prog: str, description: str, special: dict[str, dict] | None = None
                     ) -> OneLineParser:
    """One ``--option`` per field of the dataclass ``cls`` (typed as its default; str where the default is
    None), each defaulting to the field's default; ``special`` gives the add_argument keywords of fields
    that need more (a JSON option, a help text).  Errors come back in one line (``OneLineParser``)."""
    import dataclasses

    p = OneLineParser(prog=prog, description=description)
    defaults = cls()
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        if special and f.name in special:
            p.add_argument(flag, **special[f.name])
            continue
        default = getattr(defaults, f.name)
        p.add_argument(flag, type=type(default) if default is not None else str, default=default)
    return p


def require_positive(config: Any, names: Sequence[str]) -> None:
    """ValueError naming the first of ``names`` whose value on ``config`` is below 1."""
    for name in names:
        if getattr(config, name) < 1:
            raise ValueError(f"{name}={getattr(config, name)} must be >= 1")


def glue_option_values(argv: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    """``--flag -1,5`` -> ``--flag=-1,5`` for options that take one value, so that a value starting
    with '-' reaches the option's own check (argparse takes it for an unknown option and answers
    "expected one argument")."""
    takes_one, known = set(), set()

    def visit(p: argparse.ArgumentParser) -> None:
        for action in p._actions:                    # argparse has no public walk over its options
            known.update(action.option_strings)
            if action.option_strings and action.nargs is None and action.const is None \
                    and not isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction,
                                                argparse._HelpAction, argparse._VersionAction)):
                takes_one.update(s for s in action.option_strings if s.startswith("--"))
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    visit(sub)
    visit(parser)
    out, argv = [], list(argv)
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in takes_one and i + 1 < len(argv) and argv[i + 1].startswith("-") and argv[i + 1] not in known \
                and argv[i + 1] != "--":
            out.append(f"{a}={argv[i + 1]}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def at_least(flag: str, value: Any, minimum: int, why: str = "") -> None:
    """``InputError`` unless ``value`` is None or >= ``minimum``."""
    if value is not None and value < minimum:
        raise InputError(f"{flag} {value}: allowed are {minimum} and more" + (f" ({why})" if why else ""))


def json_object(text: str) -> dict:
    """``--model-kwargs``: a JSON object (keyword arguments), e.g. '{"width": 64}'."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not JSON ({e.msg} at character {e.pos}); "
                                         """give an object, e.g. '{"width": 64}'""") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{text!r} is a JSON {type(value).__name__}; give an object of "
                                         """keyword arguments, e.g. '{"width": 64}'""")
    return value


def check_output(path: str | os.PathLike, flag: str = "-o") -> Path:
    """An output path in an existing folder that this process can write in (checked before any work)."""
    out = Path(path)
    if out.is_dir():
        raise InputError(f"{flag} {shown(path)!r} is a folder; give a file name, e.g. {shown(out / 'report.html')!r}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"{flag} {shown(path)!r}: the folder {shown(parent)!r} does not exist; create it first "
                         "or write to an existing folder")
    try:
        check_folder_writable(out)
    except OSError as e:
        raise InputError(f"{flag} {shown(path)!r}: {one_line(e.strerror or e)}; choose a folder you can write in "
                         "(nothing was done)") from None
    return out


def write_outputs(items: Sequence[tuple[Path, str]]) -> None:
    """Write a command's output files as one set (all, or none and the old ones kept), or ``InputError``."""
    try:
        write_atomic_many(items)
    except OSError as e:
        names = " and ".join(repr(shown(p)) for p, _ in items)
        raise InputError(f"could not write {names}: {one_line(e.strerror or e)}; nothing was written "
                         "(files already there are unchanged); free space or choose another folder") from None


def shown(text: Any) -> str:
    """``text`` as it can be printed and written: a non-UTF-8 file name's bytes shown as U+FFFD."""
    return printable(os.fspath(text) if isinstance(text, os.PathLike) else str(text))


def run_program(main: Callable[[Sequence[str] | None], int], prog: str) -> int:
    """``sys.exit(run_program(main, "python -m ocrviz.train"))``: bad input as one line and status 2."""
    try:
        return int(main(None) or 0)
    except (InputError, ValueError) as e:
        if os.environ.get("OCRVIZ_DEBUG", "") not in ("", "0"):
            raise
        print(f"{prog}: {one_line(e)}", file=sys.stderr)
        return 2
