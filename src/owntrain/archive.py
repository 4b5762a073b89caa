"""Bundle archives: one ``.tar.gz``/``.tgz`` or ``.zip`` file holding a bundle folder, written and unpacked safely.

An archive holds one folder (named after the archive) with ``manifest.json`` and the files it
lists, nothing else, with fixed timestamps and permissions, so the same bundle gives the same
archive bytes (:func:`write_archive`; :func:`owntrain.bundle.export_archive` verifies the folder
first).

An archive is unpacked (:func:`unpack_archive`) only after every entry has been checked (plain
files and folders, relative paths without ``..``, no links, devices or duplicates, bounded
count and size), and every file is created fresh, so nothing is written outside its target
folder. Checking the unpacked files against the manifest is :mod:`owntrain.bundle`'s part.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import stat
import tarfile
import time
import uuid
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from owntrain.errors import BundleError
from owntrain.fileio import _CHUNK, remove_stale_temporaries

MANIFEST = "manifest.json"
"""The file that marks a bundle's folder (inside an archive too)."""

ARCHIVE_SUFFIXES: tuple[str, ...] = (".tar.gz", ".tgz", ".zip")
MAX_ARCHIVE_ENTRIES = 256
MAX_UNPACKED_BYTES = 8 * 1024**3
"""An archive that would unpack to more than this is refused (a bundle is megabytes, not gigabytes)."""


def archive_kind(path: Path) -> str | None:
    """``'tar.gz'`` or ``'zip'`` from an archive's name, None for anything else."""
    name = path.name.lower()
    if name.endswith((".tar.gz", ".tgz")):
        return "tar.gz"
    if name.endswith(".zip"):
        return "zip"
    return None


def _archive_stem(path: Path) -> str:
    name = path.name
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).strip("._") or "bundle"


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n}"  # pragma: no cover


# --------------------------------------------------------------------------- writing


def write_archive(bundle_dir: str | os.PathLike, out_file: str | os.PathLike,
                  verify: Callable[[Path], Mapping[str, Any]]) -> Path:
    """Write a bundle folder as one archive file (``.tar.gz``/``.tgz`` or ``.zip``).

    ``verify(folder)`` returns the folder's manifest once the folder is verified, or raises; it
    runs after the archive's name is checked and before anything is written
    (:func:`owntrain.bundle.export_archive` passes the bundle's full verification).
    The archive holds one folder (named after the archive) with the manifest and the files it
    lists, nothing else, with fixed timestamps and permissions: the same bundle gives the same
    archive bytes. Written under a temporary name and renamed.
    """
    src = Path(bundle_dir)
    out = Path(out_file)
    kind = archive_kind(out)
    if kind is None:
        raise BundleError(f"Cannot tell the archive format from {out.name!r}: name it *.tar.gz, *.tgz or *.zip.")
    manifest = verify(src)
    names = [MANIFEST, *sorted(manifest["files"])]
    top = _archive_stem(out)
    mtime = _manifest_time(manifest)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        if kind == "zip":
            _write_zip(tmp, src, top, names, mtime)
        else:
            _write_tar_gz(tmp, src, top, names, mtime)
        os.replace(tmp, out)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise BundleError(f"Could not write {out} ({exc.strerror or exc}). Free disk space and try again.") from None
        raise
    return out


def _manifest_time(manifest: Mapping[str, Any]) -> int:
    try:
        import calendar

        return int(calendar.timegm(time.strptime(str(manifest.get("created")), "%Y-%m-%dT%H:%M:%SZ")))
    except (ValueError, OverflowError):
        return 0


def _write_tar_gz(tmp: Path, src: Path, top: str, names: Sequence[str], mtime: int) -> None:
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=mtime, filename="") as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        folder = tarfile.TarInfo(top)
        folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, 0o755, mtime
        tar.addfile(folder)
        for name in names:
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mode, info.mtime = (src / name).stat().st_size, 0o644, mtime
            with open(src / name, "rb") as fh:
                tar.addfile(info, fh)
        tar.close()
        gz.close()
        raw.flush()
        os.fsync(raw.fileno())


def _write_zip(tmp: Path, src: Path, top: str, names: Sequence[str], mtime: int) -> None:
    stamp = time.gmtime(max(mtime, 315532800))[:6]  # zip cannot store dates before 1980
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in names:
            info = zipfile.ZipInfo(f"{top}/{name}", date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            with open(src / name, "rb") as fh, zf.open(info, "w") as dest:
                shutil.copyfileobj(fh, dest, _CHUNK)
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())


# --------------------------------------------------------------------------- unpacking


def _entry_path(name: str) -> str:
    """The safe relative path of an archive entry, or a reason (prefixed ``!``) to refuse it."""
    if "\x00" in name:
        return "!has a NUL character in its name"
    if "\\" in name:
        return "!has a backslash in its name (Windows path separators are not accepted)"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "!is an absolute path"
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        return "!points outside the archive's folder ('..')"
    if not parts:
        return "!has an empty name"
    return "/".join(parts)


@dataclass(frozen=True)
class _Entry:
    path: str
    is_dir: bool
    size: int
    source: Any


def _tar_entries(tar: tarfile.TarFile) -> Iterator[tuple[str, Any, str | None]]:
    """(name, member, reason or None) for every tar member."""
    for member in tar.getmembers():
        if member.isdir() or member.isfile():
            reason = None
        elif member.issym() or member.islnk():
            reason = f"is a link (to {member.linkname!r})"
        elif member.ischr() or member.isblk() or member.isfifo():
            reason = "is a device or a pipe"
        else:
            reason = "is not a plain file or folder"
        yield member.name, member, reason


def _zip_entries(zf: zipfile.ZipFile) -> Iterator[tuple[str, Any, str | None]]:
    """(name, info, reason or None) for every zip entry."""
    for info in zf.infolist():
        kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip tool stored no Unix file type
        reason = None
        if info.flag_bits & 0x1:
            reason = "is encrypted"
        elif kind == stat.S_IFLNK:
            reason = "is a symbolic link"
        elif kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
            reason = "is a device, a pipe or another special file"
        yield info.filename, info, reason


def _checked_entries(archive: Path, raw: Iterable[tuple[str, Any, str | None]], is_zip: bool) -> list[_Entry]:
    """Every entry after the safety checks; BundleError naming the first one refused."""
    entries: list[_Entry] = []
    seen: set[str] = set()
    total = 0
    for name, src, reason in raw:
        path = _entry_path(name)
        if reason is None and path.startswith("!"):
            reason = path[1:]
        if reason is None and path.lower() in seen:
            reason = "appears twice"
        if reason is not None:
            raise BundleError(
                f"Refused to unpack {archive}: entry {name!r} {reason}. A bundle archive holds only plain files "
                "in one folder; this one was not made by `owntrain export` or was altered. Nothing was unpacked."
            )
        seen.add(path.lower())
        is_dir = src.is_dir() if is_zip else src.isdir()
        size = 0 if is_dir else int(src.file_size if is_zip else src.size)
        total += size
        entries.append(_Entry(path, is_dir, size, src))
        if len(entries) > MAX_ARCHIVE_ENTRIES or total > MAX_UNPACKED_BYTES:
            raise BundleError(
                f"Refused to unpack {archive}: more than {MAX_ARCHIVE_ENTRIES} entries or "
                f"{_size(MAX_UNPACKED_BYTES)} of content; a bundle is far smaller. Nothing was unpacked."
            )
    return entries


def _copy_limited(src: io.BufferedIOBase, dest_path: Path, limit: int, archive: Path, name: str) -> None:
    """Copy at most ``limit`` bytes into a new file that must not exist yet (never through a link)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(dest_path, flags, 0o644)
    written = 0
    with os.fdopen(fd, "wb") as out:
        while chunk := src.read(_CHUNK):
            written += len(chunk)
            if written > limit:
                raise BundleError(f"Refused to unpack {archive}: entry {name!r} holds more bytes than its header "
                                  "says. The archive is damaged or crafted.")
            out.write(chunk)


def unpack_archive(archive: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Unpack a bundle archive into the folder ``target`` and return the folder holding manifest.json.

    Every entry is checked before anything is written: only plain files and folders, relative
    paths with no ``..``, no links, devices or pipes, no duplicates, bounded size. Files are
    created fresh (never through an existing link), so nothing lands outside ``target``.
    """
    path = Path(archive)
    dest = Path(target)
    kind = archive_kind(path)
    if kind is None:
        raise BundleError(f"{path} is not a bundle archive: expected a folder, or a file ending .tar.gz, .tgz or .zip.")
    dest.mkdir(parents=True, exist_ok=True)
    base = os.path.realpath(dest)
    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as zf:
                entries = _checked_entries(path, _zip_entries(zf), True)
                _extract(entries, base, path, lambda e: zf.open(e.source))
        else:
            with tarfile.open(path, "r:gz") as tar:
                entries = _checked_entries(path, _tar_entries(tar), False)
                _extract(entries, base, path, lambda e: tar.extractfile(e.source))
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise BundleError(f"{path} is not a readable {kind} archive ({exc}). Copy the bundle again.") from None
    except OSError as exc:
        raise BundleError(f"Could not unpack {path} into {dest} ({exc.strerror or exc}). Check free space, "
                          "or the archive's entries clash (a file and a folder of the same name).") from None
    return _bundle_root(dest, path)


def _extract(entries: Sequence[_Entry], base: str, archive: Path, opener: Any) -> None:
    for entry in sorted(entries, key=lambda e: (not e.is_dir, e.path)):
        dest = os.path.realpath(os.path.join(base, entry.path))
        if os.path.commonpath([base, dest]) != base:  # pragma: no cover - excluded by _entry_path
            raise BundleError(f"Refused to unpack {archive}: entry {entry.path!r} points outside its folder.")
        if entry.is_dir:
            os.makedirs(dest, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        src = opener(entry)
        if src is None:  # pragma: no cover - tar returns None only for non-files
            continue
        with src:
            _copy_limited(src, Path(dest), entry.size, archive, entry.path)


def _bundle_root(folder: Path, archive: Path) -> Path:
    """The folder of an unpacked archive that holds manifest.json: the top level or its one subfolder."""
    if (folder / MANIFEST).is_file():
        return folder
    subdirs = [p for p in folder.iterdir() if p.is_dir()]
    if len(subdirs) == 1 and (subdirs[0] / MANIFEST).is_file():
        return subdirs[0]
    raise BundleError(f"{archive} holds no {MANIFEST} (at its top or in its one folder): it is not an owntrain bundle. "
                      "Make one with `owntrain export`.")
