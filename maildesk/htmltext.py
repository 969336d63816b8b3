"""Conversion of an HTML mail body to readable plain text.

Uses the stdlib ``html.parser``: it never raises on malformed markup, so
broken HTML from mail clients degrades to imperfect text instead of an error.
"""

from __future__ import annotations

import logging
import re
from html.parser import HTMLParser

logger = logging.getLogger(__name__)

# Elements whose content a reader never sees.
_HIDDEN_ELEMENTS = frozenset({"head", "title", "style", "script", "template"})

# Elements that start and end on a line of their own.
_BLOCK_ELEMENTS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "caption", "center", "dd", "div",
        "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4",
        "h5", "h6", "header", "hr", "html", "li", "main", "nav", "ol", "p", "pre", "section",
        "table", "tbody", "tfoot", "thead", "tr", "ul",
    }
)  # fmt: skip

_CELL_ELEMENTS = frozenset({"td", "th"})
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")
_BLANK_RUN = re.compile(r"\n{3,}")
_TAG = re.compile(r"<[^>]*>")


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._hidden_depth = 0
        self._pre_depth = 0
        self._at_line_start = True
        self._pending_space = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            # Everything before <body> was head content, even if </head> is missing.
            self._hidden_depth = 0
        if tag in _HIDDEN_ELEMENTS:
            self._hidden_depth += 1
            return
        if self._hidden_depth:
            return
        if tag == "br":
            self._newline(force=True)
        elif tag in _BLOCK_ELEMENTS:
            self._newline()
            if tag == "li":
                self._emit("- ")
            elif tag == "pre":
                self._pre_depth += 1
        elif tag in _CELL_ELEMENTS:
            self._pending_space = True

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/> and <hr/>: a self-closing hidden element must not open a hidden range.
        if tag not in _HIDDEN_ELEMENTS:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_ELEMENTS:
            self._hidden_depth = max(0, self._hidden_depth - 1)
            return
        if self._hidden_depth:
            return
        if tag in _BLOCK_ELEMENTS:
            if tag == "pre":
                self._pre_depth = max(0, self._pre_depth - 1)
            self._newline()
        elif tag in _CELL_ELEMENTS:
            self._pending_space = True

    def handle_data(self, data: str) -> None:
        if self._hidden_depth or not data:
            return
        if self._pre_depth:
            self._emit(data)
            return
        collapsed = _HTML_SPACE.sub(" ", data)
        if collapsed.startswith(" "):
            self._pending_space = True
            collapsed = collapsed.lstrip(" ")
        if not collapsed:
            return
        if self._pending_space and not self._at_line_start:
            self._emit(" ")
        self._pending_space = collapsed.endswith(" ")
        self._emit(collapsed.rstrip(" "))

    def _emit(self, text: str) -> None:
        self.chunks.append(text)
        self._at_line_start = text.endswith("\n")

    def _newline(self, force: bool = False) -> None:
        self._pending_space = False
        if force or not self._at_line_start:
            self.chunks.append("\n")
            self._at_line_start = True


def html_to_text(html: str) -> str:
    """Convert an HTML body to plain text.

    Drops <head>, <style>, <script> and <title>; turns entities and &nbsp;
    into characters (a no-break space into a plain space); puts block
    elements and <br> on lines of their own; collapses runs of blank lines
    to one.
    """
    collector = _TextCollector()
    try:
        collector.feed(html)
        collector.close()
        text = "".join(collector.chunks)
    except AssertionError:
        # Older html.parser releases assert on some malformed declarations.
        logger.debug("html.parser failed, stripping tags with a regular expression")
        text = _TAG.sub(" ", html)

    return _tidy(text)


def _tidy(text: str) -> str:
    text = text.replace("\xa0", " ").replace("\r\n", "\n").replace("\r", "\n")
    lines = [line.rstrip() for line in text.split("\n")]

    return _BLANK_RUN.sub("\n\n", "\n".join(lines)).strip("\n").strip()
