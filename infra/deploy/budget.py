"""The Postgres connection budget: max instances x pool size, summed, fits the instance.

Every deployed function can open Postgres connections (the heartbeat and the beacon only on
their fallback path, while Valkey is down: exactly when every instance would open its pool
at once). Cloud SQL caps connections per instance (`max_connections`, set by the machine's
memory or the flag: https://cloud.google.com/sql/docs/postgres/quotas#maximum_concurrent_connections),
so the plan must hold:

    sum over functions of (max instances x (1 + surge) x pool size) + reserved  <=  DB_MAX_CONNECTIONS

Max instances is not a hard cap: during a traffic surge Cloud Run may briefly run more
instances than the setting (https://cloud.google.com/run/docs/configuring/max-instances-limits).
So each function is counted with a surge margin on top of its max instances (`surge`, a
fraction, rounded up to whole instances, at least one more when the margin is not zero),
and only what remains after those margins is shared.

A function's pool size is a quarter of its concurrency, rounded up (`manifest.Function.pool_size`
says why), unless its manifest entry sets `db_pool_size` (fallback-only paths). A function with a
`max_instances` in the manifest keeps it; the others share what is left evenly, capped at
SHARE_CAP. The deploy refuses a plan where that share would be under one instance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from shared import manifest

SHARE_CAP = 100  # Cloud Run's default maximum; more would only add idle headroom


class OverBudget(ValueError):
    """Raised when the functions' connections cannot fit DB_MAX_CONNECTIONS."""


@dataclass(frozen=True)
class Line:
    """One function's share of the budget."""

    name: str
    max_instances: int
    pool_size: int
    fixed: bool  # max_instances set in the manifest (else an even share)
    surge: int = 0  # instances Cloud Run may briefly add above max_instances

    @property
    def connections(self) -> int:
        return (self.max_instances + self.surge) * self.pool_size


def surge_instances(max_instances: int, margin: float) -> int:
    """How many instances above `max_instances` the budget keeps room for."""
    return math.ceil(max_instances * margin) if margin > 0 else 0


@dataclass(frozen=True)
class Budget:
    db_max_connections: int
    reserved: int
    lines: tuple[Line, ...]

    @property
    def total(self) -> int:
        return sum(line.connections for line in self.lines) + self.reserved

    def max_instances(self, name: str) -> int:
        return next(line.max_instances for line in self.lines if line.name == name)

    def table(self) -> str:
        """The arithmetic, one function per line, as the dry run and the docs print it."""
        width = max((len(line.name) for line in self.lines), default=8)
        rows = [f"{'function'.ljust(width)}  (max instances + surge) × pool = connections"]
        for line in self.lines:
            how = "manifest" if line.fixed else "share"
            rows.append(
                f"{line.name.ljust(width)}  ({line.max_instances:>13} + {line.surge:>5}) × {line.pool_size:>4}"
                f" = {line.connections:>11}  ({how})"
            )
        rows.append(f"{'reserved (migrations, bootstrap, psql)'.ljust(width)}  {self.reserved:>44}")
        rows.append(f"{'total'.ljust(width)}  {self.total:>44} of DB_MAX_CONNECTIONS {self.db_max_connections}")
        return "\n".join(rows)


def allocate(
    functions: Sequence[manifest.Function], db_max_connections: int, reserved: int, surge: float = 0.0
) -> Budget:
    """Give every function its max instances within the budget, surge margins included, or raise OverBudget."""
    fixed = [fn for fn in functions if fn.max_instances is not None]
    shared = [fn for fn in functions if fn.max_instances is None]
    used = reserved + sum(
        ((fn.max_instances or 0) + surge_instances(fn.max_instances or 0, surge)) * fn.pool_size for fn in fixed
    )
    if used > db_max_connections:
        raise OverBudget(
            f"functions with a fixed max_instances need {used} Postgres connections (surge margin and reserve"
            f" included), over DB_MAX_CONNECTIONS {db_max_connections}"
        )
    share = 0
    if shared:
        pools = sum(fn.pool_size for fn in shared)
        share = min(SHARE_CAP, (db_max_connections - used) // pools)
        while share > 0 and (share + surge_instances(share, surge)) * pools > db_max_connections - used:
            share -= 1
        if share < 1:
            raise OverBudget(
                f"{len(shared)} functions share {db_max_connections - used} Postgres connections, less than one"
                f" instance each with its surge margin: raise DB_MAX_CONNECTIONS or lower concurrency / max_instances"
            )
    lines = []
    for fn in functions:
        instances = fn.max_instances if fn.max_instances is not None else share
        lines.append(
            Line(fn.name, instances, fn.pool_size, fn.max_instances is not None, surge_instances(instances, surge))
        )
    return Budget(db_max_connections, reserved, tuple(lines))
