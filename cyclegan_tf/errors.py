"""One-line errors for the command-line tools.

A user who passes a bad flag or file gets one line naming it and what is wrong, never a traceback.
"""
from __future__ import annotations

import sys
from collections.abc import Callable


class UserError(Exception):
    """A problem with the user's input: printed as one line, exit status 2."""


def guarded(main: Callable[[list[str]], int | None]) -> Callable[[list[str]], int | None]:
    """Wraps an absl `main` so that a UserError ends the program with one line on stderr."""

    def wrapper(argv: list[str]) -> int | None:
        try:
            return main(argv)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    return wrapper
