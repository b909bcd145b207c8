"""Micro benchmark of :mod:`telegraphy.query`: compiled filters evaluated per second.

Compiles a few typical filters and calls each on a mix of matching and
non-matching event ``data`` in a tight loop, in this process (no gateway,
no sockets). Prints evaluations/s and ns per evaluation; asserts nothing.
``bench/filters.py`` measures filters inside the gateway's fan-out.

Examples::

    python bench/filters_core.py                 # every case, about 1 s each
    python bench/filters_core.py --seconds 3     # longer runs
    python bench/filters_core.py --engine re     # regex cases on the checked re fallback
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from telegraphy import query  # noqa: E402

ROWS: list[dict[str, Any]] = [
    {"pk": 1, "status": "open", "priority": 5, "title": "Paid order", "customer": {"city": "Paris", "vip": True}},
    {"pk": 2, "status": "closed", "priority": 1, "title": "Refund", "customer": {"city": "Lyon"}},
    {"pk": 3, "status": "open", "priority": 2, "title": "New order", "customer": None},
    {"pk": 4, "status": "open", "priority": 9, "title": "Urgent: order 4", "customer": {"city": "paris"}},
]

CASES: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]] = [
    ("no filter", None, None),
    ("1 condition: status", {"status": "open"}, None),
    ("3 conditions: status, priority__gte, customer__city__iexact",
     {"status": "open", "priority__gte": 3, "customer__city__iexact": "paris"}, None),
    ("3 conditions: 2 filter + 1 exclude",
     {"status__in": ["open", "pending"], "priority__range": [2, 8]}, {"customer__vip": True}),
    ("regex: title__iregex", {"title__iregex": r"^(paid|urgent)\b"}, None),
    ("8 conditions", {"status": "open", "priority__gt": 0, "priority__lt": 10, "title__icontains": "order",
                      "customer__city__istartswith": "p", "customer__vip__isnull": False,
                      "pk__in": [1, 2, 3, 4], "title__endswith": "4"}, None),
]  # fmt: skip


def measure(predicate: query.Predicate, seconds: float) -> float:
    """Return evaluations per second of ``predicate`` over ROWS for about ``seconds``."""
    rows = ROWS * 250  # 1,000 evaluations per inner pass
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for row in rows:
            predicate(row)
        count += len(rows)
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def main() -> None:
    """Run every case and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per case (default 1)")
    parser.add_argument("--engine", choices=["re2", "re"], help="regex engine (default: re2 when installed)")
    args = parser.parse_args()
    if args.engine == "re":
        query.USE_RE2 = False
    print(f"python {sys.version.split()[0]}, regex engine: {query.regex_engine()}")
    print(f"{'case':64} {'evals/s':>12} {'ns/eval':>9}")
    for name, include, exclude in CASES:
        predicate = query.compile_filter(include, exclude)
        rate = measure(predicate, args.seconds)
        print(f"{name:64} {rate:12,.0f} {1e9 / rate:9.0f}")


if __name__ == "__main__":
    main()
