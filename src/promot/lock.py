"""One writer per run directory: an exclusive lock held by train, resume, eval, compare (and export) while they write.

The lock is a `filelock` (flock) lock on `rundir.lock_path(RUN)`, a hidden file *beside* the run directory
(`.RUN.lock`), so `overwrite: true` can delete and re-create RUN while the lock is held. The OS drops a flock when
its process dies, so a lock left by a killed holder (kill -9, OOM) is simply taken over; the file itself stays
(waiters must share one inode) and says who holds it: `pid PID on HOST since TIME (COMMAND)`, emptied on release.
A second writer is refused at once (no waiting): one line naming the holder, exit 2. Under `accelerate launch` only
the main process takes it. Re-entrant within a process (compare → train → eval on the same directories).
"""
from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from promot import rundir
from promot.errors import RunLockedError


def _holder(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    return text or "another process"


@contextmanager
def run_lock(run_dir: str | Path) -> Iterator[Path | None]:
    """Hold RUN's writer lock for the block; raise RunLockedError (one line: who holds it) if another process does.
    Yields the lock file's path (None on a non-main process, which never takes it)."""
    from filelock import FileLock, Timeout

    from promot.distributed import is_main_process

    if not is_main_process():
        yield None
        return
    path = rundir.lock_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path, is_singleton=True)  # the same instance for the same path: re-entrant in this process
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RunLockedError(f"{run_dir}: another promot run is writing it ({_holder(path)}); wait for it to end, "
                             "or stop it (a killed run's lock is taken over)") from None
    try:
        if lock.lock_counter == 1:
            command = " ".join(["promot", *sys.argv[1:3]]) if sys.argv else "promot"
            path.write_text(f"pid {os.getpid()} on {socket.gethostname()} since "
                            f"{time.strftime('%Y-%m-%d %H:%M:%S')} ({command})\n")
        yield path
    finally:
        if lock.lock_counter == 1:
            try:
                path.write_text("")
            except OSError:
                pass
        lock.release()
