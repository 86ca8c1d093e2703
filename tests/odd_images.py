"""A dataset folder full of the odd and broken files real image folders contain.

Usage (any test; ``tests/`` is on ``sys.path`` under pytest)::

    from odd_images import make_odd_image_folder
    odd = make_odd_image_folder(tmp_path / "odd")
    odd.root                 # the dataset root: root/<class>/<image>
    odd.valid                # relative paths (posix) of files that must be embedded, in dataset order
    odd.bad                  # {relative path: substring expected in its skip reason}
    odd.classes              # class folders that have ≥ 1 valid image, sorted
    odd.empty_classes        # class folders with no valid image (skipped as "<class>/")
    odd.expected_hw          # {relative path: (height, width) after decoding}

Every file is generated here (deterministically, in ~0.3 s): nothing is downloaded.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["OddFile", "OddFolder", "make_odd_image_folder", "png_bytes", "bomb_png"]


@dataclass(frozen=True)
class OddFile:
    rel: str  # path relative to the dataset root, posix separators
    what: str  # what makes it odd, for test ids and messages
    reason: str | None = None  # None: valid; else a substring of the expected skip reason
    hw: tuple[int, int] | None = None  # valid files: (height, width) after decoding


@dataclass
class OddFolder:
    root: Path
    files: list[OddFile] = field(default_factory=list)

    @property
    def valid(self) -> list[str]:
        """Valid files in dataset order (class folder, then UTF-8 byte order of the path)."""
        return sorted((f.rel for f in self.files if f.reason is None), key=lambda r: r.encode())

    @property
    def bad(self) -> dict[str, str]:
        return {f.rel: f.reason for f in self.files if f.reason is not None}

    @property
    def classes(self) -> list[str]:
        return sorted({r.split("/", 1)[0] for r in self.valid}, key=lambda c: c.encode())

    @property
    def empty_classes(self) -> list[str]:
        all_classes = {f.rel.split("/", 1)[0] for f in self.files if "/" in f.rel}
        return sorted(all_classes - set(self.classes), key=lambda c: c.encode())

    @property
    def expected_hw(self) -> dict[str, tuple[int, int]]:
        return {f.rel: f.hw for f in self.files if f.reason is None and f.hw is not None}


def png_bytes(width: int, height: int, bit_depth: int, colour_type: int, raw_rows: bytes) -> bytes:
    """A PNG written by hand (so its header can say anything), from already-filtered raw rows."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw_rows, 9))
        + chunk(b"IEND", b"")
    )


def bomb_png(side: int = 20000) -> bytes:
    """A genuine, valid 1-bit ``side``×``side`` PNG of a few dozen kB (400 Mpx at the default)."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)  # filter byte + packed bits, all black
    return png_bytes(side, side, 1, 0, row * side)


def _save(img: Image.Image, path: Path, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)


def _noise_rgb(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def make_odd_image_folder(root: Path) -> OddFolder:
    """Write the odd folder under ``root`` (created; must not hold other files) and describe it.

    Classes: ``colour/`` (CMYK JPEG, RGBA PNG, palette PNG with transparency, WebP, animated GIF,
    EXIF-rotated JPEG, BMP in a nested sub-folder, a hidden file), ``grey/`` (16-bit gradient PNG,
    1×1 PNG, TIFF), ``ünicode/`` (``café_日本.png``) and ``broken/`` (empty, truncated, text-as-JPEG,
    decompression bomb: all bad, so the class itself is reported empty). Plus ``stray.png`` in the
    root, outside any class folder.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    odd = OddFolder(root)
    add = odd.files.append

    # --- colour/ ---------------------------------------------------------------------------
    _save(Image.new("CMYK", (40, 30), (255, 0, 0, 0)), root / "colour/cmyk.jpg", quality=95)  # pure cyan
    add(OddFile("colour/cmyk.jpg", "CMYK JPEG", hw=(30, 40)))

    rgba = np.zeros((20, 24, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 0  # left part fully transparent red → white
    rgba[:, 12:, 3] = 255  # right half opaque red
    _save(Image.fromarray(rgba), root / "colour/rgba.png")
    add(OddFile("colour/rgba.png", "RGBA PNG", hw=(20, 24)))

    pal = Image.new("P", (16, 16), 0)
    pal.putpalette([0, 0, 0, 0, 200, 0] + [0] * (254 * 3))
    pal.paste(1, (0, 0, 8, 16))  # left half palette index 1 (green), right half index 0 (transparent)
    _save(pal, root / "colour/palette.png", transparency=0)
    add(OddFile("colour/palette.png", "palette PNG with a transparent index", hw=(16, 16)))

    _save(Image.fromarray(_noise_rgb(24, 32, 1)), root / "colour/photo.webp", quality=80)
    add(OddFile("colour/photo.webp", "WebP", hw=(24, 32)))

    frames = [Image.new("RGB", (18, 12), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    _save(frames[0], root / "colour/animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    add(OddFile("colour/animated.gif", "animated GIF (first frame red)", hw=(12, 18)))

    stored = Image.new("L", (40, 20), 0)
    stored.paste(255, (20, 0, 40, 20))  # stored: left black, right white; displayed: top black
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    _save(stored, root / "colour/exif_rotated.jpg", exif=exif, quality=95)
    add(OddFile("colour/exif_rotated.jpg", "EXIF orientation 6 (stored 40×20, shown 20×40)", hw=(40, 20)))

    _save(Image.fromarray(_noise_rgb(9, 11, 2)), root / "colour/nested/deeper/deep.bmp")
    add(OddFile("colour/nested/deeper/deep.bmp", "BMP in a nested sub-folder", hw=(9, 11)))

    (root / "colour/.DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")  # hidden: not read, listed as skipped
    (root / "colour/.hidden_dir").mkdir()
    (root / "colour/.hidden_dir/x.png").write_bytes(b"ignored too")

    # --- grey/ -----------------------------------------------------------------------------
    _save(Image.fromarray(grey16_gradient()), root / "grey/gradient16.png")
    add(OddFile("grey/gradient16.png", "16-bit grey PNG (gradient 0…65535)", hw=GREY16_SHAPE))

    _save(Image.new("RGB", (1, 1), (10, 20, 30)), root / "grey/one_pixel.png")
    add(OddFile("grey/one_pixel.png", "1×1 PNG", hw=(1, 1)))

    _save(Image.fromarray(_noise_rgb(7, 5, 3)), root / "grey/scan.tif")
    add(OddFile("grey/scan.tif", "TIFF", hw=(7, 5)))

    # --- ünicode/ --------------------------------------------------------------------------
    _save(Image.new("RGB", (6, 4), (1, 2, 3)), root / "ünicode/café_日本.png")
    add(OddFile("ünicode/café_日本.png", "unicode class and file name", hw=(4, 6)))

    # --- broken/ (nothing usable) -----------------------------------------------------------
    (root / "broken").mkdir(exist_ok=True)
    (root / "broken/empty.jpg").write_bytes(b"")
    add(OddFile("broken/empty.jpg", "empty file", reason="empty file"))

    buf = io.BytesIO()
    Image.fromarray(_noise_rgb(64, 64, 4)).save(buf, format="JPEG", quality=90)
    (root / "broken/truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    add(OddFile("broken/truncated.jpg", "JPEG cut in half", reason="truncated or corrupt"))

    (root / "broken/notes.jpg").write_text("these are my holiday notes, not a picture\n", encoding="utf-8")
    add(OddFile("broken/notes.jpg", "text file named .jpg", reason="not an image"))

    (root / "broken/bomb.png").write_bytes(bomb_png(20000))
    add(OddFile("broken/bomb.png", "decompression bomb (20000×20000 1-bit PNG)", reason="too large: 20000×20000"))

    # --- outside any class folder ------------------------------------------------------------
    _save(Image.new("RGB", (3, 3), (0, 0, 0)), root / "stray.png")
    add(OddFile("stray.png", "image directly in the root", reason="not inside a class folder"))
    return odd


GREY16_SHAPE = (3, 300)


def grey16_gradient() -> np.ndarray:
    """uint16 [3, 300]: a left-to-right ramp over the full 16-bit range (0 … 65535)."""
    ramp = np.rint(np.linspace(0, 65535, GREY16_SHAPE[1])).astype(np.uint16)
    return np.repeat(ramp[None, :], GREY16_SHAPE[0], axis=0)
