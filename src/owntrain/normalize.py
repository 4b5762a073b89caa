"""Text normalisation applied by ingest (and again, identically, at scoring time).

Unicode NFC, markup such as ``<br />`` and HTML entities turned into text, control characters and
runs of whitespace collapsed to one space. The original text is kept beside the normalised one.
"""

from __future__ import annotations

import html
import re
import unicodedata

NORMALIZATION_VERSION = 1

# An HTML/XML tag: <br>, <br />, </p>, <a href="...">. A lone '<' as in "a < b" or "<3" is left alone.
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9:-]*(?:\s[^<>]*)?/?>")
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
# C0/C1 controls, the Unicode line/paragraph separators and lone surrogates become spaces.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Return the normalised form of one text ('' when nothing but markup or space is left)."""
    if "<" in text:
        text = _TAG.sub(" ", text)
    if "&" in text:
        text = _ENTITY.sub(lambda m: html.unescape(m.group(0)), text)
    text = _CONTROL.sub(" ", text)
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    return _SPACE.sub(" ", text).strip()
