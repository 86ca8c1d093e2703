"""Check bench/phash.py against imagededup's PHash, bit for bit, on real images.

Run in a venv that has imagededup (installed with --no-deps plus PyWavelets: its torch and
matplotlib imports are only for its CNN method and plots, stubbed here):
    .venv/bin/python bench/phash_parity.py IMAGE ...
Prints one line per image and exits 1 on any difference.
"""
from __future__ import annotations

import sys
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _stub(name: str, **attrs) -> None:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    sys.modules[name] = mod


def main(paths: list[str]) -> int:
    for name in ("matplotlib", "matplotlib.gridspec", "matplotlib.pyplot"):
        _stub(name)
    _stub("imagededup.utils.plotter", plot_duplicates=None)
    _stub("imagededup.utils.models", CustomModel=None)
    _stub("imagededup.methods.cnn", CNN=None)
    from imagededup.methods.hashing import PHash  # noqa: E402

    from phash import phash_bits, phash_hex

    ref, bad = PHash(verbose=False), 0
    for p in paths:
        want, got = ref.encode_image(image_file=p), phash_hex(phash_bits(Path(p)))
        bad += want != got
        print(f"{'same' if want == got else 'DIFFERENT'} {want} {got} {p}")
    print(f"{len(paths) - bad}/{len(paths)} equal")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
