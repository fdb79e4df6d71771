"""Photos checked by their content and re-encoded for serving: upright (EXIF orientation
applied), without EXIF, GPS or other metadata, at most SERVED_SIZE pixels on a side, plus a
thumbnail.

A small file may decode to a huge image (a decompression bomb: a 160 KB PNG of 150 MB), so the
decoded size is bounded before decoding, from the header: a JPEG is decoded at a reduced
scale straight away (`draft`), anything else is refused past MAX_DECODED_BYTES. The image is
decoded once and shrunk in place, then its thumbnail from it; `limit_concurrency` bounds how
many photos a process works on at once.
"""

import asyncio
import io
import warnings
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import pillow_heif
from PIL import Image, ImageOps, UnidentifiedImageError

pillow_heif.register_heif_opener()

# Pillow's format: (the format served, its media type). HEIC is served as JPEG, which every
# browser shows; MPO is the JPEG (with a second, depth or stereo, picture) many phones write.
FORMATS = {
    "JPEG": ("JPEG", "image/jpeg"),
    "MPO": ("JPEG", "image/jpeg"),
    "PNG": ("PNG", "image/png"),
    "WEBP": ("WEBP", "image/webp"),
    "HEIF": ("JPEG", "image/jpeg"),
}
SERVED_SIZE = (2048, 2048)
THUMBNAIL_SIZE = (320, 320)
# The most a photo may take once decoded (a 24-megapixel RGB photo is 72 MB); JPEGs are
# decoded at a scale of 1/2, 1/4 or 1/8 that still covers SERVED_SIZE, so they stay under it.
MAX_DECODED_BYTES = 72 * 1024 * 1024
# Pillow's own guard, for any other decoding in the process: a header claiming more pixels is
# refused before anything is allocated.
Image.MAX_IMAGE_PIXELS = 200_000_000
PHOTOS_AT_ONCE = 2  # per process: each may hold up to MAX_DECODED_BYTES


class NotAnImage(ValueError):
    pass


@dataclass(frozen=True)
class Photo:
    data: bytes
    media_type: str
    width: int
    height: int
    thumbnail: bytes  # JPEG


def _encode(image: Image.Image, fmt: str) -> bytes:
    if fmt == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    out = io.BytesIO()
    options = {"quality": 88} if fmt in ("JPEG", "WEBP") else {}
    image.save(out, format=fmt, **options)  # no exif= or pnginfo=: metadata is dropped
    return out.getvalue()


def _open(data: bytes) -> tuple[Image.Image, str]:
    """The image, its header read and its decoding planned within MAX_DECODED_BYTES."""
    image = Image.open(io.BytesIO(data))
    if image.format not in FORMATS:
        raise NotAnImage(f"{image.format or 'this'} images are not accepted")
    source_format = image.format
    if source_format in ("JPEG", "MPO"):
        image.draft("RGB", SERVED_SIZE)  # the decoder's own scaling: the size shrinks now
    decoded = image.width * image.height * len(image.getbands())
    if decoded > MAX_DECODED_BYTES:
        raise NotAnImage(f"the image has too many pixels ({image.width}×{image.height})")
    return image, source_format


def process(data: bytes) -> Photo:
    """The photo to serve, or NotAnImage when `data` is no image of an accepted format."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image, source_format = _open(data)
            image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError) as exc:
        raise NotAnImage("the file is not a readable JPEG, PNG, WebP or HEIC image") from exc
    except Image.DecompressionBombWarning as exc:
        raise NotAnImage("the image has too many pixels") from exc
    image.thumbnail(SERVED_SIZE)  # in place; then turned upright, in place
    ImageOps.exif_transpose(image, in_place=True)
    served_format, media_type = FORMATS[source_format]
    served = _encode(image, served_format)
    width, height = image.size
    image.thumbnail(THUMBNAIL_SIZE)
    return Photo(
        data=served,
        media_type=media_type,
        width=width,
        height=height,
        thumbnail=_encode(image, "JPEG"),
    )


T = TypeVar("T")
_working: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]" = (
    weakref.WeakKeyDictionary()
)


async def limit_concurrency(work: Callable[[], Awaitable[T]]) -> T:
    """Runs `work` when fewer than PHOTOS_AT_ONCE photos are being worked on in this process
    (this event loop): the others wait their turn instead of each holding its pixels."""
    loop = asyncio.get_running_loop()
    semaphore = _working.setdefault(loop, asyncio.Semaphore(PHOTOS_AT_ONCE))
    async with semaphore:
        return await work()
