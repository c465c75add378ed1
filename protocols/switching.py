"""A short GIL switch interval while a run's solver threads need the GIL back quickly.

A solver thread holds the GIL only between two ``Highs.run`` calls (a few lines
of Python: hand over the result, take the next job). When it comes back from
HiGHS while the calling thread is busy in Python (building problems, making
orders), it waits for the GIL until the switch interval forces a switch: 5 ms by
default, longer than one stacked LP at 50 x 50 (~2 ms). Measured at 50 x 50:
the solver thread's jobs took 3.5-5.7 ms each instead of ~2.5, and ``solve()``
~2-4 ms longer. While runs are in progress the interval is
:data:`SWITCH_INTERVAL_S`; forced switches happen only when another thread waits
for the GIL, so a run without solver threads is not slowed down. Reference-counted
across threads like :mod:`protocols.gc_pause`: the interval in effect before the
first concurrent run is restored when the last one ends.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial

from protocols.run_scoped import RunScoped

#: Switch interval while runs are in progress (measured at 50 x 50, median of 40
#: runs each: 5 ms 43.2 ms, 100 us 42.3, 20 us 41.6, 10 us 41.2).
SWITCH_INTERVAL_S = 2e-5


def _shorten() -> Callable[[], None] | None:
    before = sys.getswitchinterval()
    if before <= SWITCH_INTERVAL_S:
        return None  # already as short: left as it is
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    return partial(sys.setswitchinterval, before)


#: ``with short_switch_interval():`` the short interval while any run is in progress.
short_switch_interval = RunScoped(_shorten)
