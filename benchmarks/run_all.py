"""Run every benchmarks/bench_*.py in turn; each prints its own table of side-by-side ratios."""

import subprocess
import sys
from pathlib import Path

here = Path(__file__).parent
failed = 0
for script in sorted(here.glob("bench_*.py")):
    print(f"\n=== {script.name}", flush=True)
    failed |= subprocess.call([sys.executable, str(script)], timeout=1800) != 0
sys.exit(failed)
