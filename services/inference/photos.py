"""What is kept of a photo its owner lets us keep: the picture, re-encoded, never the upload.

The uploaded bytes carry whatever the client put in them: EXIF with the GPS position and the
camera's serial number, ICC profiles, comments, and anything appended after the image (a valid
JPEG followed by 10 MiB of other data decodes fine). Only decoded pixels are kept: upright,
at most `max_side` pixels on the longest side, encoded afresh as a JPEG without metadata.
"""

from __future__ import annotations

import io

from PIL import Image

from catdog.images import ImageLimits, decode, open_image
from catdog.preprocessing import to_rgb

CONTENT_TYPE = "image/jpeg"
# Visually lossless for photos at this size; the encoder writes no EXIF, ICC or comment
# unless asked to.
_QUALITY = 85


def keepable(data: bytes, limits: ImageLimits, *, max_side: int) -> bytes:
    """The photo re-encoded for keeping: orientation applied, then every metadata dropped."""
    image = open_image(data, limits)
    if image.format in {"JPEG", "MPO"}:
        image.draft("RGB", (max_side, max_side))
    picture = to_rgb(decode(image))
    picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=_QUALITY, optimize=True)
    return out.getvalue()
