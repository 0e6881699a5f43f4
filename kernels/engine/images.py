"""Decode one uploaded image into the input contract: a 224x224 8-bit RGB array, safely and quickly."""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

from headstart.kernels.errors import HeadstartError, Invalid, TooLarge

IMAGE_SIZE = 224
RESIZE_POLICIES = ("center_crop", "stretch", "pad")

# Only plain raster formats: Pillow's EPS/PS plugins shell out to Ghostscript, and rule 8 says no
# uploaded file may run code. (Phone MPO files open through the JPEG plugin.)
_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF")

# EXIF orientation tag value -> the transpose that makes the image upright.
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION_TAG = 0x0112

# Shrink by whole factors with a box filter first when the source is over 3x the target: visually
# the same as a full bilinear pass, and much cheaper for big non-JPEG sources.
_REDUCING_GAP = 3.0


def _reuse_pillow_buffers() -> None:
    """Let Pillow keep a few freed image buffers instead of handing each back to the OS at once.

    By default every decode maps fresh pages for its buffers (about 150 page faults per 640x480
    JPEG, a sixth of its CPU time). Small blocks cap what the cache can hold at 32 MiB. An operator's
    PILLOW_BLOCKS_MAX or PILLOW_BLOCK_SIZE wins.
    """
    if "PILLOW_BLOCKS_MAX" in os.environ or "PILLOW_BLOCK_SIZE" in os.environ:
        return
    if Image.core.get_blocks_max() == 0:
        Image.core.set_block_size(1024 * 1024)
        Image.core.set_blocks_max(32)


_reuse_pillow_buffers()


def validate_policy(policy: str) -> None:
    """Refuse an unknown resize policy, naming the ones that exist."""
    if policy not in RESIZE_POLICIES:
        raise Invalid(
            f"unknown resize policy {policy!r}; use one of {', '.join(RESIZE_POLICIES)}",
            detail=list(RESIZE_POLICIES),
        )


def decode_image(data: bytes, *, max_pixels: int, policy: str = "center_crop") -> np.ndarray:
    """Decode, orient, convert and resize one image file to a (224, 224, 3) uint8 array.

    The array is read-only. Raises `Invalid` for anything that is not a readable image and
    `TooLarge` for a pixel bomb.
    """
    validate_policy(policy)
    if not data:
        raise Invalid("empty file (0 bytes)")
    try:
        image = _open_checked(data, max_pixels)
        # The orientation flips are symmetric for a square output, so they are applied to the small
        # result rather than the full-size decode.
        orientation = _orientation(image)
        if image.format in ("JPEG", "MPO"):
            image.draft("RGB", _draft_size(image.size, policy))
        image.load()
        image = _to_rgb_or_gray(image)
        image = _resize(image, policy)
        if orientation in _ORIENTATION:
            image = image.transpose(_ORIENTATION[orientation])
        if image.mode != "RGB":
            image = image.convert("RGB")
        return np.asarray(image)
    except HeadstartError:
        raise
    except Image.DecompressionBombError as error:
        raise TooLarge(f"image is too large to decode safely: {error}") from None
    except Exception as error:
        # Pillow reports malformed data with many exception types (OSError, SyntaxError, ValueError,
        # struct.error, zlib.error, ...); all of them mean the same thing to the uploader.
        raise Invalid(f"cannot decode image: {_describe(error)}") from None


def _open_checked(data: bytes, max_pixels: int) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data), formats=_FORMATS)
    except Image.UnidentifiedImageError:
        raise Invalid("not an image in a supported format (JPEG, PNG, GIF, BMP, WebP, TIFF)") from None
    width, height = image.size
    # The header gives the size before any pixel is decoded, so a pixel bomb costs nothing.
    if width * height > max_pixels:
        raise TooLarge(
            f"image is {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,}"
        )
    if width < 1 or height < 1:
        raise Invalid(f"image has no pixels ({width}x{height})")
    return image


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_EXIF_ORIENTATION_TAG, 1))
    except Exception:
        # A broken EXIF block should not lose an otherwise good image; treat it as upright.
        return 1


def _draft_size(size: tuple[int, int], policy: str) -> tuple[int, int]:
    """The smallest decode size (per axis) that still leaves the policy a full 224 to sample from."""
    if policy == "pad":
        # Only the long side must stay at or above 224; 1 leaves the short side unconstrained.
        return (IMAGE_SIZE, 1) if size[0] >= size[1] else (1, IMAGE_SIZE)
    return (IMAGE_SIZE, IMAGE_SIZE)


def _to_rgb_or_gray(image: Image.Image) -> Image.Image:
    """Bring any colour mode to 8-bit "RGB" or "L"; grey stays one channel so resizing is cheaper."""
    mode = image.mode
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode in ("RGB", "L"):
        return image
    if mode == "1":
        return image.convert("L")
    if mode.startswith("I"):
        # "I;16*" and "I" hold 16-bit samples (16-bit PNG and TIFF); Pillow's own convert would clip
        # at 255 instead of scaling, turning most of the image white.
        samples = np.asarray(image).astype(np.int64)
        return Image.fromarray((np.clip(samples, 0, 65535) >> 8).astype(np.uint8))
    if mode == "F":
        return Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8))
    try:
        return image.convert("RGB")
    except ValueError:
        raise Invalid(f"unsupported colour mode {mode!r}") from None


def _resize(image: Image.Image, policy: str) -> Image.Image:
    width, height = image.size
    target = (IMAGE_SIZE, IMAGE_SIZE)
    bilinear = Image.Resampling.BILINEAR
    if policy == "stretch":
        return image.resize(target, bilinear, reducing_gap=_REDUCING_GAP)
    if policy == "center_crop":
        # Resizing from a centred square box crops and scales in one pass over the source.
        side = min(width, height)
        left, top = (width - side) / 2, (height - side) / 2
        box = (left, top, left + side, top + side)
        return image.resize(target, bilinear, box=box, reducing_gap=_REDUCING_GAP)
    scale = IMAGE_SIZE / max(width, height)
    inner = (max(1, round(width * scale)), max(1, round(height * scale)))
    canvas = Image.new(image.mode, target, 0)
    fitted = image.resize(inner, bilinear, reducing_gap=_REDUCING_GAP)
    canvas.paste(fitted, ((IMAGE_SIZE - inner[0]) // 2, (IMAGE_SIZE - inner[1]) // 2))
    return canvas


def _describe(error: Exception) -> str:
    text = str(error).strip()
    return text if text else type(error).__name__
