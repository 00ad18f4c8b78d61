import os
import sys
from pathlib import Path

import pytest

# Unexpected errors re-raise under tests instead of becoming one-line messages.
sys._called_from_test = True  # type: ignore[attr-defined]

REPO = Path(__file__).resolve().parent.parent
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures"


def shared_fixture(relpath: str) -> Path:
    """A file or folder of ../shared/fixtures, read in place (never copied here).

    Skips when the folder is absent (a user's clone); fails instead when
    ETL_REQUIRE_SHARED_FIXTURES=1, as CI sets it.
    """
    path = SHARED_FIXTURES / relpath
    if not path.exists():
        if os.environ.get("ETL_REQUIRE_SHARED_FIXTURES") == "1":
            pytest.fail(f"shared fixture missing: {path} (ETL_REQUIRE_SHARED_FIXTURES=1)")
        pytest.skip(f"shared fixtures not present at {path}")
    return path


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Every test gets its own ETL_HOME, so nothing touches the user's warehouse."""
    monkeypatch.setenv("ETL_HOME", str(tmp_path / "etl-home"))
    monkeypatch.delenv("ETL_WAREHOUSE", raising=False)
    monkeypatch.delenv("ETL_CONFIG", raising=False)
