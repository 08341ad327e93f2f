"""Text extraction for retrieval: each format's parser, strict decoding, and failures reported
with OpenAI's ``last_error`` codes instead of parser exceptions."""

from __future__ import annotations

import io
from pathlib import Path

import pypdf
import pytest
from pypdf import PdfWriter

from chatgate.retrieval.documents import SUPPORTED_EXTENSIONS, DocumentError, extract_text

DOCUMENTS = Path(__file__).parent / "data" / "documents"
TWO_PAGES = (DOCUMENTS / "two_pages.pdf").read_bytes()
PAGE_ONE = "Quarterly report: revenue grew 12 percent."
PAGE_TWO = "Second page: the outlook remains stable."


def failure(data: bytes, filename: str, **kwargs: int) -> DocumentError:
    with pytest.raises(DocumentError) as caught:
        extract_text(data, filename, **kwargs)
    return caught.value


# --- plain text ----------------------------------------------------------------------------


def test_plain_text_is_returned_as_is() -> None:
    text = "Prices rose 3 % in März — see §4.\n\tIndented line\n"
    assert extract_text(text.encode(), "notes.txt") == text


def test_markdown_keeps_its_markup() -> None:
    source = "# Title\n\n* item with **bold**\n\n```py\nprint(1)\n```\n"
    assert extract_text(source.encode(), "README.md") == source
    assert extract_text(source.encode(), "guide.markdown") == source


@pytest.mark.parametrize("filename", ["data.json", "table.csv", "main.py", "deploy.sh", "a.CPP"])
def test_code_and_data_files_are_text(filename: str) -> None:
    assert extract_text(b'{"key": "value"}\n', filename) == '{"key": "value"}\n'


def test_extension_is_case_insensitive() -> None:
    assert extract_text(b"shouting", "NOTES.TXT") == "shouting"


def test_utf8_bom_is_stripped() -> None:
    assert extract_text(b"\xef\xbb\xbfhello", "a.txt") == "hello"


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_are_read_by_their_bom(codec: str) -> None:
    text = "Grüße, 世界 😀\nsecond line"
    data = text.encode(codec)
    if not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        data = b"\xfe\xff" + data  # utf-16-be writes no BOM of its own
    assert extract_text(data, "a.txt") == text


def test_line_endings_are_normalised_and_nul_removed() -> None:
    assert extract_text(b"one\r\ntwo\rthree\x00\nfour", "a.txt") == "one\ntwo\nthree\nfour"


def test_invalid_utf8_fails_instead_of_guessing() -> None:
    error = failure("café".encode("latin-1"), "menu.txt")
    assert error.code == "invalid_file"
    assert "UTF-8" in error.message
    assert "offset 3" in error.message


def test_utf16_with_a_lone_surrogate_fails() -> None:
    error = failure(b"\xff\xfe" + "ok".encode("utf-16-le") + b"\x00\xd8", "a.txt")
    assert error.code == "invalid_file"


@pytest.mark.parametrize("data", [b"", b" \n\t\r\n", b"\x00\x00", b"\xef\xbb\xbf"])
def test_a_file_without_text_is_invalid(data: bytes) -> None:
    error = failure(data, "empty.txt")
    assert error.code == "invalid_file"
    assert "no text" in error.message


def test_text_beyond_max_chars_is_invalid() -> None:
    assert extract_text(b"x" * 100, "a.txt", max_chars=100) == "x" * 100
    error = failure(b"x" * 101, "a.txt", max_chars=100)
    assert error.code == "invalid_file"
    assert "100 characters" in error.message


# --- unsupported ---------------------------------------------------------------------------


@pytest.mark.parametrize("filename", ["report.docx", "photo.png", "Makefile", "archive.tar.gz"])
def test_unknown_extensions_are_unsupported(filename: str) -> None:
    error = failure(b"anything", filename)
    assert error.code == "unsupported_file"
    assert ".pdf" in error.message
    assert ".md" in error.message
    assert str(error) == error.message


def test_supported_extensions() -> None:
    assert {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".json", ".py"} <= (
        SUPPORTED_EXTENSIONS
    )
    assert ".docx" not in SUPPORTED_EXTENSIONS


# --- HTML ----------------------------------------------------------------------------------

PAGE_TEXT = """\
- Home
- Docs

Gateway handbook

The gateway speaks OpenAI's API & keeps every request on your own hardware.

First line
second line
third line

Setup

1. Install the package
2. Write a config:
  - listen address
  - upstream models
    - one per provider
3. Start the server

Limit | Default
Requests per minute | 600
Tokens per minute | 90 000

chatgate serve \\
    --config gateway.yaml

Deeply nested text.

Licensed under Apache-2.0"""


def test_html_page_keeps_visible_text_and_block_structure() -> None:
    text = extract_text((DOCUMENTS / "page.html").read_bytes(), "page.html")
    assert text == PAGE_TEXT


def test_html_drops_what_a_reader_never_sees() -> None:
    text = extract_text((DOCUMENTS / "page.html").read_bytes(), "page.htm")
    assert "must not appear" not in text
    assert "font-family" not in text
    assert "title is not body text" not in text
    assert "\n\n\n" not in text


def test_html_in_a_declared_legacy_charset() -> None:
    page = b'<html><head><meta charset="windows-1252"></head><p>caf\xe9 \x80 5</p></html>'
    assert extract_text(page, "menu.html") == "café € 5"


def test_html_with_a_utf16_bom() -> None:
    assert extract_text("<p>Grüße</p>".encode("utf-16"), "a.html") == "Grüße"


def test_html_that_is_not_utf8_and_declares_nothing_fails() -> None:
    assert failure(b"<p>caf\xe9</p>", "a.html").code == "invalid_file"


def test_html_without_visible_text_is_invalid() -> None:
    page = b"<html><head><title>t</title></head><body><script>x()</script></body></html>"
    assert failure(page, "a.html").code == "invalid_file"


def test_deeply_nested_html_does_not_hit_the_recursion_limit() -> None:
    page = b"<div>" * 20_000 + b"deep" + b"</div>" * 20_000
    assert extract_text(page, "a.html") == "deep"


# --- PDF -----------------------------------------------------------------------------------


def encrypted(user_password: str, algorithm: str) -> bytes:
    writer = PdfWriter(clone_from=io.BytesIO(TWO_PAGES))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm=algorithm)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_pdf_pages_are_joined_by_a_blank_line() -> None:
    assert extract_text(TWO_PAGES, "report.PDF") == f"{PAGE_ONE}\n\n{PAGE_TWO}"


@pytest.mark.parametrize("algorithm", ["RC4-128", "AES-256"])
def test_pdf_encrypted_with_an_empty_password_is_read(algorithm: str) -> None:
    assert extract_text(encrypted("", algorithm), "a.pdf") == f"{PAGE_ONE}\n\n{PAGE_TWO}"


def test_pdf_that_needs_a_password_is_invalid() -> None:
    error = failure(encrypted("secret", "AES-256"), "a.pdf")
    assert error.code == "invalid_file"
    assert "password" in error.message


@pytest.mark.parametrize(
    "data",
    [
        TWO_PAGES[: len(TWO_PAGES) // 2],  # truncated: no xref, no trailer
        TWO_PAGES.replace(b"startxref", b"startxrex"),
        b"%PDF-1.7\n" + bytes(range(256)) * 8,
        b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 9 0 R >>\nendobj\ntrailer\n<< /Root 1 0 R >>",
    ],
    ids=["truncated", "no-startxref", "garbage", "dangling-pages"],
)
def test_corrupt_pdf_is_invalid_not_a_crash(data: bytes) -> None:
    error = failure(data, "broken.pdf")
    assert error.code == "invalid_file"
    assert error.message.startswith("The PDF")


@pytest.mark.parametrize("exception", [KeyError("/Font"), RecursionError(), TypeError("None")])
def test_any_exception_from_inside_pypdf_becomes_invalid_file(
    monkeypatch: pytest.MonkeyPatch, exception: Exception
) -> None:
    # pypdf's object model fails with plain Python exceptions on some malformed files.
    def broken(page: pypdf.PageObject) -> str:
        raise exception

    monkeypatch.setattr(pypdf.PageObject, "extract_text", broken)
    error = failure(TWO_PAGES, "a.pdf")
    assert error.code == "invalid_file"
    assert error.__cause__ is exception


def test_a_file_that_is_not_a_pdf_is_invalid() -> None:
    error = failure(b"<html><body>hello</body></html>", "fake.pdf")
    assert error.code == "invalid_file"
    assert "not a PDF" in error.message


def test_pdf_without_extractable_text_is_invalid() -> None:
    writer = PdfWriter()
    writer.add_blank_page(612, 792)
    out = io.BytesIO()
    writer.write(out)
    error = failure(out.getvalue(), "scan.pdf")
    assert error.code == "invalid_file"
    assert "no extractable text" in error.message


def test_pdf_text_beyond_max_chars_is_invalid() -> None:
    limit = len(PAGE_ONE) + 2 + len(PAGE_TWO)
    assert extract_text(TWO_PAGES, "a.pdf", max_chars=limit) == f"{PAGE_ONE}\n\n{PAGE_TWO}"
    error = failure(TWO_PAGES, "a.pdf", max_chars=limit - 1)
    assert error.code == "invalid_file"
    assert "characters" in error.message
