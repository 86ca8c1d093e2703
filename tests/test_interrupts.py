"""interrupts.deferred: a first Ctrl-C waits for the next check(), a second one raises at once."""
import os
import signal

import pytest

from convnet_search import interrupts


@pytest.fixture(autouse=True)
def _python_default_sigint():
    """Python's own Ctrl-C handler, as in a terminal. A runner started in the background by a
    non-interactive shell (nohup …  &) inherits SIGINT ignored, and deferred() rightly leaves an
    ignored SIGINT alone; these tests are about the default case."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)  # the handler runs on the main thread before kill returns to Python code


def test_first_ctrl_c_is_raised_at_the_next_check():
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred():
            _ctrl_c()
            reached = True  # not raised inside the "TensorFlow" work
            interrupts.check()
            reached = False
    assert reached
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_second_ctrl_c_raises_at_once():
    steps = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred():
            _ctrl_c()
            steps.append("first recorded")
            _ctrl_c()
            steps.append("not reached")
    assert steps == ["first recorded"]
    interrupts.check()  # nothing left pending for the next run


def test_a_ctrl_c_after_the_last_check_still_stops_the_block():
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred():
            interrupts.check()
            _ctrl_c()
    interrupts.check()


def test_outside_the_block_ctrl_c_is_immediate_and_a_quiet_block_changes_nothing():
    with interrupts.deferred():
        interrupts.check()
    with pytest.raises(KeyboardInterrupt):
        _ctrl_c()


def test_sigterm_is_a_deferred_interrupt_like_ctrl_c():
    """Issue 19 row 8: SIGTERM (docker stop, systemd, SLURM) ended the run silently with 143."""
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with interrupts.sigterm_handled():
            with pytest.raises(interrupts.Terminated):
                with interrupts.deferred():
                    os.kill(os.getpid(), signal.SIGTERM)
                    reached = True  # recorded, not raised inside the "TensorFlow" work
                    interrupts.check()
            assert reached
            with pytest.raises(interrupts.Terminated):  # outside deferred(): at once
                os.kill(os.getpid(), signal.SIGTERM)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # restored
    finally:
        signal.signal(signal.SIGTERM, previous)
