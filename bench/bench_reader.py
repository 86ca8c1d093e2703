"""The extract section's reader rows alone (`bench/run.py --only reader`): the extract stage's batch
loop with the full decode (before) and the DCT-scaled decode of large JPEGs (after), against the
forward pass over pre-decoded tensors (the floor).
See bench_extract.bench_reader (the code lives beside the extract section's)."""
from __future__ import annotations

from bench_extract import reader_rows


def run(quick: bool = False) -> list[dict]:
    return reader_rows(quick)
