"""Wrote tests/golden/v4.mlar, once: the sample archive of tests/samples.py as format version 4 wrote it.

Never run this again to "fix" the golden tests: the file is the frozen record of what a version 4
writer produced (the scorers section added after webhooks, a deleted version's gap in it), and the
tests check that today's reader still reads it the same. (mlflow-archive 0.4.0, 2026-12-08.)

    python tests/golden/make_v4.py
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from samples import write_golden  # noqa: E402

if __name__ == "__main__":
    write_golden(HERE / "v4.mlar")
