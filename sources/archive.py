"""The files of an export, whether the user points at a file, a folder or the `.zip`
they downloaded: read in place, never unpacked to disk.

Archives are checked before anything is read from them: a member whose name would
escape the archive (an absolute path, `..`), or one that expands absurdly (a zip
bomb), makes the whole archive fail with one line naming it, so nothing of it lands.
Python's zipfile stops reading a member at its declared size and checks its CRC, so
the declared sizes checked here are the sizes actually read.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from etl.schemas.errors import SourceError

ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
# A member that expands more than this many times over, and past MIN_BOMB_BYTES, is
# refused: real exports compress text 3-20x, never 1000x.
MAX_EXPANSION_RATIO = 200
MIN_BOMB_BYTES = 50 << 20
MAX_ARCHIVE_BYTES = 64 << 30  # total expanded size of one archive


@dataclass(frozen=True)
class InputFile:
    """One file of an export: on disk, or a member of a zip archive."""

    path: Path  # the file on disk; for a member, the archive
    member: str | None = None  # name inside the archive
    size: int = 0  # bytes once read (uncompressed)

    @property
    def name(self) -> str:
        return PurePosixPath(self.member).name if self.member else self.path.name

    @property
    def location(self) -> str:
        """How messages and errors refer to it: `export.zip!chat.txt`."""
        return f"{self.path}!{self.member}" if self.member else str(self.path)

    def open(self) -> BinaryIO:
        """A binary stream; close it (use `with`)."""
        if self.member is None:
            return self.path.open("rb")
        archive = zipfile.ZipFile(self.path)
        try:
            stream = archive.open(self.member)
        except Exception:
            archive.close()
            raise
        return _MemberStream(stream, archive)

    def read_bytes(self) -> bytes:
        with self.open() as stream:
            return stream.read()


class _MemberStream:
    """A zip member's stream that also closes its archive."""

    def __init__(self, stream: BinaryIO, archive: zipfile.ZipFile):
        self._stream, self._archive = stream, archive

    def __getattr__(self, name):
        return getattr(self._stream, name)

    def __iter__(self):
        return iter(self._stream)

    def close(self) -> None:
        self._stream.close()
        self._archive.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def is_zip(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) in (ZIP_MAGIC, EMPTY_ZIP_MAGIC)
    except OSError:
        return False


def input_files(
    paths: Iterable[Path],
    accept: Callable[[str], bool] = lambda name: True,
    *,
    what: str = "export",
) -> Iterator[InputFile]:
    """Every accepted file under `paths`, in a stable order: files as given, folders
    walked recursively (hidden files skipped), zip archives opened in place.

    `accept` gets the path inside the folder or archive (posix separators) and decides
    which files are part of the export. A path that does not exist is an error; so is
    an unsafe archive.
    """
    for path in paths:
        path = Path(path).expanduser()
        if not path.exists():
            raise SourceError(f"{path}: no such file or folder (expected {what})")
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                relative = child.relative_to(path)
                if any(part.startswith(".") for part in relative.parts) or not child.is_file():
                    continue
                if is_zip(child):
                    yield from zip_members(child, accept)
                elif accept(relative.as_posix()):
                    yield InputFile(child, size=child.stat().st_size)
        elif is_zip(path):
            yield from zip_members(path, accept)
        else:
            yield InputFile(path, size=path.stat().st_size)


def zip_members(path: Path, accept: Callable[[str], bool] = lambda name: True) -> list[InputFile]:
    """The accepted members of a zip archive, after checking the whole archive is safe."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise SourceError(f"{path}: not a readable zip archive ({e})") from None
    total = 0
    for info in infos:
        check_member_name(path, info.filename)
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > MIN_BOMB_BYTES and ratio > MAX_EXPANSION_RATIO:
            raise SourceError(
                f"{path}: member {info.filename!r} would expand {ratio:,.0f} times to "
                f"{info.file_size:,} bytes; refusing to read a zip bomb"
            )
        total += info.file_size
    if total > MAX_ARCHIVE_BYTES:
        raise SourceError(f"{path}: would expand to {total:,} bytes, more than {MAX_ARCHIVE_BYTES:,}; refusing it")
    return [
        InputFile(path, info.filename, info.file_size)
        for info in sorted(infos, key=lambda i: i.filename)
        if not info.is_dir() and not _hidden(info.filename) and accept(info.filename)
    ]


def check_member_name(path: Path, name: str) -> None:
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or (pure.parts and pure.parts[0].endswith(":")):
        raise SourceError(f"{path}: member {name!r} points outside the archive; refusing the archive")


def _hidden(name: str) -> bool:
    # macOS zips carry __MACOSX/ resource forks and .DS_Store files.
    return any(part.startswith(".") or part == "__MACOSX" for part in PurePosixPath(name).parts)
