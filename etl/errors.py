"""The error classes, kept importable here; they live on the floor (`etl.schemas.errors`)."""

from etl.schemas.errors import (  # noqa: F401 (re-exported)
    LINE_LIMIT,
    QUOTE_LIMIT,
    EtlError,
    SourceError,
    VerificationFailed,
    VersionExists,
    WarehouseLocked,
    one_line,
    quote,
    shorten,
)
