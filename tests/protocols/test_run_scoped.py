"""A setting held while overlapping runs (threads) are in progress."""

from __future__ import annotations

import threading

from protocols.run_scoped import RunScoped


def test_applied_by_the_first_and_restored_by_the_last_of_overlapping_threads() -> None:
    calls: list[str] = []
    seen: list[list[str]] = []

    def apply() -> object:
        calls.append("apply")
        return lambda: calls.append("restore")

    scoped = RunScoped(apply)  # type: ignore[arg-type]
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with scoped():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with scoped():
            second_in.set()
            first_out.wait(5)
            seen.append(list(calls))  # the first run ended, this one still holds it

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == [["apply"]]
    assert calls == ["apply", "restore"]
    with scoped():
        pass
    assert calls == ["apply", "restore", "apply", "restore"]


def test_nothing_to_restore_is_fine() -> None:
    scoped = RunScoped(lambda: None)
    with scoped(), scoped():
        pass
