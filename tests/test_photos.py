"""Report photos: formats, size cap, EXIF rotation, hashing, storage."""

from __future__ import annotations

import hashlib
import io

import pytest
from PIL import Image

from gridwatch.errors import ValidationError
from gridwatch.photos import MAX_PHOTO_BYTES, inspect_photo, photo_preview, store_photo


def _jpeg(width=64, height=32, orientation=None) -> bytes:
    img = Image.new("RGB", (width, height), "green")
    buf = io.BytesIO()
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    exif[0x0132] = "2026:06:10 11:20:00"
    img.save(buf, "JPEG", exif=exif.tobytes())
    return buf.getvalue()


def test_exif_rotation_is_applied_to_the_preview_and_the_original_kept():
    data = _jpeg(64, 32, orientation=6)  # a phone held upright: stored sideways, rotate 90°
    photo = inspect_photo(data, name="火点.jpg")
    assert photo.original == data and photo.sha256 == hashlib.sha256(data).hexdigest()
    assert (photo.width, photo.height) == (32, 64)
    preview = Image.open(io.BytesIO(photo.preview))
    assert preview.size == (32, 64)
    assert photo.taken_at == "2026:06:10 11:20:00"


def test_png_and_heic_are_accepted_other_things_are_not():
    buf = io.BytesIO()
    Image.new("RGB", (10, 10)).save(buf, "PNG")
    assert inspect_photo(buf.getvalue(), name="a.png").media_type == "image/png"
    heic = b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64
    photo = inspect_photo(heic, name="IMG_0001.HEIC")
    assert photo.media_type == "image/heic" and photo.preview is None
    gif = io.BytesIO()
    Image.new("P", (5, 5)).save(gif, "GIF")
    with pytest.raises(ValidationError, match="GIF"):
        inspect_photo(gif.getvalue(), name="a.gif")
    with pytest.raises(ValidationError, match="not a photo"):
        inspect_photo(b"%PDF-1.4 not an image", name="a.pdf")
    with pytest.raises(ValidationError, match="empty"):
        inspect_photo(b"", name="a.jpg")
    with pytest.raises(ValidationError, match="limit"):
        inspect_photo(b"\xff" * (MAX_PHOTO_BYTES + 1), name="big.jpg")


def test_stored_once_and_previewed(demo_store):
    photo = inspect_photo(_jpeg(), name="a.jpg")
    ref = store_photo(demo_store, photo, task_id=1, uploaded_by="demo")
    store_photo(demo_store, photo, task_id=1, uploaded_by="demo")
    assert demo_store.scalar("SELECT count(*) FROM photos") == 1
    assert ref["sha256"] == photo.sha256
    assert photo_preview(demo_store, photo.sha256) == photo.preview
    assert bytes(demo_store.scalar("SELECT original FROM photos")) == photo.original
