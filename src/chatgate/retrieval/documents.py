"""Plain text out of an uploaded file, for chunking into a vector store.

The parser is chosen by the file's extension, as OpenAI's ``file_search`` does: the bytes of an
upload say little reliable about their type, and a wrong guess fails later and less clearly.
Every failure is a :class:`DocumentError` whose ``code`` is one of the values OpenAI reports in a
vector-store file's ``last_error.code``, so the caller can store it as-is. Parsers never raise
past this module: a corrupt upload is the uploader's problem, not a server error.

Text is decoded strictly. A wrong guess at an encoding produces mojibake that is then embedded,
searched and quoted back to users, which is worse than telling the uploader the file is unreadable.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Literal

import pypdf
from pypdf import PasswordType
from selectolax.lexbor import LexborHTMLParser, LexborNode

__all__ = ["SUPPORTED_EXTENSIONS", "DocumentError", "extract_text"]

DEFAULT_MAX_CHARS = 20_000_000

# Formats whose bytes are the text itself. Markdown stays markdown: it reads well to a model and
# keeps offsets meaningful against the original upload.
_PLAIN_EXTENSIONS = frozenset(
    {
        ".txt", ".md", ".markdown", ".json", ".csv", ".tex", ".rst",
        ".py", ".js", ".ts", ".java", ".c", ".cpp", ".go", ".rb", ".sh", ".css",
    }
)  # fmt: skip
_HTML_EXTENSIONS = frozenset({".html", ".htm"})
_PDF_EXTENSIONS = frozenset({".pdf"})
SUPPORTED_EXTENSIONS: frozenset[str] = _PLAIN_EXTENSIONS | _HTML_EXTENSIONS | _PDF_EXTENSIONS

ErrorCode = Literal["unsupported_file", "invalid_file"]


class DocumentError(Exception):
    """A file that cannot be turned into text; ``code`` is OpenAI's ``last_error.code``."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message


def extract_text(data: bytes, filename: str, *, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """The text of ``data``, parsed according to ``filename``'s extension (case-insensitive).

    Line endings come back as ``\\n`` and NUL characters are removed (databases and tokenizers
    choke on them). More than ``max_chars`` characters of text fails as ``invalid_file``: a few
    kilobytes of compressed PDF can expand to gigabytes of text, and this limit is what stops
    that (pypdf itself caps each decompressed stream, not a document's sum of them). Plain
    text and HTML are no longer than their upload, which the caller's upload limit bounds.
    """
    extension = PurePosixPath(filename.replace("\\", "/")).suffix.lower()
    if extension in _PLAIN_EXTENSIONS:
        text = _decode(data)
    elif extension in _HTML_EXTENSIONS:
        text = _html_text(data)
    elif extension in _PDF_EXTENSIONS:
        text = _pdf_text(data, max_chars)
    else:
        shown = f"extension '{extension}'" if extension else "no extension"
        raise DocumentError(
            "unsupported_file",
            f"Files with {shown} are not supported for retrieval. "
            f"Supported extensions: {', '.join(sorted(SUPPORTED_EXTENSIONS))}.",
        )
    text = _normalise(text)
    _check_size(len(text), max_chars)
    if not text.strip():
        raise DocumentError("invalid_file", "The file contains no text.")
    return text


def _normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def _check_size(chars: int, max_chars: int) -> None:
    if chars > max_chars:
        raise DocumentError(
            "invalid_file", f"The file's text exceeds the limit of {max_chars:,} characters."
        )


# --- plain text ----------------------------------------------------------------------------

# Longest BOMs first: the UTF-32-LE BOM begins with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def _decode(data: bytes, fallback: str | None = None) -> str:
    """``data`` decoded by its BOM, else as ``fallback`` or UTF-8; the BOM is not kept."""
    encoding = fallback or "utf-8"
    for bom, named in _BOMS:
        if data.startswith(bom):
            data, encoding = data[len(bom) :], named
            break
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DocumentError(
            "invalid_file",
            f"The file is not valid {_display(encoding)} text "
            f"(undecodable byte at offset {exc.start}).",
        ) from None


def _display(encoding: str) -> str:
    return encoding.upper().replace("-LE", "").replace("-BE", "")


# --- HTML ----------------------------------------------------------------------------------

# Elements whose content is never reader-visible text.
_SKIPPED = frozenset({"head", "script", "style", "noscript", "template"})
# Block elements: separated from their neighbours by a blank line (2) or a line break (1).
_BLOCK_BREAKS = {
    **dict.fromkeys(
        ("p", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "table", "figure", "hr"), 2
    ),
    **dict.fromkeys(
        (
            "address", "article", "aside", "body", "caption", "dd", "details", "dialog", "div",
            "dl", "dt", "fieldset", "figcaption", "footer", "form", "header", "hgroup", "html",
            "legend", "li", "main", "nav", "ol", "option", "section", "summary", "tr", "ul",
        ),
        1,
    ),
}  # fmt: skip
_CELLS = frozenset({"td", "th"})
_LISTS = frozenset({"ul", "ol"})
_WHITESPACE = re.compile(r"\s+")
# An encoding declared in the first kilobyte, as the HTML standard's prescan looks for it.
_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)
# Labels the HTML standard maps to another encoding than Python's codec of the same name.
_CHARSET_ALIASES = {
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
}


def _html_text(data: bytes) -> str:
    # No size check before parsing: the text of a page is never longer than its markup, so the
    # upload limit already bounds it.
    writer = _TextWriter()
    root = LexborHTMLParser(_decode(data, _declared_charset(data))).root
    if root is not None:
        _Extractor(writer).walk(root)
    return writer.text()


def _declared_charset(data: bytes) -> str | None:
    match = _META_CHARSET.search(data[:1024])
    if match is None:
        return None
    label = match.group(1).decode("ascii").lower()
    try:
        name = codecs.lookup(_CHARSET_ALIASES.get(label, label)).name
    except LookupError:
        return None
    # A document that declares UTF-16 without a BOM is read as UTF-8 (the standard says so:
    # the declaration was found by reading the bytes as ASCII, so it cannot be UTF-16).
    return None if name.startswith("utf-16") else name


@dataclass(slots=True)
class _TextWriter:
    """Collects inline text into lines; blocks ask for line breaks that apply before more text.

    Breaks are only ever requested, never written at once, so nested blocks (a ``div`` in a
    ``li`` in a ``ul``) ask for the same break instead of stacking blank lines.
    """

    parts: list[str] = field(default_factory=list)
    pending_break: int = 0
    pending_space: bool = False
    pending_prefix: str = ""
    at_line_start: bool = True

    def block(self, breaks: int) -> None:
        self.pending_break = max(self.pending_break, breaks)
        self.pending_space = False

    def prefix(self, marker: str) -> None:
        """Starts the next line with ``marker`` (a list bullet), once it has text."""
        self.pending_prefix = marker

    def separator(self) -> None:
        """Between the cells of a table row: written only if the row already has text."""
        if not self.at_line_start and not self.pending_break:
            self.parts.append(" |")
            self.pending_space = True

    def inline(self, text: str) -> None:
        collapsed = _WHITESPACE.sub(" ", text)
        words = collapsed.strip(" ")
        if not words:
            self.pending_space = self.pending_space or bool(collapsed)
            return
        self._start(leading_space=collapsed[0] == " ")
        self.parts.append(words)
        self.pending_space = collapsed[-1] == " "

    def preformatted(self, text: str) -> None:
        if not text:
            return
        self._start(leading_space=False)
        self.parts.append(text)
        self.at_line_start = text.endswith("\n")

    def line_break(self) -> None:
        self.parts.append("\n")
        self.at_line_start = True
        self.pending_space = False

    def text(self) -> str:
        text = "".join(self.parts)
        text = re.sub(r"[ \t]+\n", "\n", text)
        return re.sub(r"\n{3,}", "\n\n", text).strip()

    def _start(self, *, leading_space: bool) -> None:
        if self.pending_break and self.parts:
            self.parts.append("\n" * self.pending_break)
            self.at_line_start = True
        self.pending_break = 0
        if self.at_line_start:
            if self.pending_prefix:
                self.parts.append(self.pending_prefix)
        elif leading_space or self.pending_space:
            self.parts.append(" ")
        self.pending_prefix = ""
        self.at_line_start = False
        self.pending_space = False


@dataclass(slots=True)
class _Frame:
    """An open element: the next of its children to visit, and its tag for closing it."""

    node: LexborNode | None
    tag: str


@dataclass(slots=True)
class _OpenList:
    ordered: bool
    items: int = 0


@dataclass(slots=True)
class _Extractor:
    """Walks a parsed document and feeds its visible text and structure to a writer."""

    writer: _TextWriter
    lists: list[_OpenList] = field(default_factory=list)
    preformatted: int = 0

    def walk(self, root: LexborNode) -> None:
        """Depth-first over ``root``'s descendants with an explicit stack: uploaded HTML can
        nest elements thousands deep, and Python's recursion limit must not decide whether a
        file is readable."""
        stack = [_Frame(root.child, "")]
        while stack:
            frame = stack[-1]
            node = frame.node
            if node is None:
                stack.pop()
                self._close(frame.tag)
                continue
            frame.node = node.next
            tag = node.tag or ""
            if tag == "-text":
                self._text(node.text_content or "")
            elif tag == "br":
                self.writer.line_break()
            elif not tag.startswith("-") and tag not in _SKIPPED:  # comments, doctype
                self._open(tag)
                stack.append(_Frame(node.child, tag))

    def _text(self, content: str) -> None:
        if self.preformatted:
            self.writer.preformatted(content)
        else:
            self.writer.inline(content)

    def _open(self, tag: str) -> None:
        breaks = _BLOCK_BREAKS.get(tag, 0)
        if breaks:
            self.writer.block(breaks)
        if tag in _CELLS:
            self.writer.separator()
        elif tag == "li":
            self.writer.prefix(self._bullet())
        elif tag in _LISTS:
            self.lists.append(_OpenList(ordered=tag == "ol"))
        elif tag == "pre":
            self.preformatted += 1

    def _close(self, tag: str) -> None:
        breaks = _BLOCK_BREAKS.get(tag, 0)
        if breaks:
            self.writer.block(breaks)
        if tag in _LISTS:
            self.lists.pop()
        elif tag == "pre":
            self.preformatted -= 1

    def _bullet(self) -> str:
        """A list item's marker, indented by its nesting, as markdown would write it."""
        if not self.lists:  # an <li> outside any list
            return "- "
        current = self.lists[-1]
        current.items += 1
        indent = "  " * (len(self.lists) - 1)
        return f"{indent}{current.items}. " if current.ordered else f"{indent}- "


# --- PDF -----------------------------------------------------------------------------------


def _pdf_text(data: bytes, max_chars: int) -> str:
    pages: list[str] = []
    total = 0
    for page_text in _pdf_pages(data):
        text = _normalise(page_text).strip()
        if text:
            total += len(text) + (2 if pages else 0)
            _check_size(total, max_chars)
            pages.append(text)
    if not pages:
        raise DocumentError(
            "invalid_file",
            "The PDF has no extractable text (a scanned document needs OCR first).",
        )
    return "\n\n".join(pages)


def _pdf_pages(data: bytes) -> Iterator[str]:
    """Each page's text; pypdf's many exception types all become ``invalid_file``."""
    # pypdf reads past junk before the header, and reports a non-PDF as a broken stream.
    if b"%PDF-" not in data[:1024]:
        raise DocumentError("invalid_file", "The file is not a PDF (it has no PDF header).")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise DocumentError("invalid_file", "The PDF is encrypted with a password.")
        for page in reader.pages:
            yield page.extract_text()
    except DocumentError:
        raise
    except Exception as exc:
        # pypdf raises its own errors for malformed files, but also KeyError, ValueError,
        # TypeError, RecursionError... from deep inside its object model.
        raise DocumentError("invalid_file", f"The PDF could not be read: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text if text and len(text) <= 200 else type(exc).__name__
