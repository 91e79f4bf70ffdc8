"""The one error a bad configuration raises: every problem found, one line each, naming the key.

The command, the live reload and the web config file all report through it, so an invalid
configuration exits 2 (or keeps the running one, on a reload) with the same kind of message.
"""

from __future__ import annotations


class ConfigError(Exception):
    """Invalid configuration; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
