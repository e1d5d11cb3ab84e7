"""The one error type users see: the CLI prints its message on one line and exits with code 2.

Names a user supplied (file names, paths) appear in messages through `quoted`, repr-style, so a newline or
any other control character in a name is shown escaped and can never break a message into several lines;
`one_line` is what every printer applies to a message before it reaches the terminal.
"""

from __future__ import annotations


class LatentpaintError(Exception):
    """A problem with the user's input, files or configuration, explained in one sentence."""


def quoted(name: object) -> str:
    """A user-supplied name as messages show it: `'photos/a.png'`, `'a\\nb.png'` (repr of its text)."""
    return repr(str(name))


def one_line(message: object) -> str:
    """`message` on one line: line breaks become spaces, other control characters are escaped."""
    text = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def os_error_text(exc: OSError) -> str:
    """An OSError as a sentence without errno numbers: `'out/a.png': Permission denied`."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    names = [quoted(n) for n in (exc.filename, exc.filename2) if n is not None]
    return f"{' -> '.join(names)}: {reason}" if names else reason
