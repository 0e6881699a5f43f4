"""decode_image: colour modes, EXIF orientation, resize policies, JPEG draft, and bad or huge files."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from headstart.kernels.engine.images import IMAGE_SIZE, RESIZE_POLICIES, decode_image, validate_policy
from headstart.kernels.errors import Invalid, TooLarge

LIMIT = 64_000_000


def encode(image: Image.Image, format: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def decode(data: bytes, policy: str = "center_crop", max_pixels: int = LIMIT) -> np.ndarray:
    array = decode_image(data, max_pixels=max_pixels, policy=policy)
    assert array.shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
    assert array.dtype == np.uint8
    return array


def huge_bilevel_png(width: int, height: int) -> bytes:
    """A real, valid 1-bit PNG of any size, streamed row by row so it costs a few tens of KB."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte, then packed bits
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def test_rgb_png_keeps_colour() -> None:
    array = decode(encode(Image.new("RGB", (50, 40), (200, 30, 90))))
    assert (array == (200, 30, 90)).all()


@pytest.mark.parametrize(
    ("image", "format", "expected"),
    [
        (Image.new("1", (30, 30), 1), "PNG", (255, 255, 255)),
        (Image.new("L", (30, 30), 77), "PNG", (77, 77, 77)),
        (Image.new("CMYK", (30, 30), (255, 0, 0, 0)), "TIFF", (0, 255, 255)),
        (Image.new("CMYK", (30, 30), (0, 0, 0, 0)), "TIFF", (255, 255, 255)),
        (Image.new("YCbCr", (30, 30), (128, 128, 128)), "TIFF", (128, 128, 128)),
    ],
    ids=["bilevel", "grey", "cmyk-cyan", "cmyk-white", "ycbcr"],
)
def test_plain_modes_become_rgb(image: Image.Image, format: str, expected: tuple[int, int, int]) -> None:
    array = decode(encode(image, format)).astype(int)
    assert np.abs(array - expected).max() <= 2


def test_cmyk_jpeg_becomes_rgb() -> None:
    data = encode(Image.new("CMYK", (64, 64), (0, 255, 255, 0)), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    array = decode(data).astype(int)
    assert np.abs(array - (255, 0, 0)).max() <= 8


def test_palette_with_transparency_is_composited_on_white() -> None:
    image = Image.new("P", (40, 40), 1)
    image.putpalette([0, 0, 0, 10, 200, 10] + [0, 0, 0] * 254)
    image.paste(0, (0, 0, 40, 20))  # top half uses index 0, which is transparent
    data = encode(image, transparency=0)
    assert Image.open(io.BytesIO(data)).mode == "P"
    array = decode(data, policy="stretch")
    assert (array[:100] == 255).all()
    assert (array[130:] == (10, 200, 10)).all()


def test_palette_without_transparency() -> None:
    image = Image.new("P", (40, 40), 1)
    image.putpalette([0, 0, 0, 10, 200, 10] + [0, 0, 0] * 254)
    assert (decode(encode(image)) == (10, 200, 10)).all()


@pytest.mark.parametrize(
    ("mode", "clear", "solid"), [("RGBA", (0, 0, 0, 0), (200, 0, 0, 255)), ("LA", (0, 0), (40, 255))]
)
def test_alpha_is_composited_on_white(mode: str, clear: tuple[int, ...], solid: tuple[int, ...]) -> None:
    image = Image.new(mode, (40, 40), clear)
    image.paste(solid, (0, 20, 40, 40))
    array = decode(encode(image), policy="stretch")
    assert (array[:100] == 255).all()
    expected = (200, 0, 0) if mode == "RGBA" else (40, 40, 40)
    assert (array[130:] == expected).all()


def test_half_transparent_pixels_blend_with_white() -> None:
    array = decode(encode(Image.new("RGBA", (20, 20), (0, 0, 0, 128))))
    assert np.abs(array.astype(int) - 127).max() <= 1


def test_16_bit_grey_png_is_scaled_not_clipped() -> None:
    samples = np.full((30, 30), 0x8000, dtype=np.uint16)
    samples[15:] = 0xFFFF
    image = Image.fromarray(samples)
    data = encode(image)
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    array = decode(data, policy="stretch")
    assert (array[:100] == 128).all()
    assert (array[130:] == 255).all()


def test_32_bit_integer_tiff_is_read_as_16_bit_range() -> None:
    samples = np.full((30, 30), 0x4000, dtype=np.int32)
    data = encode(Image.fromarray(samples), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "I"
    assert (decode(data) == 64).all()


def left_red_right_blue(width: int, height: int) -> Image.Image:
    image = Image.new("RGB", (width, height), (255, 0, 0))
    image.paste((0, 0, 255), (width // 2, 0, width, height))
    return image


@pytest.mark.parametrize(
    ("orientation", "top", "bottom"),
    [(6, (255, 0, 0), (0, 0, 255)), (8, (0, 0, 255), (255, 0, 0))],
)
def test_exif_orientation_is_honoured(
    orientation: int, top: tuple[int, ...], bottom: tuple[int, ...]
) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(left_red_right_blue(300, 200), "JPEG", quality=95, exif=exif)
    array = decode(data, policy="stretch").astype(int)
    # Orientation 6 means "rotate 90 degrees clockwise to view": the left half becomes the top.
    assert np.abs(array[:90].mean(axis=(0, 1)) - top).max() < 10
    assert np.abs(array[134:].mean(axis=(0, 1)) - bottom).max() < 10


def test_without_exif_left_stays_left() -> None:
    array = decode(encode(left_red_right_blue(300, 200)), policy="stretch")
    assert (array[:, :100] == (255, 0, 0)).all()
    assert (array[:, 124:] == (0, 0, 255)).all()


def test_center_crop_keeps_the_middle() -> None:
    # A 300x100 strip: red | green | blue thirds. Cropping the centre square leaves only green.
    image = Image.new("RGB", (300, 100), (255, 0, 0))
    image.paste((0, 255, 0), (100, 0, 200, 100))
    image.paste((0, 0, 255), (200, 0, 300, 100))
    array = decode(encode(image), policy="center_crop")
    assert (array[:, 2:-2] == (0, 255, 0)).all()


def test_stretch_keeps_everything() -> None:
    image = Image.new("RGB", (300, 100), (255, 0, 0))
    image.paste((0, 0, 255), (150, 0, 300, 100))
    array = decode(encode(image), policy="stretch")
    assert (array[:, :100] == (255, 0, 0)).all()
    assert (array[:, 124:] == (0, 0, 255)).all()


def test_pad_letterboxes_on_black() -> None:
    array = decode(encode(Image.new("RGB", (400, 200), (250, 250, 250))), policy="pad")
    # 400x200 fits as 224x112, centred: 56 black rows above and below.
    assert (array[:55] == 0).all()
    assert (array[169:] == 0).all()
    assert (array[57:167] == 250).all()


def test_pad_on_portrait_pads_the_sides() -> None:
    array = decode(encode(Image.new("L", (100, 200), 200)), policy="pad")
    assert (array[:, :55] == 0).all()
    assert (array[:, 57:167] == 200).all()


def test_big_jpeg_decoded_at_reduced_scale_matches_full_decode() -> None:
    rng = np.random.default_rng(0)
    smooth = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize((1600, 1200))
    data = encode(smooth, "JPEG", quality=90)
    full = Image.open(io.BytesIO(data)).convert("RGB")
    side = min(full.size)
    left = (full.size[0] - side) / 2
    reference = np.asarray(
        full.resize((224, 224), Image.Resampling.BILINEAR, box=(left, 0, left + side, side))
    )
    array = decode(data)
    assert np.abs(array.astype(int) - reference).mean() < 3


def test_small_images_are_scaled_up() -> None:
    assert (decode(encode(Image.new("RGB", (1, 1), (9, 8, 7)))) == (9, 8, 7)).all()


def test_pixel_bomb_is_refused_from_the_header() -> None:
    data = huge_bilevel_png(20_000, 20_000)
    assert len(data) < 200_000
    with pytest.raises(TooLarge, match="pixels"):
        decode_image(data, max_pixels=LIMIT)


def test_own_pixel_limit_is_checked_before_decoding() -> None:
    data = huge_bilevel_png(5_000, 4_000)
    with pytest.raises(TooLarge, match=r"5000x4000 = 20,000,000 pixels, over the limit of 1,000,000"):
        decode_image(data, max_pixels=1_000_000)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"hello, this is a text file that someone named cat.jpg\n", "not an image"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not an image"),
    ],
    ids=["empty", "text", "eps"],
)
def test_non_images_are_invalid(data: bytes, message: str) -> None:
    with pytest.raises(Invalid, match=message):
        decode_image(data, max_pixels=LIMIT)


@pytest.mark.parametrize("format", ["JPEG", "PNG"])
def test_truncated_images_are_invalid(format: str) -> None:
    rng = np.random.default_rng(1)
    data = encode(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), format)
    with pytest.raises(Invalid, match="cannot decode"):
        decode_image(data[: len(data) // 2], max_pixels=LIMIT)


def test_unknown_policy_is_refused() -> None:
    assert RESIZE_POLICIES == ("center_crop", "stretch", "pad")
    with pytest.raises(Invalid, match="center_crop, stretch, pad"):
        validate_policy("squash")
    with pytest.raises(Invalid, match="squash"):
        decode_image(encode(Image.new("RGB", (4, 4))), max_pixels=LIMIT, policy="squash")
