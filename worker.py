"""Thin entry point: run a Wavelaunch worker (same as `wavelaunch worker`)."""

from wavelaunch.cli import worker

if __name__ == "__main__":
    worker()
