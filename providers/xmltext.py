"""Reading XML as operators and their clients actually send it.

A document's own XML declaration cannot be trusted: TLC clients declare
`encoding="utf-16"` on UTF-8 bytes, and a parser that believed them would fail. Both the
Flooz adapter (reading answers) and the sandbox (reading requests) decode through here.
"""

from __future__ import annotations

import codecs
import re

# An XML declaration at the head of the document, whatever it declares.
_DECLARATION = re.compile(r"\A\s*<\?xml\b.*?\?>", re.DOTALL)
_DECLARED_ENCODING = re.compile(rb"""\A\s*<\?xml\b[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._-]+)""")
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: its BOM starts the same way
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def decode(body: bytes, charset: str | None = None) -> str:
    """The document as text, its XML declaration dropped.

    The declaration cannot be trusted: clients declare `encoding="utf-16"` on what are
    UTF-8 bytes, and a parser that believed them would fail. So the bytes decide: a byte
    order mark, or the NUL bytes of UTF-16 around `<`, or else UTF-8; only bytes that are
    not UTF-8 fall back on the charset of the Content-Type or of the declaration (an
    8-bit one: a UTF-16 or UTF-32 claim was already disproved). Raises ValueError.
    """
    for bom, codec in _BOMS:
        if body.startswith(bom):
            text = body[len(bom) :].decode(codec)
            break
    else:
        if body[:2] == b"<\x00":
            text = body.decode("utf-16-le")
        elif body[:2] == b"\x00<":
            text = body.decode("utf-16-be")
        else:
            text = _decode_8bit(body, charset)
    return _DECLARATION.sub("", text, count=1)


def _decode_8bit(body: bytes, charset: str | None) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    match = _DECLARED_ENCODING.match(body)
    for name in (charset, match.group(1).decode() if match else None):
        if not name or name.lower().replace("_", "-").startswith(("utf-16", "utf-32", "utf16")):
            continue
        try:
            return body.decode(name)
        except (LookupError, UnicodeDecodeError):
            continue
    raise ValueError("the document is neither UTF-8 nor in its declared encoding")
