import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from etl.build import build_version
from etl.cli import cli
from etl.config import Config, Owner
from etl.errors import EtlError, VerificationFailed, VersionExists
from etl.versions import verify_version
from etl.warehouse import open_warehouse
from etl.warehouse.builds import COMMIT_STEPS
from factories import dialogue, land, message

AWS_KEY = "AKIAZ7QW3ERT5YUI9OPL"

CORPUS = (
    dialogue("deploy", [
        (False, "The deploy failed with a 503 error on the staging server."),
        (True, "Show me the logs first, then roll back staging."),
        (False, "Logs attached. Looks like the health check times out."),
        (True, f"Bump the timeout to 30s and redeploy. Key is {AWS_KEY} if you need it."),
    ])
    + dialogue("review", [
        (False, "The PR is ready for review."),
        (True, "Looking now. Ship it if CI is green."),
        (False, "CI is green."),
        (True, "ok"),
        (False, "Anything else?"),
        (True, "[Request interrupted by user]"),
    ])
    + dialogue("email", [
        (False, "Can you send the invoice by Friday?"),
        (True, "Sent it this morning, check your inbox.\n\nOn Tue, May 7, 2024 at 9:00 AM Alex <alex@example.com> wrote:\n> Can you send the invoice by Friday?"),
    ])
    + dialogue("habit", [(False, f"question number {i} about the build?") if i % 2 == 0 else (True, "Ship it if CI is green.") for i in range(10)])
    + [
        message("tap-1", "Loved “Ship it if CI is green.”", owner=False, conversation="review", minutes=2.5),
        message("react-1", None, owner=True, conversation="review", minutes=3.5, kind="reaction"),
        message("moji-1", "Iâ€™m on it", owner=False, conversation="moji", minutes=0),
        message("moji-2", "Iâ€™ll check the dashboard tonight", owner=True, conversation="moji", minutes=1),
    ]
)


@pytest.fixture
def warehouse(tmp_path):
    path = tmp_path / "w.duckdb"
    land(path, CORPUS)
    return path


def _build(warehouse, datasets, version="v1", **overrides):
    config = Config(owner=Owner(names=("Sam",))).with_build(**overrides)
    return build_version(warehouse, datasets, version, config)


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_build_writes_a_checked_version(warehouse, tmp_path):
    result = _build(warehouse, tmp_path / "datasets")
    folder = tmp_path / "datasets" / "v1"
    assert result.path == folder
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "README.md", "SHA256SUMS",
        "chatml/test.jsonl", "chatml/train.jsonl", "chatml/valid.jsonl",
        "manifest.json",
    ]
    subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=folder, check=True)
    manifest = verify_version(folder)
    records = [r for s in ("train", "valid", "test") for r in _lines(folder / "chatml" / f"{s}.jsonl")]
    assert len(records) == manifest["counts"]["examples"]["kept"] == sum(manifest["counts"]["splits"].values())
    for record in records:
        roles = [m["role"] for m in record["messages"]]
        assert roles[0] == "system" and roles[1] == "user" and roles[-1] == "assistant"
        assert len(record["messages"][-1]["content"]) >= 10
    texts = json.dumps(records, ensure_ascii=False)
    assert AWS_KEY not in texts and "[SECRET:aws_access_key]" in texts
    assert "wrote:" not in texts and "> Can you send" not in texts
    assert "Request interrupted" not in texts
    assert "I’m on it" in texts and "â€™" not in texts
    assert manifest["redactions"] == {"aws_access_key": 1}
    assert manifest["dpo"]["records"] == 0 and "etl train rejected" in manifest["dpo"]["note"]


def test_drops_are_counted_and_queryable(warehouse, tmp_path):
    result = _build(warehouse, tmp_path / "datasets", max_reply_repeats=2)
    dropped = {(s["stage"], r): n for s in result.manifest["counts"]["stages"] for r, n in s["dropped"].items()}
    assert dropped[("meta", "kind:reaction")] == 1
    assert dropped[("meta", "meta:tapback")] == 1
    assert dropped[("meta", "meta:interrupted")] == 1
    assert dropped[("examples", "short_response")] == 1  # "ok"
    # "Ship it if CI is green." answers five different questions: the first two stay.
    assert dropped[("examples", "reply_repeats")] == 3
    with open_warehouse(warehouse, read_only=True) as con:
        table = dict(con.execute(
            "select stage || '/' || reason, count(*) from build_drops where version = 'v1' group by 1"
        ).fetchall())
        (examples,) = con.execute("select count(*) from build_examples where version = 'v1'").fetchall()[0]
    assert table == {f"{s}/{r}": n for (s, r), n in dropped.items()}
    assert examples == result.manifest["counts"]["examples"]["kept"]


def test_same_warehouse_same_config_same_bytes(warehouse, tmp_path):
    first = _build(warehouse, tmp_path / "datasets", "v1")
    second = _build(warehouse, tmp_path / "datasets", "v2")
    assert first.manifest["files"] == second.manifest["files"]
    assert first.manifest["dataset_sha256"] == second.manifest["dataset_sha256"]


def test_versions_are_immutable(warehouse, tmp_path):
    first = _build(warehouse, tmp_path / "datasets")
    with pytest.raises(VersionExists, match=first.manifest["dataset_sha256"]):
        _build(warehouse, tmp_path / "datasets")


def test_interrupted_build_leaves_nothing(warehouse, tmp_path, monkeypatch):
    import etl.build

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(etl.build, "write_manifest_and_sums", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _build(warehouse, tmp_path / "datasets")
    assert list((tmp_path / "datasets").iterdir()) == []
    with open_warehouse(warehouse, read_only=True) as con:
        assert con.execute("select count(*) from builds").fetchall()[0] == (0,)
        assert con.execute("select count(*) from build_examples").fetchall()[0] == (0,)
    monkeypatch.undo()
    assert _build(warehouse, tmp_path / "datasets").path.exists()


def test_killed_build_leaves_no_version_and_the_next_one_succeeds(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    # Enough rows that writing takes a moment, so the kill lands mid-write.
    rows = []
    for c in range(400):
        rows += dialogue(f"conv{c}", [(i % 2 == 1, f"message {i} of conversation {c} with some words") for i in range(20)])
    land(warehouse, rows)
    datasets = tmp_path / "datasets"
    env = {**os.environ, "ETL_WAREHOUSE": str(warehouse), "ETL_DATASETS": str(datasets)}
    for attempt in range(5):
        version = f"k{attempt}"
        child = subprocess.Popen([sys.executable, "-m", "etl", "build", "--version", version], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while child.poll() is None and not any(datasets.glob(".partial-*")):
            time.sleep(0.001)
        child.send_signal(signal.SIGKILL)
        child.wait()
        if not (datasets / version).exists():
            break
    else:
        pytest.skip("the build always finished before it could be killed")
    with open_warehouse(warehouse, read_only=True) as con:
        assert con.execute("select count(*) from builds where version = ?", [version]).fetchall()[0] == (0,)
        assert con.execute("select count(*) from build_examples where version = ?", [version]).fetchall()[0] == (0,)
    result = CliRunner().invoke(cli, ["build", "--version", version], env=env)
    assert result.exit_code == 0, result.output
    assert not any(datasets.glob(".partial-*"))
    verify_version(datasets / version)


def test_verify_names_a_flipped_byte(warehouse, tmp_path):
    _build(warehouse, tmp_path / "datasets")
    target = tmp_path / "datasets" / "v1" / "chatml" / "train.jsonl"
    data = bytearray(target.read_bytes())
    data[10] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(VerificationFailed, match="chatml/train.jsonl"):
        verify_version(tmp_path / "datasets" / "v1")
    result = CliRunner().invoke(cli, ["--warehouse", str(warehouse), "--datasets", str(tmp_path / "datasets"), "verify", "v1"])
    assert result.exit_code != 0
    assert "chatml/train.jsonl" in result.output and "Traceback" not in result.output


def test_verify_rebuild_ignores_later_ingests(warehouse, tmp_path):
    datasets = tmp_path / "datasets"
    _build(warehouse, datasets)
    land(warehouse, dialogue("later", [(False, "new question after v1?"), (True, "a brand new answer after v1")]), name="later")
    runner = CliRunner()
    result = runner.invoke(cli, ["--warehouse", str(warehouse), "--datasets", str(datasets), "verify", "v1", "--rebuild"])
    assert result.exit_code == 0, result.output
    assert "identical" in result.output


def test_diff_shows_added_and_removed(warehouse, tmp_path):
    datasets = tmp_path / "datasets"
    args = ["--warehouse", str(warehouse), "--datasets", str(datasets)]
    runner = CliRunner()
    assert runner.invoke(cli, [*args, "build", "--version", "v1"]).exit_code == 0
    assert runner.invoke(cli, [*args, "build", "--version", "v2", "--min-response-chars", "30"]).exit_code == 0
    result = runner.invoke(cli, [*args, "diff", "v1", "v2"])
    assert result.exit_code == 0, result.output
    assert "added: 0" in result.output
    assert "examples:short_response" in result.output


def test_dry_run_writes_nothing(warehouse, tmp_path):
    datasets = tmp_path / "datasets"
    result = CliRunner().invoke(cli, ["--warehouse", str(warehouse), "--datasets", str(datasets), "build", "--version", "v1", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "dry run" in result.output and "short_response" in result.output
    assert not datasets.exists()


def test_output_loads_with_mlx_lm(warehouse, tmp_path):
    pytest.importorskip("mlx_lm", reason="the [train] extra is not installed")
    from types import SimpleNamespace

    from mlx_lm.tuner.datasets import load_dataset

    _build(warehouse, tmp_path / "datasets")
    folder = tmp_path / "datasets" / "v1" / "chatml"

    class Tokenizer:
        eos_token_id = 0

        def apply_chat_template(self, messages, tools=None, tokenize=True, add_generation_prompt=False, **kw):
            text = "".join(f"<{m['role']}>{m['content']}" for m in messages)
            return [ord(c) % 256 for c in text] if tokenize else text

    args = SimpleNamespace(data=str(folder), train=True, test=True, hf_dataset=None, mask_prompt=True,
                           chat_feature="messages", text_feature="text", prompt_feature="prompt",
                           completion_feature="completion")
    train, valid, test = load_dataset(args, Tokenizer())
    assert len(train) + len(valid) + len(test) == sum(1 for s in ("train", "valid", "test") for _ in (folder / f"{s}.jsonl").open())
    tokens, offset = train.process(train[0]) if hasattr(train, "process") else (None, None)
    assert tokens is None or len(tokens) > 0


def test_examples_are_traceable_to_messages(warehouse, tmp_path):
    _build(warehouse, tmp_path / "datasets")
    with open_warehouse(warehouse, read_only=True) as con:
        rows = con.sql(
            "select e.response, m.text from build_examples e, unnest(e.message_ids) u(id) "
            "join raw_messages m on m.source_id = u.id where e.version = 'v1'"
        ).pl()
    assert rows.height > 0
    for response, text in rows.iter_rows():
        assert text.split()[0] in response or "Iâ€™ll" in text


def test_owner_named_in_the_config_after_ingest_still_counts(tmp_path):
    # An export that cannot tell who is who lands is_owner unknown; naming yourself
    # in corpus.toml later is enough, no need to land it again.
    rows = [
        {**m, "is_owner": None, "sender": "Sam Rivera" if m["is_owner"] else "Alex"}
        for m in dialogue("later", [(False, "Are we still on for Saturday?"), (True, "Yes, see you at ten at the trailhead.")])
    ]
    warehouse = tmp_path / "w.duckdb"
    land(warehouse, rows)
    with pytest.raises(EtlError, match=r"v1: no examples, nothing written: 2 messages \(0 yours\).*under \[owner\]"):
        build_version(warehouse, tmp_path / "d", "v1", Config())
    assert not (tmp_path / "d").exists()
    named = build_version(warehouse, tmp_path / "d", "v2", Config(owner=Owner(names=("sam rivera",))))
    assert named.manifest["counts"]["examples"]["kept"] == 1


def test_every_reason_a_build_gives_is_declared(warehouse, tmp_path):
    from etl.build import declared_reasons, is_declared

    config = Config(owner=Owner(names=("Sam",)))
    build_version(warehouse, tmp_path / "datasets", "v1", config)
    with open_warehouse(warehouse, read_only=True) as con:
        given = con.execute("SELECT DISTINCT stage, reason FROM build_drops ORDER BY ALL").fetchall()
    declared = declared_reasons(config)
    # The corpus makes drops in two stages and three modules, so the check has something to check.
    assert {stage for stage, _ in given} >= {"meta", "examples"}
    assert {"short_response", "reply_repeats", "kind:reaction"} <= {reason for _, reason in given}
    undeclared = [(s, r) for s, r in given if not is_declared(r, declared.get(s, ()))]
    assert undeclared == []
    assert not is_declared("kind:reaction", declared["examples"])


def test_transform_needs_no_warehouse_and_leaves_it_free(warehouse, tmp_path, monkeypatch):
    import etl.build as build

    config = Config(owner=Owner(names=("Sam",)))
    with open_warehouse(warehouse, read_only=True) as con:
        messages, inputs = build.load(con, config, None, None)
    first = build.transform(messages, inputs.rejected, config)
    again = build.transform(messages, inputs.rejected, config)
    assert first.files == again.files and first.counts == again.counts
    assert first.counts["examples"]["kept"] == sum(len(v) for k, v in first.files.items() if k.startswith("chatml/"))

    seen = []
    original = build.transform

    def meanwhile(*args, **kwargs):
        # Another etl command writes to the warehouse while the build transforms.
        with open_warehouse(warehouse) as con:
            seen.append(con.execute("SELECT count(*) FROM raw_messages").fetchone()[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(build, "transform", meanwhile)
    result = _build(warehouse, tmp_path / "datasets")
    assert seen and seen[0] == first.counts["messages"]
    assert result.manifest["counts"] == first.counts


@pytest.mark.parametrize("step", COMMIT_STEPS)
def test_a_kill_in_the_commit_window_never_shows_a_version_without_its_folder(warehouse, tmp_path, step):
    # The build kills itself (SIGKILL, ETL_FAULT) right after `step`: recorded as pending,
    # folder renamed into place, marked complete.
    datasets = tmp_path / "datasets"
    _build(warehouse, datasets, "v0")

    def etl(*args):
        return CliRunner().invoke(cli, ["--warehouse", str(warehouse), "--datasets", str(datasets), *args])

    env = {**os.environ, "ETL_WAREHOUSE": str(warehouse), "ETL_DATASETS": str(datasets),
           "ETL_FAULT": f"kill-after:{step}"}
    killed = subprocess.run([sys.executable, "-m", "etl", "build", "--version", "v1"], env=env,
                            capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    complete = step == "completed"
    assert (datasets / "v1").exists() == (step != "recorded")
    status = etl("status")
    assert status.exit_code == 0 and "v0" in status.output
    assert (" v1 " in status.output) == complete, status.output
    counts = etl("sql", "select count(*) as n from build_split_counts where version = 'v1'", "--format", "csv")
    assert (counts.output != "n\n0\n") == complete
    for args in (["diff", "v0", "v1"], ["report", "v1"], ["verify", "v1"], ["train", "sft", "--version", "v1", "--dry-run"]):
        result = etl(*args)
        if complete:
            assert result.exit_code == 0 or args[0] == "train", result.output
        else:
            assert result.exit_code != 0, (args, result.output)
            assert "v1" in result.output and "Traceback" not in result.output
    again = etl("build", "--version", "v1")
    if complete:
        assert again.exit_code == VersionExists.exit_code  # a finished version is never rebuilt over
    else:
        assert again.exit_code == 0, again.output
        assert not any(datasets.glob(".partial-*"))
        verify_version(datasets / "v1")
        assert etl("diff", "v0", "v1").exit_code == 0


def test_a_pending_version_is_cleared_only_with_its_own_folder(warehouse, tmp_path):
    # A folder the pending row does not describe (another warehouse's v1) is never removed.
    datasets = tmp_path / "datasets"
    _build(warehouse, datasets, "v1")
    with open_warehouse(warehouse) as con:
        con.execute("UPDATE builds SET status = 'pending', dataset_sha256 = 'other' WHERE version = 'v1'")
    with pytest.raises(VersionExists):
        _build(warehouse, datasets, "v1")
    assert (datasets / "v1" / "manifest.json").is_file()
