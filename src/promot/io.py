"""Atomic file and directory writes: a crash never leaves a half-written artifact that looks complete."""
from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from promot.errors import ConfigError, DiskFullError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def settle_modes(root: str | Path) -> None:
    """Give `root` (a file or a tree) the modes a plain write under the current umask gives: mkstemp/mkdtemp make
    0600/0700, and safetensors' writer makes its files 0600 whatever the umask, so weights were unreadable by the
    group/others that can read every other artifact (as `save_pretrained`'s config.json)."""
    mask = _umask()
    root = Path(root)
    paths = [root, *root.rglob("*")] if root.is_dir() else [root]
    for path in paths:
        if path.is_symlink():
            continue
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


def occupied(path: str | Path) -> bool:
    """A file, or a folder with anything in it: what writing there would have to replace."""
    path = Path(path)
    return path.is_file() or (path.is_dir() and any(path.iterdir()))


def check_replaceable(target: str | Path, marker: str, what: str, inputs: Iterable[str | Path] = ()) -> None:
    """Replacing a directory (`overwrite`) deletes it, so it may only replace what promot wrote there: `target`
    absent or empty, or holding `marker` (a run's, an export's, a world model's own file), and holding none of the
    job's `inputs`. Anything else (the working directory, a folder of runs, a model the job reads) is refused in one
    line, before any work."""
    where = Path(os.path.realpath(target))
    for path in inputs:
        source = Path(os.path.realpath(path))
        if source == where or where in source.parents:
            raise ConfigError(f"{target}: holds {path}, which this job reads; replacing {target} would delete it "
                              f"(choose another output directory)")
    if where.is_file():
        raise ConfigError(f"{target}: is a file, not {what}; choose a directory")
    if occupied(where) and not (where / marker).is_file():
        raise ConfigError(f"{target}: not empty and not {what} ({marker} missing), so it is not replaced (choose a "
                          f"new or empty directory)")


def is_disk_full(error: BaseException | None) -> bool:
    """ENOSPC / EDQUOT, raised as OSError or wrapped by another library (safetensors' writer raises
    `SafetensorError: … No space left on device`), anywhere in the exception's chain."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, DiskFullError) or isinstance(error, OSError) and error.errno in (errno.ENOSPC,
                                                                                              errno.EDQUOT):
            return True
        if "No space left on device" in str(error) or "StorageFull" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def size_text(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def tree_size(path: str | Path) -> int:
    """Bytes in a file or a folder (what a write there got to, or what a like checkpoint takes)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0


def disk_full(target: str | Path, needs: int, then: str = "run it again") -> DiskFullError:
    """The one line for a write the disk could not hold: the file, the space free there and what it needs."""
    where = Path(target).absolute()
    while not where.exists() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where).free
    need = f", it needs more than {size_text(needs)}" if needs else ""
    return DiskFullError(f"{target}: no space left on the device ({size_text(free)} free there{need}); nothing "
                         f"half-written was kept. Free space, then {then}", str(target), needs)


@contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces `target` in one rename."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        settle_modes(tmp)
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException as e:
        written = tree_size(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(e) and not isinstance(e, DiskFullError):
            raise disk_full(target, written) from None
        raise


@contextmanager
def atomic_file(target: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling path to write; on success it replaces `target` in one rename."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        settle_modes(tmp)
        os.replace(tmp, target)
    except BaseException as e:
        written = tree_size(tmp)
        Path(tmp).unlink(missing_ok=True)
        if is_disk_full(e) and not isinstance(e, DiskFullError):
            raise disk_full(target, written) from None
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_file(path) as tmp, tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_json(path: str | Path, obj: object) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
