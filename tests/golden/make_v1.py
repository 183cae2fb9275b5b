"""Wrote tests/golden/v1.mlar, once: the sample archive of tests/samples.py as format version 1 wrote it.

Never run this again to "fix" test_golden_v1: the file is the frozen record of what a
version 1 writer produced, and the test checks that today's reader still reads it the same.
(pyarrow 25.0.1, zstandard 0.25.0, mlflow-archive 0.1.0 with the `meta` comment field, 2026-11-26.)

    python tests/golden/make_v1.py
"""

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from samples import MTIME, build_sample  # noqa: E402

if __name__ == "__main__":
    target = HERE / "v1.mlar"
    if target.exists():
        sys.exit(f"{target} exists; the golden archive is written once and never regenerated.")
    with tempfile.TemporaryDirectory() as tmp:
        target.write_bytes(build_sample(Path(tmp), mtime=MTIME).data)
    print(f"wrote {target}")
