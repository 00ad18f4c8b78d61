"""Where `etl` keeps things; it lives on the floor (`etl.schemas.paths`)."""

from etl.schemas.paths import default_datasets, default_warehouse, etl_home, owner_only, private_dir  # noqa: F401
