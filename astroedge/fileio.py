"""Atomic writes: a reader never sees a half-written file or package directory.

Temp paths are `.NAME.PID-RANDOM.tmp` beside the output. A writer killed by SIGKILL cannot clean up,
so the next writer into that folder removes the temps of NAME whose writer process is gone (and
untagged ones from older versions once they are an hour old); a live writer's temp is never touched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from astroedge.errors import UserError


def check_parent(path: Path) -> None:
    """Refuse early (before hours of work) an output whose folder is missing or read-only."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"{path}: folder {parent} does not exist; create it or choose another output path")
    if not os.access(parent, os.W_OK):
        raise UserError(f"{path}: folder {parent} is not writable; choose another output path")


STALE_UNTAGGED_S = 3600.0  # temps without a writer pid (written before pids were recorded)


def _writer_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, owned by someone else
        return True
    return True


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove `.NAME.*.tmp` leftovers of killed writers of `path`; returns what was removed."""
    prefix = f".{path.name}."
    removed: list[Path] = []
    parent = path.parent if str(path.parent) else Path(".")
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        tag = name[len(prefix) : -len(".tmp")].split("-", 1)[0]
        try:
            if tag.isdigit() and len(tag) < 10:
                stale = not _writer_alive(int(tag))
            else:
                stale = time.time() - entry.lstat().st_mtime > STALE_UNTAGGED_S
            if not stale:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        except OSError:  # gone already, or not ours to remove: leave it
            continue
    return removed


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success rename it over `path`, on error remove it."""
    path = Path(path)
    check_parent(path)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the user's usual mode
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(path: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a temp directory beside `path`; on success move it to `path` (replacing it only with force).

    force replaces a package (a folder holding manifest.json or named *.aepkg) or an empty folder, never
    anything else: a mistyped `-o ~ --force` or `-o model.pt --force` must not delete the user's files.
    """
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not force:
            raise UserError(f"{path}: already exists; pass --force to overwrite it")
        folder = path.is_dir() and not path.is_symlink()
        if not (folder and ((path / "manifest.json").is_file() or path.suffix == ".aepkg" or not any(path.iterdir()))):
            raise UserError(f"{path}: exists and is not a package (no manifest.json); not replaced even with --force; choose another path")
    check_parent(path)
    remove_stale_temps(path)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
