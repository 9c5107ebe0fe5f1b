"""`python -m wavelaunch`: the CLI."""

from wavelaunch.cli import app

app()
