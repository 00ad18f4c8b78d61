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

GOLDEN = Path(__file__).parent / "golden"

# The demo as shipped (no names: every friend a pseudonym), and a private build: two
# contacts named, every label a pseudonym anyway, PII redacted in every text.
PRIVATE_CONFIG = DEMO_CONFIG.replace("[build]\n", 'region = "US"\n\n[build]\nspeaker_labels = "pseudonyms"\nredact_pii = true\n') + """
[contacts]
"+14155550167" = "Lena Fischer"
"mei.chen@example.com" = "Mei"
"""
CONFIGS = {"sample_v1": DEMO_CONFIG, "sample_private": PRIVATE_CONFIG}


def _stable_manifest(manifest: dict) -> dict:
    """The manifest without what differs between two warehouses: run ids, paths, versions."""
    manifest = json.loads(json.dumps(manifest))
    for run in manifest["inputs"]["ingest_runs"]:
        run["run_id"] = "<run>"
        # Streams are named by absolute path, which depends on where the checkout lives.
        # With PII redaction they are recorded by the path's hash instead.
        run["watermarks"] = {
            "<hashed stream>" if stream.startswith("sha256:") else Path(stream).name: value
            for stream, value in run["watermarks"].items()
        }
    manifest.pop("etl_version")
    return manifest


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def built(request, tmp_path_factory):
    home = tmp_path_factory.mktemp("golden")
    (home / "corpus.toml").write_text(CONFIGS[request.param])
    config = load_config(home / "corpus.toml")
    warehouse = home / "w.duckdb"
    run_ingest(warehouse, get_source("imessage"), [], {"db": str(samples() / "chat.db")}, config.owner)
    first = build_version(warehouse, home / "datasets", "v1", config)
    second = build_version(warehouse, home / "datasets", "v2", config)
    return first, second, GOLDEN / request.param


def test_sample_build_matches_golden_files(built):
    first, _, golden = built
    produced = {
        p.relative_to(first.path).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(first.path.rglob("*.jsonl"))
    }
    produced["manifest.json"] = json.dumps(_stable_manifest(first.manifest), ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    if os.environ.get("ETL_UPDATE_GOLDEN") == "1":
        shutil.rmtree(golden, ignore_errors=True)
        for relpath, text in produced.items():
            (golden / relpath).parent.mkdir(parents=True, exist_ok=True)
            (golden / relpath).write_text(text, encoding="utf-8")
    expected = {p.relative_to(golden).as_posix(): p.read_text(encoding="utf-8") for p in sorted(golden.rglob("*")) if p.is_file()}
    assert sorted(produced) == sorted(expected)
    for relpath in expected:
        assert produced[relpath] == expected[relpath], f"{relpath} differs from tests/golden/{golden.name}/{relpath}"




def test_second_version_has_identical_files(built):
    first, second, _ = built
    assert first.manifest["files"] == second.manifest["files"]
    for relpath in first.manifest["files"]:
        assert (first.path / relpath).read_bytes() == (second.path / relpath).read_bytes()
