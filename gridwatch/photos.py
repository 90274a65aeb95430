"""Report photos: checked, size-capped, hashed, kept as sent, with an upright preview (EXIF rotation applied).

Every photo is bounded before it is decoded: its size (``photo_max_mb``), its pixels as its header gives them
(``photo_max_megapixels``; Pillow's decompression-bomb limit is set to the same figure and its warning refuses the
photo), and a report's photos by number and total size (``photo_max_count``, ``photo_max_total_mb``). A JPEG is
decoded at a reduced scale for its preview.

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
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from gridwatch.config import Settings
from gridwatch.errors import ValidationError
from gridwatch.storage import Store

__all__ = ["MAX_PHOTO_BYTES", "MAX_PIXELS", "Photo", "inspect_photo", "inspect_report_photos", "store_photo",
           "photo_preview"]

#: the largest photo accepted by default (phone cameras give 2–8 MB); the setting ``photo_max_mb`` decides
MAX_PHOTO_BYTES = int(Settings.photo_max_mb * 2**20)
#: the preview's longest side in pixels
PREVIEW_PX = 1280
_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "HEIF": "image/heic", "MPO": "image/jpeg"}
#: decoding bombs: by default, refuse images claiming more pixels than a 50-megapixel camera makes; the setting
#: ``photo_max_megapixels`` decides
MAX_PIXELS = int(Settings.photo_max_megapixels * 1_000_000)


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


def inspect_photo(data: bytes, *, name: str, settings: Settings | None = None) -> Photo:
    """Check a photo's size, pixels and format and build its preview.

    JPEG and PNG are decoded (the EXIF orientation is applied to the preview,
    the original is kept untouched); HEIC from iPhones is kept as sent, with
    no preview, since no HEIF decoder ships with the app. The pixels are
    counted from the header before anything is decoded.

    Parameters
    ----------
    data : bytes
        The photo as sent.
    name : str
        Its file name.
    settings : Settings, optional
        The limits (``photo_max_mb``, ``photo_max_megapixels``); default the loaded settings.

    Raises
    ------
    ValidationError
        Empty, too large, too many pixels (a decompression bomb), or not an image.
    """
    settings = settings or Settings.load()
    limit_mb = float(settings.photo_max_mb)
    if not data:
        raise ValidationError("The photo {name} is empty.", name=name)
    if len(data) > limit_mb * 2**20:
        raise ValidationError("The photo {name} is {size} MB; the limit is {limit:g} MB (photo_max_mb). Send a "
                              "smaller photo.", name=name, size=round(len(data) / 2**20, 1), limit=limit_mb)
    digest = hashlib.sha256(data).hexdigest()
    if _is_heic(data):
        return Photo(name, "image/heic", data, digest, None, None, None, None)
    megapixels = float(settings.photo_max_megapixels)
    most = int(megapixels * 1_000_000)
    Image.MAX_IMAGE_PIXELS = most  # Pillow warns past this figure, and refuses past twice it
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                kind = _FORMATS.get(img.format or "")
                if kind is None:
                    raise ValidationError("The photo {name} is a {format} image; send JPEG, PNG or HEIC.",
                                          name=name, format=img.format)
                width, height = img.size
                if width * height > most:
                    raise _too_many_pixels(name, width * height, megapixels)
                exif = img.getexif()
                taken = exif.get(0x0132)  # DateTime
                if exif.get(0x0112) in (5, 6, 7, 8):  # Orientation: rotated a quarter turn
                    width, height = height, width
                img.thumbnail((PREVIEW_PX, PREVIEW_PX))  # a JPEG is decoded at a reduced scale
                upright = ImageOps.exif_transpose(img)
                out = io.BytesIO()
                upright.convert("RGB").save(out, "JPEG", quality=85)
    except ValidationError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:  # Pillow counted first
        counted = re.search(r"\((\d+) pixels\)", str(exc))
        raise _too_many_pixels(name, int(counted[1]) if counted else most + 1, megapixels) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ValidationError("The file {name} is not a photo gridwatch can read (JPEG, PNG or HEIC).",
                              name=name) from exc
    return Photo(name, kind, data, digest, width, height, str(taken) if taken else None, out.getvalue())


def _too_many_pixels(name: str, pixels: int, megapixels: float) -> ValidationError:
    return ValidationError("The photo {name} has {size:.0f} megapixels; the limit is {limit:g} megapixels "
                           "(photo_max_megapixels). Send a smaller photo.", name=name, size=pixels / 1e6,
                           limit=megapixels)


def inspect_report_photos(photos: Sequence[tuple[str, bytes]], *,
                          settings: Settings | None = None) -> list[tuple[str, Photo]]:
    """Check the photos of one report: their number and total size first, then each (:func:`inspect_photo`).

    Raises
    ------
    ValidationError
        More photos than ``photo_max_count``, more in all than ``photo_max_total_mb``, or a photo
        :func:`inspect_photo` refuses.
    """
    settings = settings or Settings.load()
    most = int(settings.photo_max_count)
    if len(photos) > most:
        raise ValidationError("This report carries {count} photos; a report may carry {limit} (photo_max_count). "
                              "Keep the ones that show the finding.", count=len(photos), limit=most)
    total = sum(len(data) for _, data in photos)
    limit_mb = float(settings.photo_max_total_mb)
    if total > limit_mb * 2**20:
        raise ValidationError("The photos of this report come to {size} MB; a report may carry {limit:g} MB of "
                              "photos (photo_max_total_mb). Send fewer or smaller photos.",
                              size=round(total / 2**20, 1), limit=limit_mb)
    return [(name, inspect_photo(data, name=name, settings=settings)) for name, data in photos]


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
