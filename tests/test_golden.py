"""The bundled sample export, ingested and built, against files kept in tests/golden/.

After a deliberate change to a transform, regenerate with
    ETL_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py
and read the diff before committing it.
"""

import json
import os
import shutil
from pathlib import Path

import pytest

from etl.build import build_version
from etl.config import load_config
from etl.demo import DEMO_CONFIG, samples
from etl.ingest import run_ingest
from etl.sources import get_source

GOLDEN = Path(__file__).parent / "golden" / "sample_v1"


def _stable_manifest(manifest: dict) -> dict:
    """The manifest without what differs between two warehouses: run ids, paths, versions."""
    manifest = json.loads(json.dumps(manifest))
    for run in manifest["inputs"]["ingest_runs"]:
        run["run_id"] = "<run>"
        # Streams are named by absolute path, which depends on where the checkout lives.
        run["watermarks"] = {Path(stream).name: value for stream, value in run["watermarks"].items()}
    manifest.pop("etl_version")
    return manifest


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    home = tmp_path_factory.mktemp("golden")
    (home / "corpus.toml").write_text(DEMO_CONFIG)
    config = load_config(home / "corpus.toml")
    warehouse = home / "w.duckdb"
    run_ingest(warehouse, get_source("imessage"), [], {"db": str(samples() / "chat.db")}, config.owner)
    first = build_version(warehouse, home / "datasets", "v1", config)
    second = build_version(warehouse, home / "datasets", "v2", config)
    return first, second


def test_sample_build_matches_golden_files(built):
    first, _ = built
    produced = {
        p.relative_to(first.path).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(first.path.rglob("*.jsonl"))
    }
    produced["manifest.json"] = json.dumps(_stable_manifest(first.manifest), ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    if os.environ.get("ETL_UPDATE_GOLDEN") == "1":
        shutil.rmtree(GOLDEN, ignore_errors=True)
        for relpath, text in produced.items():
            (GOLDEN / relpath).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / relpath).write_text(text, encoding="utf-8")
    expected = {p.relative_to(GOLDEN).as_posix(): p.read_text(encoding="utf-8") for p in sorted(GOLDEN.rglob("*")) if p.is_file()}
    assert sorted(produced) == sorted(expected)
    for relpath in expected:
        assert produced[relpath] == expected[relpath], f"{relpath} differs from tests/golden/sample_v1/{relpath}"


def test_second_version_has_identical_files(built):
    first, second = built
    assert first.manifest["files"] == second.manifest["files"]
    for relpath in first.manifest["files"]:
        assert (first.path / relpath).read_bytes() == (second.path / relpath).read_bytes()
