"""Photos in every form users send them, and clear errors for what cannot be read."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import make_photo
from yollava_agent import ImageInputError, load_image
from yollava_agent.images import MAX_IMAGE_PIXELS, image_from_block


def _encode(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "P", "LA", "1"])
def test_photo_modes_become_rgb(mode: str, tmp_path: Path) -> None:
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    path = tmp_path / f"photo.{fmt.lower()}"
    make_photo().convert(mode).save(path, format=fmt)
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (48, 40)


def test_transparent_pixels_become_white() -> None:
    image = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert load_image(_encode(image)).getpixel((0, 0)) == (255, 255, 255)


def test_sixteen_bit_photos_keep_their_range() -> None:
    array = np.full((8, 8), 65535 // 2, dtype=np.uint16)
    image = load_image(_encode(Image.fromarray(array)))
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == (127, 127, 127)


def test_exif_rotation_is_applied() -> None:
    upright = make_photo(size=(60, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    image = load_image(_encode(upright, "JPEG", exif=exif))
    assert image.size == (30, 60)


def test_truncated_photo_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.jpg"
    path.write_bytes(_encode(make_photo(size=(200, 200)), "JPEG")[:300])
    with pytest.raises(ImageInputError, match=r"'.*cut\.jpg' is unreadable or truncated"):
        load_image(path)


def test_non_image_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a photo")
    with pytest.raises(ImageInputError, match=r"notes\.txt' is not an image"):
        load_image(path)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ImageInputError, match=r"'.*ghost\.png' does not exist"):
        load_image(tmp_path / "ghost.png")


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    side = int(MAX_IMAGE_PIXELS**0.5) + 10
    path = tmp_path / "bomb.png"
    Image.new("1", (side, side)).save(path)  # tiny file, huge image
    with pytest.raises(ImageInputError, match=rf"bomb\.png' is {side}x{side} pixels"):
        load_image(path)


def test_remote_urls_are_not_fetched() -> None:
    with pytest.raises(ImageInputError, match=r"'https://example.com/bo.jpg' is remote"):
        load_image("https://example.com/bo.jpg")


def test_bad_base64_is_named() -> None:
    with pytest.raises(ImageInputError, match=r"not valid base64"):
        load_image("data:image/png;base64,@@@")


def test_every_langchain_image_block_format(tmp_path: Path) -> None:
    data = base64.b64encode(_encode(make_photo())).decode()
    path = tmp_path / "bo.png"
    path.write_bytes(_encode(make_photo()))
    blocks = [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}},
        {"type": "image_url", "image_url": f"data:image/png;base64,{data}"},
        {"type": "image", "base64": data, "mime_type": "image/png"},
        {"type": "image", "source_type": "base64", "data": data, "mime_type": "image/png"},
        {"type": "image", "url": f"file://{path}"},
        {"type": "image", "source_type": "url", "url": str(path)},
        {"type": "image", "path": str(path)},
    ]
    expected = np.asarray(make_photo())
    for block in blocks:
        assert np.array_equal(np.asarray(image_from_block(block)), expected), block


def test_a_block_without_an_image_names_its_keys() -> None:
    with pytest.raises(ImageInputError, match=r"type 'image' with keys \['file_id'\]"):
        image_from_block({"type": "image", "file_id": "file-123"})
