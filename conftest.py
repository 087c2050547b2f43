"""Repository-root conftest: makes the source tree importable without installing, and locates shared data."""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
