"""Hand a verified dataset version to mlx-lm (SFT) or mlx-lm-lora (DPO), and keep the record.

This package knows the trainers' contracts (their YAML keys, their data folders, the
lines they print) and a version's manifest; nothing about sources. mlx is imported
only inside the functions that need it, so every other `etl` command works without
the `[train]` extra.
"""

from __future__ import annotations

import importlib.util

from etl.schemas.errors import EtlError

INSTALL_HINT = "pip install 'etl-voice[train]'"


def require(module: str = "mlx_lm", package: str = "mlx-lm") -> None:
    """Fail with one line when a trainer package is missing or mlx cannot load."""
    if importlib.util.find_spec(module) is None:
        raise EtlError(f"{package} is not installed; run: {INSTALL_HINT}")
    try:
        import mlx.core  # noqa: F401
    except ImportError as error:
        # On Linux, mlx installs without a backend unless the CPU build is asked for.
        raise EtlError(f"mlx is installed but cannot load ({error}); run: {INSTALL_HINT}") from None
