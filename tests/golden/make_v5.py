"""Wrote tests/golden/v5.mlar, once: the sample archive of tests/samples.py as format version 5 wrote it.

Never run this again to "fix" the golden tests: the file is the frozen record of what a version 5
writer produced (the label_schemas and issues sections added after scorers), and the
tests check that today's reader still reads it the same. (mlflow-archive 0.5.0, 2026-12-08.)

    python tests/golden/make_v5.py
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from samples import write_golden  # noqa: E402

if __name__ == "__main__":
    write_golden(HERE / "v5.mlar")
