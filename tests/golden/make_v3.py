"""Wrote tests/golden/v3.mlar, once: the sample archive of tests/samples.py as format version 3 wrote it.

Never run this again to "fix" the golden tests: the file is the frozen record of what a version 3
writer produced (the webhooks section added, an encrypted secret in it), and the tests check that
today's reader still reads it the same. (mlflow-archive 0.3.0, 2026-12-08.)

    python tests/golden/make_v3.py
"""

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from samples import MTIME, build_sample  # noqa: E402

if __name__ == "__main__":
    target = HERE / "v3.mlar"
    if target.exists():
        sys.exit(f"{target} exists; the golden archive is written once and never regenerated.")
    with tempfile.TemporaryDirectory() as tmp:
        target.write_bytes(build_sample(Path(tmp), mtime=MTIME).data)
    print(f"wrote {target}")
