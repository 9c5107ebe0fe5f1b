"""Commands other distributions add to ``wavelaunch``: the benchmarks and the quality evaluation.

They live in the development package (``dev/``, distribution ``wavelaunch-dev``, installed with
the dev group), not in the product, and declare their Typer apps under the entry point group
:data:`PLUGIN_GROUP`, the command's name as the entry point's name. Without that package,
``wavelaunch bench`` says in one line how to get it.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from wavelaunch.console import console

PLUGIN_GROUP = "wavelaunch.cli_plugins"
# What the development package provides, so that asking for it without the package is answered.
DEV_COMMANDS = ("bench", "eval")
INSTALL_HINT = "run `uv sync --group dev` in a checkout of the repository"


def installed() -> dict[str, EntryPoint]:
    """The plugin commands installed, by name."""
    return {ep.name: ep for ep in entry_points(group=PLUGIN_GROUP)}


class CommandsWithPlugins(TyperGroup):
    """The product's commands, then the installed plugins'.

    A plugin is loaded only when its command is asked for (or help lists it): its commands are
    written with the CLI's helpers, so importing it while ``wavelaunch.cli`` itself loads would
    be circular. ``ctx`` and the returned command are typer's click types.
    """

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *sorted(set(installed()) - set(self.commands))]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        found = super().get_command(ctx, cmd_name)
        if found is not None:
            return found
        plugin = installed().get(cmd_name)
        if plugin is not None:
            found = typer.main.get_group(plugin.load())
            found.name = cmd_name  # help lists a command by its own name
        elif cmd_name in DEV_COMMANDS:
            found = typer.main.get_command(_not_installed(cmd_name))
        return found


def _not_installed(name: str) -> typer.Typer:
    """A stand-in for a development command: whatever the arguments (``--help`` too), one line
    saying how to install it, exit status 1."""
    stand_in = typer.Typer(add_completion=False)

    @stand_in.command(
        name,
        add_help_option=False,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )
    def not_installed() -> None:
        message = f"`wavelaunch {name}` is a development command, not installed here: {INSTALL_HINT}"
        console.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)

    return stand_in
