"""Report photos: checked, size-capped, hashed, kept as sent, with an upright preview (EXIF rotation applied).

Examples
--------
>>> import io
>>> from PIL import Image
>>> buf = io.BytesIO(); Image.new("RGB", (40, 20), "red").save(buf, "JPEG")
>>> p = inspect_photo(buf.getvalue(), name="a.jpg")
>>> p.media_type, p.width, p.height
('image/jpeg', 40, 20)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from gridwatch.errors import ValidationError
from gridwatch.storage import Store

__all__ = ["MAX_PHOTO_BYTES", "Photo", "inspect_photo", "store_photo", "photo_preview"]

#: the largest photo accepted (phone cameras give 2–8 MB)
MAX_PHOTO_BYTES = 15 * 1024 * 1024
#: the preview's longest side in pixels
PREVIEW_PX = 1280
_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "HEIF": "image/heic", "MPO": "image/jpeg"}
#: decoding bombs: refuse images claiming more pixels than a 50-megapixel camera makes
MAX_PIXELS = 60_000_000


@dataclass(frozen=True)
class Photo:
    """A checked photo: the original bytes, their SHA-256, and an upright JPEG preview."""

    name: str
    media_type: str
    original: bytes
    sha256: str
    width: int | None
    height: int | None
    taken_at: str | None
    preview: bytes | None


def _is_heic(data: bytes) -> bool:
    return data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"hevc")


def inspect_photo(data: bytes, *, name: str) -> Photo:
    """Check a photo's size and format and build its preview.

    JPEG and PNG are decoded (the EXIF orientation is applied to the preview,
    the original is kept untouched); HEIC from iPhones is kept as sent, with
    no preview, since no HEIF decoder ships with the app.

    Raises
    ------
    ValidationError
        Empty, too large, not an image, or a decompression bomb.
    """
    if not data:
        raise ValidationError("The photo {name} is empty.", name=name)
    if len(data) > MAX_PHOTO_BYTES:
        raise ValidationError("The photo {name} is {size} MB; the limit is {limit} MB. Send a smaller photo.",
                              name=name, size=round(len(data) / 2**20, 1), limit=MAX_PHOTO_BYTES // 2**20)
    digest = hashlib.sha256(data).hexdigest()
    if _is_heic(data):
        return Photo(name, "image/heic", data, digest, None, None, None, None)
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with Image.open(io.BytesIO(data)) as img:
            kind = _FORMATS.get(img.format or "")
            if kind is None:
                raise ValidationError("The photo {name} is a {format} image; send JPEG, PNG or HEIC.",
                                      name=name, format=img.format)
            exif = img.getexif()
            taken = exif.get(0x0132)  # DateTime
            width, height = img.size
            if exif.get(0x0112) in (5, 6, 7, 8):  # Orientation: rotated a quarter turn
                width, height = height, width
            upright = ImageOps.exif_transpose(img)
            upright.thumbnail((PREVIEW_PX, PREVIEW_PX))
            out = io.BytesIO()
            upright.convert("RGB").save(out, "JPEG", quality=85)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ValidationError("The file {name} is not a photo gridwatch can read (JPEG, PNG or HEIC).",
                              name=name) from exc
    return Photo(name, kind, data, digest, width, height, str(taken) if taken else None, out.getvalue())


def store_photo(store: Store, photo: Photo, *, task_id: int, uploaded_by: str,
                now: dt.datetime | None = None) -> dict:
    """Keep a photo for a task (the same photo twice is stored once); returns its reference for the report."""
    now = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None, microsecond=0)
    with store.transaction():
        if store.scalar("SELECT 1 FROM photos WHERE sha256 = ?", [photo.sha256]) is None:
            store.execute(
                "INSERT INTO photos (sha256, task_id, uploaded_by, uploaded_at, file_name, media_type, bytes, width,"
                " height, taken_at, original, preview) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [photo.sha256, task_id, uploaded_by, now, photo.name[:200], photo.media_type, len(photo.original),
                 photo.width, photo.height, photo.taken_at, photo.original, photo.preview])
    return {"sha256": photo.sha256, "name": photo.name, "media_type": photo.media_type,
            "bytes": len(photo.original)}


def photo_preview(store: Store, sha256: str) -> bytes | None:
    """The upright preview of a stored photo (None for HEIC, shown as a download instead)."""
    value = store.scalar("SELECT preview FROM photos WHERE sha256 = ?", [sha256])
    return bytes(value) if value is not None else None
