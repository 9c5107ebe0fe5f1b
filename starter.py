"""Thin entry point: start a business plan (same as `wavelaunch plan generate CLIENT_ID`)."""

import sys

from wavelaunch.cli import app

if __name__ == "__main__":
    app(["plan", "generate", *sys.argv[1:]])
