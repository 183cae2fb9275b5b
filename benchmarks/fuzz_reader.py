"""A long hypothesis run of the reader over hostile archives (tests/fuzz_archives.py), with figures.

    PYTHONPATH=.:tests python benchmarks/fuzz_reader.py [EXAMPLES]

Prints how many archives were tried, how many were refused (by error message, numbers and names
stripped), how many read whole, the slowest example, and the process's peak memory. Exits non-zero on
the first archive whose reading breaks the property (see tests/fuzz_archives.py).
"""

from __future__ import annotations

import collections
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings

from corpus import build_base
from fuzz_archives import check, hostile
from samples import read_back

LAST = Path(tempfile.gettempdir()) / "fuzz_reader_last.mlar"
EXAMPLES = int(sys.argv[1]) if len(sys.argv) > 1 else 20000


def main() -> None:
    base = build_base()
    verdicts: collections.Counter[str] = collections.Counter()
    slowest = [0.0]

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(hostile)
    def run(damage):
        data = damage(base)
        LAST.write_bytes(data)  # pyarrow can abort the process (std::terminate): keep the input that did it
        started = time.perf_counter()
        problem = check(base, data)
        slowest[0] = max(slowest[0], time.perf_counter() - started)
        assert problem is None, problem
        error = read_back(data, decode=True).error
        shape = "read whole" if error is None else re.sub(r"[0-9a-f]{8,}|\d+|'[^']*'|\S+/\S+", "#", str(error))
        verdicts[shape] += 1

    started = time.perf_counter()
    run()
    elapsed = time.perf_counter() - started
    total = sum(verdicts.values())
    print(f"{total} hostile archives in {elapsed:.0f} s; slowest read {slowest[0] * 1000:.0f} ms; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB; no property broken")
    for shape, n in verdicts.most_common():
        print(f"{n:7d}  {shape[:150]}")


if __name__ == "__main__":
    main()
