"""Connectors: one small module per kind of export, each registered here.

A connector reads an export and yields `Batch`es of rows in the raw schema; it
never writes to the warehouse. `etl.ingest` loads what it yields, idempotently,
with the run record and watermarks in the same transaction.
"""

# Importing a connector registers it.
from etl.sources import (  # noqa: E402,F401
    android_sms,
    chatgpt,
    claude_ai,
    claude_code,
    discord,
    google_chat,
    imessage,
    mail,
    messenger,
    msgvault,
    pst,
    signal,
    slack,
    supabase,
    telegram,
    transcript,
    whatsapp,
    whatsapp_db,
)
from etl.sources.base import (
    SOURCES,
    Batch,
    Param,
    Quarantined,
    Source,
    SourceContext,
    SourceError,
    get_source,
    source,
)

__all__ = [
    "SOURCES",
    "Batch",
    "Param",
    "Quarantined",
    "Source",
    "SourceContext",
    "SourceError",
    "get_source",
    "source",
]
