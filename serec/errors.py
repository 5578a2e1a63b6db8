"""Failures a user can fix: the CLI prints their message as one line and exits with status 2."""

from __future__ import annotations


class UsageError(ValueError):
    """An expected failure (bad argument, infeasible request, unusable input); the message
    names the problem and the fix."""


class ConfigError(UsageError):
    """A config value that cannot be used; the message names the key by its dotted path."""
