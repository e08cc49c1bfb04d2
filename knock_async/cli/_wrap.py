"""Text for a terminal of a known width, stdlib only: prose wrapped between words, and shell
commands kept copyable (continued with `` \\`` between words, never cut inside an id or an
option), where a terminal wrapping a long line by itself would cut it anywhere."""

from __future__ import annotations

import os
import textwrap
from typing import TextIO

__all__ = ["command_lines", "for_people", "prose", "terminal_width"]

_GLUE = "\x00"  # holds a `quoted command` together while wrapping


def terminal_width(stream: TextIO) -> int | None:
    """The width of the terminal ``stream`` writes to; ``None`` for a pipe, a file, a log."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns if stream.isatty() else 0
    except (AttributeError, OSError, ValueError):
        return None
    return columns if columns > 0 else None  # 0: a pseudo-terminal whose size was never set


def prose(text: str, width: int | None) -> str:
    """``text`` wrapped to ``width`` (if any) between words, never inside a word, an id or a
    `command in backquotes`; its continuation lines indented by two spaces."""
    if width is None or len(text) <= width:
        return text
    parts = text.split("`")
    glued = "`".join(p.replace(" ", _GLUE) if i % 2 else p for i, p in enumerate(parts))
    lines = textwrap.wrap(
        glued, width, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False
    )
    return "\n".join(lines).replace(_GLUE, " ")


def command_lines(command: str, width: int | None) -> list[str]:
    """A shell command (its leading spaces kept) in lines of at most ``width`` where its words
    allow, each but the last ending in `` \\``, so that it still runs when copied whole."""
    if width is None or len(command) <= width:
        return [command]
    indent = command[: len(command) - len(command.lstrip(" "))]
    first, *words = command.split()
    lines: list[str] = []
    line = indent + first
    for index, word in enumerate(words, start=1):
        room = width if index == len(words) else width - 2  # for the " \"
        if len(line) + 1 + len(word) <= room:
            line += " " + word
        else:
            lines.append(line + " \\")
            line = indent + "    " + word
    return [*lines, line]


def for_people(line: str, width: int | None) -> list[str]:
    """An indented line is a command, kept copyable (``command_lines``), any other prose."""
    return command_lines(line, width) if line.startswith("  ") else [prose(line, width)]
