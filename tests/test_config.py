import pytest

from etl.config import DEFAULT_TOML, Config, load_config
from etl.errors import EtlError


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config()
    assert config == Config()
    assert config.build.min_response_chars == 10


def test_default_toml_parses_to_the_defaults(tmp_path):
    path = tmp_path / "corpus.toml"
    path.write_text(DEFAULT_TOML)
    config = load_config(path)
    assert config.build == Config().build
    assert config.owner == Config().owner


def test_file_then_overrides(tmp_path):
    path = tmp_path / "corpus.toml"
    path.write_text('[owner]\nnames = ["Sam"]\n[build]\nmin_response_chars = 20\ndedup_threshold = 0.7\n')
    config = load_config(path).with_build(min_response_chars=5, dedup_threshold=None)
    assert config.owner.names == ("Sam",)
    assert config.build.min_response_chars == 5
    assert config.build.dedup_threshold == 0.7


def test_hash_changes_with_any_value():
    base = Config()
    assert base.sha256() == Config().sha256()
    assert base.sha256() != base.with_build(min_response_chars=11).sha256()


def test_cwd_file_is_found(tmp_path, monkeypatch):
    (tmp_path / "corpus.toml").write_text('[owner]\nemails = ["me@example.com"]\n')
    monkeypatch.chdir(tmp_path)
    assert load_config().owner.matches("ME@example.com ")


@pytest.mark.parametrize(
    "text, message",
    [
        ("[build]\nmin_respons_chars = 3\n", "unknown key"),
        ("[bulid]\n", "unknown section"),
        ("[build\n", "not valid TOML"),
        ("[build]\ntrajectory_tags = 'yes'\n", "true or false"),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path, text, message):
    path = tmp_path / "corpus.toml"
    path.write_text(text)
    with pytest.raises(EtlError, match=message) as error:
        load_config(path)
    assert str(path) in str(error.value)


def test_source_tables_give_connector_defaults_the_command_line_overrides(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from etl.cli import cli
    from etl.sources.base import SOURCES, Param, Source

    seen = []

    def read(ctx):
        seen.append(dict(ctx.options))
        return iter(())

    monkeypatch.setitem(
        SOURCES, "echo", Source("echo", 1, "records its options", read, (Param("me", "who"), Param("tz", "zone")), "none")
    )
    config = tmp_path / "corpus.toml"
    config.write_text('[sources.echo]\nme = "Speaker 2"\ntz = "Europe/Paris"\ncolumns = { id = "turn_id" }\n')
    warehouse = str(tmp_path / "w.duckdb")

    result = CliRunner().invoke(cli, ["--config", str(config), "--warehouse", warehouse, "ingest", "echo", "--tz", "UTC"])

    assert result.exit_code == 0, result.output
    assert seen == [{"me": "Speaker 2", "tz": "UTC", "columns": {"id": "turn_id"}}]


def test_a_source_section_must_be_a_table(tmp_path):
    path = tmp_path / "corpus.toml"
    path.write_text('[sources]\nsupabase = "x"\n')
    with pytest.raises(EtlError, match=r"one table per connector"):
        load_config(path)
