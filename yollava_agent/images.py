"""Reading photos: files, bytes, data URLs and LangChain image content blocks, into RGB PIL images.

Every photo a user sends goes through `load_image`, which applies one policy: EXIF rotation is
applied; grayscale, palette, RGBA (over white), CMYK and 16-bit photos become 8-bit RGB; images
above `MAX_IMAGE_PIXELS` are refused before they are decoded (decompression bombs); truncated or
non-image data gives an `ImageInputError` naming the source.

Not done: fetching http(s) URLs. The product runs where there may be no network, and a chat model
that silently downloads is a privacy surprise; callers download and pass bytes or a data URL.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from yollava_agent.errors import ImageInputError

MAX_IMAGE_PIXELS = 40_000_000
"""Largest photo accepted, in pixels (a 40-megapixel camera). Larger ones are refused undecoded."""

ImageInput = str | Path | bytes | Image.Image


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit (and 32-bit integer) grayscale: scale to 8 bits instead of clipping at 255.
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") else max(float(array.max()), 1.0)
        image = Image.fromarray((array * (255.0 / peak)).clip(0, 255).astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _open(data: io.BytesIO | Path, label: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(data)
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                msg = (
                    f"Image {label} is {width}x{height} pixels, more than the "
                    f"{MAX_IMAGE_PIXELS:,} allowed; resize it before sending."
                )
                raise ImageInputError(msg)
            image.load()
            image = ImageOps.exif_transpose(image)
            return _to_rgb(image)
    except ImageInputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        msg = f"Image {label} is too large to decode safely ({e}); resize it before sending."
        raise ImageInputError(msg) from e
    except UnidentifiedImageError as e:
        msg = f"{label} is not an image PIL can read; send a JPEG, PNG, WebP, GIF or BMP photo."
        raise ImageInputError(msg) from e
    except (OSError, ValueError, SyntaxError) as e:
        msg = f"Image {label} is unreadable or truncated ({e}); send the photo again."
        raise ImageInputError(msg) from e


def load_image(source: ImageInput) -> Image.Image:
    """Read a photo from a path, raw bytes, a data URL or a PIL image, as 8-bit RGB."""
    if isinstance(source, Image.Image):
        return _to_rgb(ImageOps.exif_transpose(source))
    if isinstance(source, bytes):
        return _open(io.BytesIO(source), f"({len(source)} bytes)")
    text = str(source)
    if text.startswith("data:"):
        return _open(io.BytesIO(_decode_data_url(text)), _short(text))
    if text.startswith(("http://", "https://")):
        msg = (
            f"Image URL {_short(text)} is remote; remote images are not fetched. Download it and "
            "send a local path or a base64 data URL instead."
        )
        raise ImageInputError(msg)
    path = Path(unquote(urlparse(text).path) if text.startswith("file://") else text).expanduser()
    if not path.is_file():
        msg = f"Image file {str(path)!r} does not exist or is not a file."
        raise ImageInputError(msg)
    return _open(path, repr(str(path)))


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _decode_data_url(url: str) -> bytes:
    header, sep, payload = url.partition(",")
    if not sep or ";base64" not in header:
        msg = f"Data URL {_short(url)} is not base64-encoded ('data:image/png;base64,...')."
        raise ImageInputError(msg)
    return _decode_base64(payload, _short(url))


def _decode_base64(payload: str, label: str) -> bytes:
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as e:
        msg = f"Image data {label} is not valid base64 ({e})."
        raise ImageInputError(msg) from e


def is_image_block(block: object) -> bool:
    """True for LangChain content blocks that carry an image (any of its block formats)."""
    return isinstance(block, dict) and block.get("type") in ("image", "image_url")


def image_from_block(block: dict[str, Any]) -> Image.Image:
    """Read the photo of a LangChain image block.

    Accepted: `{"type": "image_url", "image_url": {"url": ...}}` (OpenAI style), `{"type":
    "image", "base64"|"url"|"path": ...}` (LangChain v1), and `{"type": "image", "source_type":
    "base64"|"url", "data"|"url": ...}` (LangChain v0). A url may be a data URL, a `file://` URL
    or a local path.
    """
    kind = block.get("type")
    if kind == "image_url":
        image_url = block.get("image_url")
        url = image_url.get("url") if isinstance(image_url, dict) else image_url
        if isinstance(url, str) and url:
            return load_image(url)
    elif kind == "image":
        if block.get("source_type") == "base64" or "base64" in block:
            payload = block.get("data") if block.get("source_type") == "base64" else block["base64"]
            if isinstance(payload, str):
                return load_image(_decode_base64(payload, "in the image block"))
        for key in ("url", "path"):
            if isinstance(block.get(key), str) and block[key]:
                return load_image(block[key])
    keys = sorted(k for k in block if k != "type")
    msg = (
        f"Image block of type {kind!r} with keys {keys} has no image this model can read: give "
        "a base64 data URL, base64 data, or a local file path."
    )
    raise ImageInputError(msg)
