"""Photos checked by their content and re-encoded for serving: upright (EXIF orientation
applied), without EXIF, GPS or other metadata, plus a thumbnail."""

import io
import warnings
from dataclasses import dataclass

import pillow_heif
from PIL import Image, ImageOps, UnidentifiedImageError

pillow_heif.register_heif_opener()

# Pillow's format: (the format served, its media type). HEIC is served as JPEG, which every
# browser shows.
FORMATS = {
    "JPEG": ("JPEG", "image/jpeg"),
    "PNG": ("PNG", "image/png"),
    "WEBP": ("WEBP", "image/webp"),
    "HEIF": ("JPEG", "image/jpeg"),
}
THUMBNAIL_SIZE = (320, 320)
MAX_PIXELS = 50_000_000  # a 50-megapixel photo; more is refused (decompression bombs)


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
    options = {"quality": 88} if fmt in ("JPEG", "WEBP") else {"optimize": True}
    image.save(out, format=fmt, **options)  # no exif= or pnginfo=: metadata is dropped
    return out.getvalue()


def process(data: bytes) -> Photo:
    """The photo to serve, or NotAnImage when `data` is no image of an accepted format."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in FORMATS:
                raise NotAnImage(f"{image.format or 'this'} images are not accepted")
            if image.width * image.height > MAX_PIXELS:
                raise NotAnImage("the image has too many pixels")
            source_format = image.format
            image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError) as exc:
        raise NotAnImage("the file is not a readable JPEG, PNG, WebP or HEIC image") from exc
    except Image.DecompressionBombWarning as exc:
        raise NotAnImage("the image has too many pixels") from exc
    upright = ImageOps.exif_transpose(image)
    served_format, media_type = FORMATS[source_format]
    thumbnail = upright.copy()
    thumbnail.thumbnail(THUMBNAIL_SIZE)
    return Photo(
        data=_encode(upright, served_format),
        media_type=media_type,
        width=upright.width,
        height=upright.height,
        thumbnail=_encode(thumbnail, "JPEG"),
    )
