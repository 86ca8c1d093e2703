"""Perceptual hash (PHash) exactly as imagededup 0.3.3 computes it: the curate benchmark's duplicate anchor.

imagededup's PHash (imagededup/methods/hashing.py, utils/image_utils.py): open with Pillow, convert
to RGB (through RGBA when the mode is not RGB), resize to 32 × 32 with LANCZOS, convert to greyscale
'L', uint8; 2-D DCT-II (scipy.fftpack.dct along axis 0 then axis 1, unnormalised); keep the top-left
8 × 8 coefficients; bit = coefficient ≥ median of the 63 coefficients after the DC term. Distance:
Hamming distance of the 64 bits; imagededup's find_duplicates default max_distance_threshold is 10.
imagededup itself pulls in torch (its CNN method), so it is not a dependency: bench/phash_parity.py
checks this implementation against it bit for bit in a venv that has it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

IMAGEDEDUP_DEFAULT_THRESHOLD = 10  # imagededup find_duplicates(max_distance_threshold=10)


def phash_bits(path: Path) -> np.ndarray:
    """bool [64]: imagededup's PHash of one image file."""
    from PIL import Image
    from scipy.fftpack import dct

    with Image.open(path) as img:
        if img.mode != "RGB":
            img = img.convert("RGBA").convert("RGB")
        small = img.resize((32, 32), Image.LANCZOS).convert("L")
    a = np.array(small).astype("uint8")
    coef = dct(dct(a, axis=0), axis=1)[:8, :8]
    return (coef >= np.median(coef.ravel()[1:])).ravel()


def phash_hex(bits: np.ndarray) -> str:
    """imagededup's hash string (its _array_to_hash)."""
    return "".join("%0.2x" % x for x in np.packbits(bits))


def hamming_pairs(bits: np.ndarray, threshold: int = IMAGEDEDUP_DEFAULT_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) with a < b of every pair of hashes at Hamming distance ≤ threshold (all pairs, exact)."""
    b = bits.astype(np.float32)
    dist = b @ (1 - b).T + (1 - b) @ b.T
    a, c = np.nonzero(np.triu(dist <= threshold + 0.5, k=1))
    return a, c
