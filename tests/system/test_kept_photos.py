"""What a consented photo leaves with us: the picture, never the uploaded file.

Photos kept with `photo_consent` are returned by the owner's access route and written by
`export_photos`; whatever the upload carried besides the picture must not be kept at all.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import ExifTags, Image

from harness.stack import Stack, running_stack, wait_for
from tests.support.images import jpeg

pytestmark = pytest.mark.slow

CAMERA = "Distinctive-Camera-4711"
LATITUDE = (48.0, 51.0, 24.36)
KEPT_PER_HOUR = 3


@pytest.fixture(scope="module")
def photo_stack(
    module_database: str, model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with running_stack(
        module_database,
        model_path,
        tmp_path_factory.mktemp("kept-photos"),
        services=("inference", "feedback"),
        extra_env={"KEPT_PHOTOS_PER_CLIENT_PER_HOUR": str(KEPT_PER_HOUR)},
    ) as running:
        yield running


def photo_with_gps() -> bytes:
    """A 640x480 JPEG, to be shown rotated (orientation 6), with GPS and camera EXIF."""
    picture = Image.new("RGB", (640, 480), (210, 40, 40))
    picture.paste((30, 30, 200), (0, 0, 160, 120))  # a corner that shows the rotation
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Make] = CAMERA
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = LATITUDE
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (2.0, 21.0, 7.2)
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=95, exif=exif, icc_profile=b"\0" * 512)
    data = out.getvalue()
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(ExifTags.IFD.GPSInfo)  # the premise
    return data


def client_from(address: str) -> httpx.Client:
    """A client of its own loopback address: its own share of kept photos and rate limits."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=15)


def kept_photo(stack: Stack, upload: bytes, client: httpx.Client) -> bytes:
    """Predict with photo consent, then read the kept photo back through the access route."""
    answer = client.post(
        f"{stack.url('inference')}/predict",
        files={"file": ("a.jpg", upload, "image/jpeg")},
        data={"rgpd_consent": "true", "photo_consent": "true"},
    )
    assert answer.status_code == 200, answer.text
    url = f"{stack.url('feedback')}/predictions/{answer.json()['prediction_id']}"
    wait_for(lambda: client.get(url).status_code == 200, 30, "the prediction stored")
    photo = client.get(url).json()["photo"]
    assert photo is not None, "the consented photo was not kept"
    return base64.b64decode(photo["image_base64"])


def test_kept_photos_lose_their_metadata_gps_included_but_keep_their_orientation(
    photo_stack: Stack,
) -> None:
    with client_from("127.0.0.10") as client:
        kept = kept_photo(photo_stack, photo_with_gps(), client)
    image = Image.open(io.BytesIO(kept))
    exif = image.getexif()
    assert not exif.get_ifd(ExifTags.IFD.GPSInfo), "GPS position kept"
    assert dict(exif) == {}, f"EXIF kept: {dict(exif)}"
    assert "icc_profile" not in image.info and "exif" not in image.info
    assert CAMERA.encode() not in kept
    # Shown upright: the stored pixels are the rotated ones, the blue corner now top right.
    assert image.size == (480, 640)
    red, _, blue = image.convert("RGB").getpixel((470, 10))  # type: ignore[misc]
    assert blue > 150 and red < 100


def test_bytes_appended_to_a_photo_are_not_kept(photo_stack: Stack) -> None:
    marker = b"not-a-picture-"
    upload = jpeg() + marker * 100_000  # a valid JPEG followed by 1.4 MB of something else
    with client_from("127.0.0.11") as client:
        kept = kept_photo(photo_stack, upload, client)
    assert marker not in kept
    assert len(kept) < 64 * 1024, f"{len(kept)} bytes kept of a 320x240 picture"
    assert Image.open(io.BytesIO(kept)).size == (320, 240)


def test_one_client_cannot_make_us_keep_more_than_its_share(photo_stack: Stack) -> None:
    with client_from("127.0.0.12") as greedy, client_from("127.0.0.13") as other:
        answers = [
            greedy.post(
                f"{photo_stack.url('inference')}/predict",
                files={"file": ("a.jpg", jpeg(), "image/jpeg")},
                data={"rgpd_consent": "true", "photo_consent": "true"},
            )
            for _ in range(KEPT_PER_HOUR + 2)
        ]
        assert [answer.status_code for answer in answers] == [200] * (KEPT_PER_HOUR + 2)
        urls = [
            f"{photo_stack.url('feedback')}/predictions/{answer.json()['prediction_id']}"
            for answer in answers
        ]
        wait_for(lambda: greedy.get(urls[-1]).status_code == 200, 30, "the predictions stored")
        kept = [greedy.get(url).json()["photo"] is not None for url in urls]
        assert kept == [True] * KEPT_PER_HOUR + [False, False]
        kept_photo(photo_stack, jpeg(), other)  # another client's share is its own
