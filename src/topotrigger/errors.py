"""Errors a user can cause.

Each carries one plain line for the terminal; the CLI prints it and exits 2. Anything else is an
internal error and keeps its traceback. They subclass built-ins so library callers can catch them
the usual way (a missing file is still a FileNotFoundError).
"""

from __future__ import annotations

import base64
import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


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


class OutputPathError(UserError, OSError):
    """An output that cannot be written where it was asked for (read-only place, a file in the way)."""


class JavaNotFoundError(UserError, RuntimeError):
    """No usable Java (17 or 21) was found."""


class MissingDependencyError(UserError, ImportError):
    """An optional dependency is not installed; the message gives the install command."""


# A user error raised in a Spark task reaches the driver only as text inside Spark's own exception:
# the task's error is carried there as its class and message (JSON, base64, between these markers) and
# raised again on the driver. Not pickle: that text may also hold user-controlled file names.
_START, _END = "[topotrigger-user-error:", ":topotrigger-user-error]"


class TaskUserError(RuntimeError):
    """Carries a `UserError` out of a Spark task (see `carry_user_errors` and `user_error_in`)."""


def carry_user_errors(task: Callable[..., Iterator[T]]) -> Callable[..., Iterator[T]]:
    """Wrap a Spark task function (a generator) so that a UserError it raises reaches the driver whole."""

    @functools.wraps(task)
    def wrapper(*args: Any, **kwargs: Any) -> Iterator[T]:
        try:
            yield from task(*args, **kwargs)
        except UserError as exc:
            kind = f"{type(exc).__module__}:{type(exc).__qualname__}"
            carried = base64.b64encode(json.dumps({"kind": kind, "message": str(exc)}).encode()).decode()
            raise TaskUserError(f"{_START}{carried}{_END} {exc}") from None

    return wrapper


def user_error_in(exc: BaseException) -> UserError | None:
    """The UserError a Spark task raised, if this failed job carries one (whatever its class)."""
    text = str(exc)
    start = text.find(_START)
    end = text.find(_END, start)
    if start < 0 or end < 0:
        return None
    try:
        carried = json.loads(base64.b64decode(text[start + len(_START):end], validate=True))
        module, _, name = str(carried["kind"]).partition(":")
        message = str(carried["message"])
    except (ValueError, KeyError, TypeError):  # a truncated or foreign message: not ours to interpret
        return None
    # Only classes the driver has already imported: nothing is imported on the word of a message.
    kind = getattr(sys.modules.get(module), name, None) if "." not in name else None
    if not (isinstance(kind, type) and issubclass(kind, UserError)):
        kind = UserError
    try:
        return kind(message)
    except TypeError:  # a subclass with another constructor
        return UserError(message)


@contextmanager
def user_errors_from_tasks() -> Iterator[None]:
    """Around a Spark job on the driver: a user error raised in a task is raised here as itself."""
    try:
        yield
    except Exception as exc:
        user = user_error_in(exc)
        if user is not None:
            raise user from None
        raise
