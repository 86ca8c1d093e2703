"""Ctrl-C and SIGTERM during TensorFlow work, taken at the next batch boundary.

Python raises a SIGINT's KeyboardInterrupt in whatever Python code the main thread runs next.
During extraction that is often a callback TensorFlow's C++ makes into Python (tf.data's
generator, nest.flatten); TensorFlow turns the exception into a SystemError and prints its own
traceback, so the user sees a crash instead of the one-line "interrupted" message. Inside
`deferred()` the first Ctrl-C is only recorded, and `check()` (called between batches, well
under a second apart) raises KeyboardInterrupt from plain Python. A second Ctrl-C raises at once,
so a stuck run can still be stopped.

SIGTERM (docker stop, systemd, SLURM, `kill`) would end the process silently with exit 143.
`sigterm_handled()` (the CLI runs precompute in it) turns it into `Terminated`, a KeyboardInterrupt, so it takes
the same path: deferred to the next batch boundary, one line with the resume hint, exit 143.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

_pending = 0  # the signal that arrived inside deferred() and has not been raised yet (0: none)
_depth = 0  # nesting of deferred() blocks


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: stop like Ctrl-C (finished work is kept), exit 128 + 15."""


def _exception(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _on_signal(signum, frame) -> None:
    global _pending
    if _depth and not _pending:
        _pending = signum
        return
    _pending = 0
    raise _exception(signum)


def _on_sigterm_outside(signum, frame) -> None:
    raise Terminated()


@contextmanager
def sigterm_handled() -> Iterator[None]:
    """Within the block, SIGTERM raises Terminated in the main thread (only Python's default action
    is replaced, so an embedding program's own handler is left alone; restored on exit)."""
    replaced = (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)
    if replaced:
        signal.signal(signal.SIGTERM, _on_sigterm_outside)
    try:
        yield
    finally:
        if replaced:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def check() -> None:
    """Raise the Ctrl-C / SIGTERM that deferred() recorded, if any (a safe point: plain Python)."""
    global _pending
    if _pending:
        signum, _pending = _pending, 0
        raise _exception(signum)


@contextmanager
def deferred() -> Iterator[None]:
    """Within the block, a first Ctrl-C (or SIGTERM, inside sigterm_handled) waits for the next
    check() (or the block's end).

    Only the main thread can own signal handlers, and only Python's default SIGINT handler and our
    own SIGTERM one are replaced (an embedding program's own handler is left alone); elsewhere this
    block does nothing."""
    global _depth
    previous: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, _on_signal)
        if signal.getsignal(signal.SIGTERM) is _on_sigterm_outside:
            previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, _on_signal)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    check()  # a signal after the last check still stops the run (not reached when the block raised)
