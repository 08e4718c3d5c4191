"""Engine reconciliation with what was really published (the signals topic read back after a restart)."""

from __future__ import annotations

import msgspec

from tapeline.domain.events import Signal
from tapeline.signals.engine import SignalEngine
from tests.unit.signals.test_divergence import TWO_HIGHS, engine, make_bar, make_series


def _engine_with_one_signal() -> tuple[SignalEngine, Signal]:
    eng = engine()
    [sig] = eng.run(make_series(TWO_HIGHS, 0.0, {3: 100.0, 10: 50.0}))
    return eng, sig


def test_the_same_published_state_needs_nothing() -> None:
    eng, sig = _engine_with_one_signal()
    assert eng.reconcile([sig]) == []
    [revised] = eng.add(make_bar(10, 12.0, 0.0, 60.0))  # versions continue from the truth
    assert (revised.version, revised.status) == (2, "revised")


def test_a_signal_never_published_goes_out_as_version_1() -> None:
    eng, sig = _engine_with_one_signal()
    assert eng.reconcile([]) == [sig]


def test_other_published_numbers_are_corrected_with_the_next_version() -> None:
    eng, sig = _engine_with_one_signal()
    theirs = msgspec.structs.replace(sig, version=3, status="revised", detail={**sig.detail, "cvd_now": 1.0})
    [fix] = eng.reconcile([msgspec.structs.replace(sig, version=1), theirs])
    assert (fix.signal_id, fix.version, fix.status, fix.detail) == (sig.signal_id, 4, "revised", sig.detail)


def test_a_published_withdrawal_of_a_signal_that_holds_is_undone() -> None:
    eng, sig = _engine_with_one_signal()
    [fix] = eng.reconcile([msgspec.structs.replace(sig, version=2, status="withdrawn")])
    assert (fix.version, fix.status) == (3, "active")


def test_a_published_signal_the_engine_withdrew_is_withdrawn() -> None:
    eng, sig = _engine_with_one_signal()
    [gone] = eng.add(make_bar(10, 12.0, 0.0, 150.0))
    assert gone.status == "withdrawn"
    [fix] = eng.reconcile([sig])  # the withdrawal never made it out
    assert (fix.signal_id, fix.version, fix.status) == (sig.signal_id, 2, "withdrawn")
    assert eng.reconcile([sig, fix]) == []


def test_unknown_published_signals_are_left_alone() -> None:
    eng, sig = _engine_with_one_signal()
    stranger = msgspec.structs.replace(sig, signal_id="f" * 40)
    assert eng.reconcile([sig, stranger]) == []
