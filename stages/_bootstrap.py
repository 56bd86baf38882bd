"""Imported first by every stage: run the package from this checkout's src/, not an installed copy,
so the code DVC hashes as a dependency is the code that runs."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
