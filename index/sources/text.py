"""Text that every later step can process: Unicode characters only, no lone surrogate halves."""

from __future__ import annotations

import re

# Code points that are not text: lone UTF-16 surrogates (Python's stand-in for undecodable bytes, or
# from a broken `\udXXX` escape in JSON or YAML; tokenizers and UTF-8 encoding fail on them) and
# Unicode's noncharacters.
_NOT_TEXT = re.compile("[\ud800-\udfff\ufdd0-\ufdef" + "".join(
    chr(plane + 0xFFFE) + chr(plane + 0xFFFF) for plane in range(0, 0x110000, 0x10000)) + "]")
_SURROGATE_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")


def only_text(text: str) -> str:
    """`text` with each surrogate pair joined into the character it encodes and every other
    non-character dropped."""
    if not _NOT_TEXT.search(text):
        return text
    text = _SURROGATE_PAIR.sub(
        lambda pair: pair.group().encode("utf-16-le", "surrogatepass").decode("utf-16-le"), text)
    return _NOT_TEXT.sub("", text)
