"""Text out of an uploaded document (Markdown, plain text, PDF, HTML), cleaned and cut into
sections; then chunks of about ``CHUNK_CHARS`` characters with ``OVERLAP_CHARS`` of overlap,
cut at paragraph, sentence or word boundaries. Every failure is a ``DocumentRejected`` with
a stable code (unsupported, corrupt, no text): retrying will not help.
"""

from __future__ import annotations

import io
import re
import unicodedata
from dataclasses import dataclass

MEDIA_TYPES = {
    "text/markdown": "markdown",
    "text/plain": "text",
    "application/pdf": "pdf",
    "text/html": "html",
}
EXTENSIONS = {".md": "text/markdown", ".markdown": "text/markdown", ".txt": "text/plain", ".pdf": "application/pdf",
              ".html": "text/html", ".htm": "text/html"}
CHUNK_CHARS = 900
OVERLAP_CHARS = 150
MAX_SECTION_TITLE = 200


class DocumentRejected(Exception):
    """A document that can never be ingested: ``code`` is unsupported-document, corrupt-document
    or no-text."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code, self.detail = code, detail


@dataclass(frozen=True)
class Section:
    title: str
    text: str


@dataclass(frozen=True)
class Chunk:
    position: int
    section: str
    text: str


def media_type_for(filename: str, declared: str | None) -> str:
    """The document's media type: the declared one when supported, else by extension."""
    declared = (declared or "").split(";")[0].strip().lower()
    if declared in MEDIA_TYPES:
        return declared
    lowered = filename.lower()
    for ext, media in EXTENSIONS.items():
        if lowered.endswith(ext):
            return media
    raise DocumentRejected("unsupported-document", "Supported documents: Markdown, plain text, PDF, HTML.")


_CONTROL = re.compile(r"[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f\u200b-\u200f\u2028\u2029\ufeff]")


def clean(text: str) -> str:
    """NFC, no control or zero-width characters, runs of blanks collapsed, at most one blank line."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _CONTROL.sub("", text)
    text = re.sub(r"[ \t\u00a0]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DocumentRejected("corrupt-document", "The text is not valid UTF-8.") from None


_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def _markdown_sections(text: str, default_title: str) -> list[Section]:
    sections: list[Section] = []
    trail: list[str] = []
    lines: list[str] = []
    title = default_title
    in_code = False

    def flush() -> None:
        body = clean("\n".join(lines))
        if body:
            sections.append(Section(title[:MAX_SECTION_TITLE], body))
        lines.clear()

    for line in text.split("\n"):
        if line.strip().startswith("```"):
            in_code = not in_code
        heading = None if in_code else _HEADING.match(line)
        if heading:
            flush()
            level = len(heading.group(1))
            trail[:] = trail[:level - 1] + [heading.group(2).strip()]
            title = " › ".join(trail)
            continue
        lines.append(line)
    flush()
    return sections


def _pdf_sections(data: bytes, default_title: str) -> list[Section]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise DocumentRejected("corrupt-document", "Encrypted PDFs are not supported.")
        pages = [(i + 1, clean(page.extract_text() or "")) for i, page in enumerate(reader.pages)]
    except DocumentRejected:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, AttributeError, IndexError):
        raise DocumentRejected("corrupt-document", "The PDF could not be read.") from None
    return [Section(f"{default_title} › page {n}"[:MAX_SECTION_TITLE], text) for n, text in pages if text]


def _html_sections(data: bytes, default_title: str) -> list[Section]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_decode(data), "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "iframe", "head"]):
        tag.decompose()
    # Headings become Markdown headings, so sections follow the same rules.
    for tag in soup.find_all(["h1", "h2", "h3", "h4", "h5", "h6"]):
        tag.replace_with("\n" + "#" * int(tag.name[1]) + " " + tag.get_text(" ", strip=True) + "\n")
    for tag in soup.find_all(["p", "li", "br", "tr", "div", "section", "article"]):
        tag.insert_after("\n")
    return _markdown_sections(soup.get_text(), default_title)


def sections_of(data: bytes, media_type: str, title: str) -> list[Section]:
    """The document's text as sections; DocumentRejected when unsupported, corrupt or empty."""
    kind = MEDIA_TYPES.get(media_type)
    if kind is None:
        raise DocumentRejected("unsupported-document", "Supported documents: Markdown, plain text, PDF, HTML.")
    if kind == "pdf":
        if not data.startswith(b"%PDF-"):
            raise DocumentRejected("corrupt-document", "The file is not a PDF.")
        sections = _pdf_sections(data, title)
    elif kind == "html":
        sections = _html_sections(data, title)
    elif kind == "markdown":
        sections = _markdown_sections(_decode(data), title)
    else:
        if b"\x00" in data[:8192]:
            raise DocumentRejected("corrupt-document", "The file is binary, not text.")
        body = clean(_decode(data))
        sections = [Section(title[:MAX_SECTION_TITLE], body)] if body else []
    if not sections or not any(s.text.strip() for s in sections):
        raise DocumentRejected("no-text", "The document has no text to index.")
    return sections


_BREAKS = ("\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ")


def _cut(text: str, limit: int) -> int:
    """Where to end a chunk of ``text``: the last good boundary before ``limit``."""
    if len(text) <= limit:
        return len(text)
    for sep in _BREAKS:
        at = text.rfind(sep, limit // 2, limit)
        if at > 0:
            return at + len(sep)
    return limit


def chunk(sections: list[Section], size: int = CHUNK_CHARS, overlap: int = OVERLAP_CHARS) -> list[Chunk]:
    """Chunks of at most ``size`` characters; consecutive chunks of a section share about
    ``overlap`` characters (started at a word boundary)."""
    chunks: list[Chunk] = []
    for section in sections:
        text = section.text
        start = 0
        while start < len(text):
            end = start + _cut(text[start:], size)
            piece = text[start:end].strip()
            if piece:
                chunks.append(Chunk(len(chunks), section.title, piece))
            if end >= len(text):
                break
            back = max(end - overlap, start + 1)
            space = text.find(" ", back, end)
            start = space + 1 if space != -1 else back
    return chunks
