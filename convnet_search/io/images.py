"""Decode any real-world image file safely into RGB uint8, and make thumbnails.

Real image folders hold CMYK JPEGs, 16-bit PNGs, EXIF-rotated photos, animated GIFs, files that
are empty, truncated, or not images at all, and the occasional decompression bomb. `load_rgb`
turns every valid one into the same thing (an ``uint8 [H, W, 3]`` array, upright, alpha composited
on white) and rejects every bad one with an `ImageError` whose reason a person can act on.

No TensorFlow here: this module is imported by the CLI at start-up and by `datasets.py`.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["DEFAULT_MAX_PIXELS", "Decoded", "ImageError", "SUPPORTED_FORMATS", "load_rgb", "load_rgb_reduced",
           "thumbnail_jpeg"]

# Decompression-bomb limit. A tiny file can declare a huge canvas (a 20000×20000 1-bit PNG is a
# few kB on disk and 1.2 GB once decoded to RGB). 40 Mpx is above any camera photo we expect
# (a 45 Mpx full-frame sensor is the rare exception; raise the limit for those) while keeping one
# decoded image under 120 MB of RGB, so a hostile folder cannot exhaust memory. The size in the
# header is checked *before* any pixel is decoded.
DEFAULT_MAX_PIXELS = 40_000_000

# Pillow's own plugin names. Restricting `Image.open` to these keeps the many exotic Pillow
# decoders (and their attack surface) out of the way and stops lenient header-less formats from
# "recognising" random bytes. (Multi-picture JPEGs from phones, "MPO", open through "JPEG".)
SUPPORTED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "DIB", "TIFF")
_SUPPORTED_HUMAN = "JPEG, PNG, GIF, WebP, BMP, TIFF"

# Errors Pillow raises while decoding broken data: truncated streams (OSError), bad chunk CRCs or
# headers (SyntaxError), bad zlib streams, short struct reads, out-of-range values.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError)


class ImageError(Exception):
    """A file that cannot be used as an image; ``reason`` is short and meant for people."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def _too_large(w: int, h: int, max_pixels: int) -> str:
    return f"too large: {w}×{h} pixels > limit {max_pixels:,}"


def load_rgb(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS, draft: int | None = None) -> np.ndarray:
    """Decode ``path`` into an upright ``uint8 [H, W, 3]`` RGB array.

    ``draft``: for pictures shown, never for features. A JPEG is then decoded at 1/2, 1/4 or 1/8
    of its size (libjpeg's DCT scaling, Pillow's draft mode, as ``Image.thumbnail`` does) while
    both sides stay ≥ ``draft`` px: a 12 MP photo decodes ~8× faster. Its pixels differ from a full
    decode's and its scale is not the box step's, so features never use it (they use
    `load_rgb_reduced`, whose scale divides the shared box factor). Other
    formats are decoded in full. Every check below applies as without it (the whole stream is
    still read, so a truncated file still fails).

    - EXIF orientation is applied (photos come out as the camera's user saw them).
    - Animated GIF/WebP/APNG: the first frame.
    - Grey, 1-bit, palette, CMYK, YCbCr, LAB, HSV → RGB; anything with alpha (RGBA, LA, PA,
      palette or grey with a transparent colour) is composited on white, because a CNN sees no
      alpha and white is what a person sees in a browser.
    - 16-bit and 32-bit integer grey is scaled to 8 bits over its full range (65535 → 255), float
      grey over [0, 1] (see `_scale_to_uint8`), never clipped.

    Raises `ImageError` for: missing/unreadable files, empty files, non-images, unsupported
    formats, images larger than ``max_pixels`` (checked from the header, before decoding),
    zero-size images, truncated or corrupt data (the whole image is decoded to find out).
    Pillow's own bomb limit (`Image.MAX_IMAGE_PIXELS`, ~89 Mpx) also applies, so a ``max_pixels``
    above it has no effect beyond it.
    """
    return _load(Path(path), max_pixels, draft, None).boxed[1]


@dataclass(frozen=True)
class Decoded:
    """An upright image of size ``full`` = (height, width). ``scale`` = 1: ``boxed`` is {1: its
    full-size pixels}. ``scale`` = s > 1: it was decoded at 1/s by DCT scaling, and ``boxed[k]`` holds
    its k×k block means for each factor k asked (s divides k). ``scales``: the DCT scales this file
    admits (a JPEG whose grid fits, see load_rgb_reduced; empty for other formats)."""
    boxed: dict[int, np.ndarray]
    scale: int
    full: tuple[int, int]
    scales: frozenset[int] = frozenset()


# What load_rgb_reduced asks of its caller: for the upright (height, width), the DCT scale s and the
# box factors k (multiples of s) wanted from that decode (preprocess.reduce_scale, area_factor).
ReducePlan = Callable[[int, int], "tuple[int, tuple[int, ...]]"]


def load_rgb_reduced(path: Path, plan: ReducePlan, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Decoded:
    """`load_rgb` for features: a large JPEG decoded at 1/s by libjpeg's DCT scaling and reduced to
    its k×k block means without ever holding the full-size pixels.

    ``plan(height, width)`` of the upright image gives (s, ks). With s > 1 the JPEG is decoded at
    1/s (each pixel is then within 2–3 levels of the s×s block mean of a full decode: the DC terms
    of the DCT are exactly those means; colour and rounding differ slightly), turned upright, and
    reduced by k/s for each k in ks (Pillow's ``Image.reduce``: the same blocks as
    preprocess.area_downscale, rounding within 1). Only where the s×s grid lands where a full
    decode's would after the EXIF rotation (no rotation, or both sides multiples of s); otherwise,
    for s = 1 and for every other format, the image is decoded in full (``scale`` 1, ``boxed[1]``).
    Same checks and errors as `load_rgb` (the whole stream is still read).
    """
    return _load(Path(path), max_pixels, None, plan)


def _load(path: Path, max_pixels: int, draft: int | None, plan: ReducePlan | None) -> Decoded:
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ImageError(path, f"cannot read file: {e.strerror or e}") from None
    if not path.is_file():
        raise ImageError(path, "not a regular file")
    if size == 0:
        raise ImageError(path, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Pillow warns (instead of raising) between MAX_IMAGE_PIXELS and twice that.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # A damaged EXIF block is harmless (we keep the pixels unrotated): no console noise.
            warnings.filterwarnings("ignore", message="Corrupt EXIF data", category=UserWarning)
            with Image.open(path, formats=SUPPORTED_FORMATS) as im:
                return _decode(im, path, max_pixels, draft, plan)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Raised by Image.open before we could read the size ourselves; re-read it for the reason.
        w, h = _header_size(path)
        if not w:
            reason = "too large (decompression bomb)"
        elif w * h > max_pixels:
            reason = _too_large(w, h, max_pixels)
        else:  # within our limit but over Pillow's (only when max_pixels was raised above it)
            reason = f"too large: {w}×{h} pixels > Pillow's limit {Image.MAX_IMAGE_PIXELS:,}"
        raise ImageError(path, reason) from None
    except UnidentifiedImageError:
        raise ImageError(path, _unidentified_reason(path)) from None
    except PermissionError as e:
        raise ImageError(path, f"cannot read file: {e.strerror or e}") from None
    except _DECODE_ERRORS as e:
        raise ImageError(path, f"truncated or corrupt image data: {_short(e)}") from None
    except MemoryError:
        raise ImageError(path, "out of memory while decoding") from None


def _header_size(path: Path) -> tuple[int, int]:
    """Width and height from the header only, bypassing Pillow's bomb check; (0, 0) if unknown.

    Calls the format plugins the way `Image.open` does, minus its size check, instead of
    lowering the global `Image.MAX_IMAGE_PIXELS` (which would unprotect other threads).
    """
    Image.init()
    try:
        with open(path, "rb") as f:
            prefix = f.read(16)
            for fmt in SUPPORTED_FORMATS:
                factory, accept = Image.OPEN.get(fmt, (None, None))
                if factory is None or (accept and not accept(prefix)):
                    continue
                f.seek(0)
                try:
                    return factory(f, str(path)).size
                except Exception:  # not this format; try the next, as Image.open does
                    continue
    except OSError:
        pass
    return (0, 0)


# File signatures, to tell "a PNG with a broken header" from "not an image at all".
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
    (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
)


def _unidentified_reason(path: Path) -> str:
    """Why Pillow could not open the file: a broken header of a known format, or not an image."""
    try:
        with open(path, "rb") as f:
            head = f.read(32)
    except OSError as e:
        return f"cannot read file: {e.strerror or e}"
    fmt = next((name for sig, name in _SIGNATURES if head.startswith(sig)), None)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        fmt = "WebP"
    if fmt == "PNG" and len(head) >= 24 and head[12:16] == b"IHDR":
        w, h = struct.unpack(">II", head[16:24])
        if w == 0 or h == 0:
            return f"zero-size image ({w}×{h})"
    if fmt == "GIF" and len(head) >= 10:
        w, h = struct.unpack("<HH", head[6:10])
        if w == 0 or h == 0:
            return f"zero-size image ({w}×{h})"
    if fmt is not None:
        return f"truncated or corrupt image data: unreadable {fmt} header"
    return f"not an image (unrecognised format; supported: {_SUPPORTED_HUMAN})"


def _short(e: BaseException) -> str:
    msg = str(e).strip() or type(e).__name__
    return msg if len(msg) <= 160 else msg[:157] + "…"


def _decode(im: Image.Image, path: Path, max_pixels: int, draft: int | None = None,
            plan: ReducePlan | None = None) -> Decoded:
    w, h = im.size
    if w <= 0 or h <= 0:
        raise ImageError(path, f"zero-size image ({w}×{h})")
    if w * h > max_pixels:
        raise ImageError(path, _too_large(w, h, max_pixels))
    orientation = _orientation(im)
    full = (w, h) if orientation in (5, 6, 7, 8) else (h, w)  # upright (height, width)
    scale, factors = 1, ()
    # DCT scales whose s×s grid lands where a full decode's does once the image is upright
    scales = frozenset(s for s in (2, 4, 8) if im.format == "JPEG" and min(w, h) >= s
                       and (orientation == 1 or (w % s == 0 and h % s == 0)))
    if draft and im.format == "JPEG":
        im.draft(None, (draft, draft))  # a square request: the same scale whatever the EXIF rotation
    elif plan is not None:
        s, factors = plan(*full)
        if s in scales:
            im.draft(None, (w // s, h // s))  # libjpeg picks 1/s: w // (w // s) is in [s, 2s)
            scale = s
    # Image.open leaves an animation on frame 0; seek explicitly in case a plugin does not.
    if getattr(im, "n_frames", 1) > 1:
        im.seek(0)
    # Force a full decode now: Pillow is lazy, and a truncated file only fails here. We do NOT set
    # ImageFile.LOAD_TRUNCATED_IMAGES: half an image would be embedded as if it were whole.
    im.load()
    if scale > 1 and im.size != (-(-w // scale), -(-h // scale)):
        # Not the file's fault (a Pillow whose draft mode picks another scale): stop, do not skip it.
        raise RuntimeError(f"{path}: Pillow decoded {im.size}, not 1/{scale} of {w}×{h}; features need that scale")
    try:
        ImageOps.exif_transpose(im, in_place=True)  # in place: no copy of an upright image
    except _DECODE_ERRORS + (KeyError, TypeError, AttributeError):
        # A malformed EXIF block does not make the pixels unusable: keep the image as stored.
        full = (h, w)
    if scale == 1:
        return Decoded({1: _to_rgb(im)}, 1, full, scales)
    rgb = im if im.mode == "RGB" else im.convert("RGB")  # JPEG: L, RGB or CMYK
    return Decoded({k: np.array(rgb.reduce(k // scale) if k > scale else rgb, dtype=np.uint8)
                    for k in factors}, scale, full, scales)


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation tag (1 = as stored; 5–8 swap the sides), 1 when absent or unreadable."""
    try:
        value = im.getexif().get(0x0112, 1)
    except _DECODE_ERRORS + (KeyError, TypeError, AttributeError):
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _has_transparency(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info


def _to_rgb(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        grey = _scale_to_uint8(np.asarray(im), mode)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if _has_transparency(im):
        rgba = np.asarray(im.convert("RGBA"), dtype=np.uint16)
        rgb, a = rgba[:, :, :3], rgba[:, :, 3:4]
        # Integer "over" onto white, rounded: out = (c·a + 255·(255 − a)) / 255.
        out = (rgb * a + 255 * (255 - a) + 127) // 255
        return np.ascontiguousarray(out.astype(np.uint8))
    if mode != "RGB":
        im = im.convert("RGB")  # 1, L, P, CMYK (incl. Adobe inverted), YCbCr, LAB, HSV
    return np.array(im, dtype=np.uint8)  # a copy: the file is closed after this returns


def _scale_to_uint8(a: np.ndarray, mode: str) -> np.ndarray:
    """Map high-bit-depth grey to 0…255 linearly over the type's range (no clipping).

    - ``I;16*``: 0…65535 → 0…255 (v / 257, rounded: 257 = 65535 / 255 exactly).
    - ``I`` (32-bit int): usually a 16-bit PNG/TIFF widened by Pillow, so if all values are in
      0…65535 the same 16-bit scale applies; otherwise the actual min…max is stretched to 0…255.
    - ``F`` (float): values in [0, 1] scale by 255; otherwise min…max is stretched. NaN → 0.
    """
    x = a.astype(np.float64)
    if mode == "F":
        x = np.where(np.isfinite(x), x, np.nan)
        finite = x[np.isfinite(x)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        if lo >= 0.0 and hi <= 1.0:
            y = x * 255.0
        else:
            y = (x - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(x)
        y = np.nan_to_num(y, nan=0.0)
    elif mode.startswith("I;16") or (x.size and x.min() >= 0 and x.max() <= 65535):
        y = x / 257.0
    else:
        lo, hi = float(x.min()), float(x.max())
        y = (x - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(x)
    return np.rint(y).astype(np.uint8)


def thumbnail_jpeg(rgb: np.ndarray, max_side: int = 128, quality: int = 85) -> bytes:
    """JPEG bytes of ``rgb`` shrunk so its longest side is at most ``max_side`` (never enlarged).

    Deterministic: the same array gives the same bytes (fixed filter, no metadata, no
    optimisation passes), so bundles are byte-identical across runs.
    """
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"thumbnail_jpeg needs a non-empty uint8 [H, W, 3] array, got {a.dtype} {a.shape}")
    if max_side < 1:
        raise ValueError(f"max_side must be ≥ 1, got {max_side}")
    h, w = a.shape[:2]
    im = Image.fromarray(np.ascontiguousarray(a))
    scale = max_side / max(h, w)
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        im = im.resize(size, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality, optimize=False, progressive=False)
    return buf.getvalue()
