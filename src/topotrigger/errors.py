"""Errors a user can cause.

Each carries one plain line for the terminal; the CLI prints it and exits 2. Anything else is an
internal error and keeps its traceback. They subclass built-ins so library callers can catch them
the usual way (a missing file is still a FileNotFoundError).
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the input, options or environment that the user can fix."""


class ConfigError(UserError, ValueError):
    """An invalid configuration value; the message names the key and what is allowed."""


class InputError(UserError, ValueError):
    """Bad input data: a broken file, a missing branch, an empty directory."""


class MissingInputError(UserError, FileNotFoundError):
    """An input path that does not exist."""


class OutputExistsError(UserError, FileExistsError):
    """An output that exists and would be overwritten."""


class JavaNotFoundError(UserError, RuntimeError):
    """No usable Java (17 or 21) was found."""


class MissingDependencyError(UserError, ImportError):
    """An optional dependency is not installed; the message gives the install command."""


def input_error_in(exc: BaseException) -> InputError | None:
    """The user's data error inside a failed Spark job (raised in a task, wrapped by Spark), if it was one."""
    import re

    match = re.search(r"topotrigger\.errors\.(?:InputError|MissingInputError): ([^\n]+)", str(exc))
    return InputError(match.group(1)) if match else None
