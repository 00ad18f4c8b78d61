"""Export files read in place: plain files, folders and zip archives, safely."""

import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etl.sources.archive import MIN_BOMB_BYTES, check_member_name, input_files, zip_members
from etl.sources.base import SourceError


def _zip(path, members, compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_file_folder_and_zip_in_a_stable_order(tmp_path):
    (tmp_path / "export" / "b").mkdir(parents=True)
    (tmp_path / "export" / "b" / "two.txt").write_text("2")
    (tmp_path / "export" / "one.txt").write_text("1")
    (tmp_path / "export" / ".DS_Store").write_text("x")
    _zip(tmp_path / "export" / "inner.zip", {"z/three.txt": "3", "__MACOSX/._three.txt": "x", "skip.png": "x"})
    single = tmp_path / "single.txt"
    single.write_text("0")

    found = list(input_files([single, tmp_path / "export"], accept=lambda name: name.endswith(".txt")))

    assert [f.name for f in found] == ["single.txt", "two.txt", "three.txt", "one.txt"]
    assert [f.read_bytes() for f in found] == [b"0", b"2", b"3", b"1"]
    member = found[2]
    assert member.member == "z/three.txt"
    assert member.location == f"{tmp_path / 'export' / 'inner.zip'}!z/three.txt"
    with member.open() as stream:
        assert stream.readline() == b"3"


def test_a_missing_path_names_what_was_expected(tmp_path):
    with pytest.raises(SourceError, match=r"no such file or folder \(expected a WhatsApp chat\)"):
        list(input_files([tmp_path / "nope.txt"], what="a WhatsApp chat"))


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil.txt", "/etc/passwd", "C:/evil.txt", "..\\evil.txt"])
def test_an_entry_escaping_the_archive_refuses_the_whole_archive(tmp_path, name):
    archive = _zip(tmp_path / "x.zip", {"good.txt": "ok", name: "bad"})
    with pytest.raises(SourceError, match="points outside the archive"):
        list(input_files([archive]))


def test_a_zip_bomb_is_refused_before_reading(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        with z.open("chat.txt", "w", force_zip64=True) as member:
            block = b"\0" * (1 << 20)
            for _ in range(MIN_BOMB_BYTES // len(block) + 1):
                member.write(block)
    assert archive.stat().st_size < 1 << 20
    with pytest.raises(SourceError, match="zip bomb"):
        zip_members(archive)


def test_a_corrupt_zip_is_one_clear_error(tmp_path):
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04" + b"\0" * 40)
    with pytest.raises(SourceError, match="not a readable zip archive"):
        list(input_files([broken]))


@given(st.lists(st.sampled_from(["a", "b", "..", ".", "c.txt", ""]), min_size=1, max_size=5))
def test_member_names_never_escape(parts):
    name = "/".join(parts)
    try:
        check_member_name(Path("x.zip"), name)
    except SourceError:
        assert ".." in parts or name.startswith("/")
    else:
        assert ".." not in parts and not name.startswith("/")
