"""Dataset versions on disk: hashes and verification live in `etl.schemas.hashing`,
re-exported here; `etl verify --rebuild` is `etl.verify`, `etl diff` is in `etl.inspect`."""

from __future__ import annotations

from etl.schemas.hashing import (  # noqa: F401 (re-exported)
    MANIFEST,
    SUMS,
    dataset_sha256,
    manifest_text,
    read_manifest,
    sha256_file,
    verify_version,
    write_manifest_and_sums,
)
