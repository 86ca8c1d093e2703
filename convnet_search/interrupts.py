"""Ctrl-C during TensorFlow work, taken at the next batch boundary.

Python raises a SIGINT's KeyboardInterrupt in whatever Python code the main thread runs next.
During extraction that is often a callback TensorFlow's C++ makes into Python (tf.data's
generator, nest.flatten); TensorFlow turns the exception into a SystemError and prints its own
traceback, so the user sees a crash instead of the one-line "interrupted" message. Inside
`deferred()` the first Ctrl-C is only recorded, and `check()` (called between batches, well
under a second apart) raises KeyboardInterrupt from plain Python. A second Ctrl-C raises at once,
so a stuck run can still be stopped.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

_pending = False  # a Ctrl-C arrived inside deferred() and has not been raised yet
_depth = 0  # nesting of deferred() blocks


def _on_sigint(signum, frame) -> None:
    global _pending
    if _depth and not _pending:
        _pending = True
        return
    _pending = False
    raise KeyboardInterrupt


def check() -> None:
    """Raise the Ctrl-C that deferred() recorded, if any (a safe point: plain Python)."""
    global _pending
    if _pending:
        _pending = False
        raise KeyboardInterrupt


@contextmanager
def deferred() -> Iterator[None]:
    """Within the block, a first Ctrl-C waits for the next check() (or the block's end).

    Only the main thread can own the SIGINT handler, and only Python's default one is replaced
    (an embedding program's own handler is left alone); elsewhere this block does nothing."""
    global _depth
    previous = None
    if threading.current_thread() is threading.main_thread():
        current = signal.getsignal(signal.SIGINT)
        if current is signal.default_int_handler:
            previous = signal.signal(signal.SIGINT, _on_sigint)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    check()  # a Ctrl-C after the last check still stops the run (not reached when the block raised)
