"""The upload page offers exactly the image formats the decoder accepts."""

from __future__ import annotations

import mimetypes
from html.parser import HTMLParser

from fastapi.testclient import TestClient
from PIL import Image

from catdog.images import ACCEPTED_FORMATS

# What browsers see of an MPO (a JPEG followed by more pictures, as some cameras save): a .jpg
# of type image/jpeg. Only decoding tells them apart, so the JPEG entry offers both.
SEEN_BY_BROWSERS_AS = {"MPO": "JPEG"}
# Formats that some systems give no MIME type (a HEIC from a phone on Windows or Linux arrives
# as an empty or generic type), so the page names their extensions too.
OFFERED_BY_EXTENSION_TOO = frozenset({"HEIF", "AVIF"})


class _FileInput(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.accept: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "input" and attributes.get("type") == "file":
            self.accept.append(attributes.get("accept"))


def page_accept_list(client: TestClient) -> list[str]:
    """The entries of the served page's file input `accept` attribute, in order."""
    response = client.get("/")
    assert response.status_code == 200
    parser = _FileInput()
    parser.feed(response.text)
    assert len(parser.accept) == 1, parser.accept
    (accept,) = parser.accept
    assert accept, "the file input has no accept list"
    return [entry.strip() for entry in accept.split(",")]


def pillow_formats(entry: str) -> set[str]:
    """The Pillow formats an accept entry (a MIME type or an extension) names, from Pillow's own
    registries (several formats can share a type: BMP and DIB); for a type Pillow does not
    register (image/heic), through the extensions Python's built-in table gives it."""
    Image.init()
    by_extension = Image.registered_extensions()
    if entry.startswith("."):
        return {by_extension[entry.lower()]} if entry.lower() in by_extension else set()
    by_type = {name for name, mime in Image.MIME.items() if mime == entry}
    if by_type:
        return by_type
    extensions = mimetypes.MimeTypes().guess_all_extensions(entry)
    return {by_extension[extension] for extension in extensions if extension in by_extension}


def test_the_file_input_offers_what_the_decoder_accepts(client: TestClient) -> None:
    accept = page_accept_list(client)
    assert len(accept) == len(set(accept)), accept
    named = {entry: pillow_formats(entry) & ACCEPTED_FORMATS for entry in accept}
    # Nothing the decoder would refuse with a 415...
    assert [entry for entry, names in named.items() if not names] == []
    # ...and, by MIME type, every format it accepts.
    by_type = set().union(*(names for entry, names in named.items() if not entry.startswith(".")))
    assert by_type == {SEEN_BY_BROWSERS_AS.get(name, name) for name in ACCEPTED_FORMATS}
    by_extension = set().union(*(names for entry, names in named.items() if entry.startswith(".")))
    assert by_extension == OFFERED_BY_EXTENSION_TOO & ACCEPTED_FORMATS


def test_heic_photos_are_offered_under_every_name_they_arrive_with(client: TestClient) -> None:
    accept = set(page_accept_list(client))
    assert {"image/heic", "image/heif", ".heic", ".heif", "image/avif", ".avif"} <= accept
