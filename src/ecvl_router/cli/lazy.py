"""Commands whose module is imported only when the command runs or shows its own help.

The root ``ecvl-router --help`` lists them from their functions' docstrings, read from the module's source
without importing it: the modules behind training and evaluation import torch and the routers, which
take seconds, and ``--help``, ``data validate`` or a typo must not pay for that.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from functools import cache
from pathlib import Path
from typing import Any

import click
import typer
from typer.core import TyperGroup


@cache
def _docstrings(module: str) -> dict[str, str]:
    """The docstrings of a module's top-level functions, from its source file."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return {}
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    return {node.name: ast.get_docstring(node) or "" for node in tree.body if isinstance(node, ast.FunctionDef)}


class LazyCommand(click.Command):
    """Stands in for ``module.function`` registered as a typer command; the real one is built on first use."""

    def __init__(self, name: str, module: str, function: str) -> None:
        super().__init__(name, help=_docstrings(module).get(function, ""))
        self._module, self._function = module, function
        self._real: click.Command | None = None

    def real(self) -> click.Command:
        """The typer command, built from the imported function on first use."""
        if self._real is None:
            single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
            single.command(self.name)(getattr(importlib.import_module(self._module), self._function))
            self._real = typer.main.get_command(single)
        return self._real

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any) -> click.Context:
        return self.real().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        return self.real().invoke(ctx)


class LazyGroup(TyperGroup):
    """The root group: its typer commands, then the lazy ones of ``lazy_commands`` (name: (module, function))."""

    lazy_commands: dict[str, tuple[str, str]] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *self.lazy_commands]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_commands:
            return LazyCommand(cmd_name, *self.lazy_commands[cmd_name])
        return super().get_command(ctx, cmd_name)
