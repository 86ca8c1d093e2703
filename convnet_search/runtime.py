"""Quiet, lazy TensorFlow import.

TensorFlow's C++ runtime writes start-up chatter (CUDA factory registration, absl notices)
straight to file descriptor 2 before any Python logging setting applies. We import it once, only
when a stage really needs it (an up-to-date run never does), with fd 2 pointed at /dev/null;
CONVNET_SEARCH_VERBOSE=1 keeps the chatter.
"""
from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def quiet_native_stderr():
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def quiet_unless_verbose():
    """Silence native stderr (C++ log lines) unless CONVNET_SEARCH_VERBOSE=1."""
    return contextlib.nullcontext() if os.environ.get("CONVNET_SEARCH_VERBOSE") else quiet_native_stderr()


def import_tensorflow():
    if "tensorflow" in sys.modules or os.environ.get("CONVNET_SEARCH_VERBOSE"):
        import tensorflow as tf

        return tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with quiet_native_stderr():
        import tensorflow as tf
    # Retracing notices (one tf.function per model, last batch smaller) are expected here.
    tf.get_logger().setLevel("ERROR")
    return tf
