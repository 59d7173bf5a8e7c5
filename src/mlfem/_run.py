"""What every resumable run shares: an output folder that holds one run, the settings that
must not change when it is resumed, clean Ctrl-C handling, and one-line progress messages.

Used by both trainers (through :class:`mlfem.training._run.TrainingRun`, which adds the
model/optimizer/RNG state); it imports nothing above :mod:`mlfem.models`, so the evaluation
runner can use it too::

    run = RunFolder(out, "train-fusion", "training_state.safetensors", resume=True)
    if run.claim():                       # True: a run is there to resume
        run.check_settings(saved, current, keys=("lr", "seed"))
    with run.stopping():                  # first Ctrl-C sets run.stop; a second interrupts
        ...

:class:`FolderLock` makes a run the only one writing into its folder (the evaluation holds it
for the whole run; a second run on the same folder is refused with :class:`FolderBusyError`).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlfem.models.checkpoint import sidecar_path, write_json_atomic

__all__ = [
    "FolderBusyError",
    "FolderLock",
    "RunFolder",
    "changed_settings",
    "ignore_sigint",
    "stop_on_sigint",
]


def changed_settings(
    saved: Mapping[str, Any],
    current: Mapping[str, Any],
    keys: Iterable[str] | None = None,
    ignore: Iterable[str] = (),
) -> list[str]:
    """The settings that differ between a saved run and this one: among ``keys`` (all keys
    of either side when None), less ``ignore``; in the order of ``keys``, else sorted."""
    skipped = set(ignore)
    names = list(keys) if keys is not None else sorted(set(saved) | set(current))
    return [k for k in names if k not in skipped and saved.get(k) != current.get(k)]


class RunFolder:
    """An output folder holding one resumable run.

    Args:
        out: the folder (created by :meth:`claim`).
        command: the command's name, prefixed to :meth:`log` lines (``"train-fusion"``).
        state_file: the file whose presence (its JSON sidecar's: it is written last) says
            that the folder holds a run.
        resume: continue a run found there; without it, such a folder is refused.
        verbose: print :meth:`log` lines on stderr.
        stop: the event that asks the run to stop at its next safe point (Ctrl-C sets it
            within :meth:`stopping`); a new one when None.
    """

    def __init__(
        self,
        out: str | Path,
        command: str,
        state_file: str,
        *,
        resume: bool = False,
        verbose: bool = True,
        stop: threading.Event | None = None,
    ) -> None:
        self.out = Path(out)
        self.command = command
        self.state_path = self.out / state_file
        self.resume = resume
        self.verbose = verbose
        self.stop = stop if stop is not None else threading.Event()

    @property
    def holds_run(self) -> bool:
        """Whether the folder holds a (finished or interrupted) run's state."""
        return sidecar_path(self.state_path).exists()

    def claim(self) -> bool:
        """Create the folder; return whether it holds a run to resume.

        Raises:
            FileExistsError: it holds a run and ``resume`` is False.
        """
        self.out.mkdir(parents=True, exist_ok=True)
        if self.holds_run and not self.resume:
            raise FileExistsError(
                f"{self.out} already holds a training run ({self.state_path.name}); "
                "pass --resume to continue it or choose another --out"
            )
        return self.holds_run

    def check_settings(
        self,
        saved: Mapping[str, Any],
        current: Mapping[str, Any],
        keys: Iterable[str] | None = None,
        ignore: Iterable[str] = (),
    ) -> None:
        """Refuse to resume a run started with other settings (see :func:`changed_settings`).

        Raises:
            ValueError: naming each changed setting with its saved and current value.
        """
        changed = changed_settings(saved, current, keys, ignore)
        if changed:
            details = ", ".join(
                f"{k}: {_short(saved.get(k))} -> {_short(current.get(k))}" for k in changed
            )
            raise ValueError(
                f"cannot resume {self.out}: settings differ from the saved run ({details})"
            )

    def write_json(self, name: str, payload: Any) -> Path:
        """Write ``payload`` to ``out/name`` atomically (readers never see half a file)."""
        path = self.out / name
        write_json_atomic(path, payload)
        return path

    def log(self, message: str) -> None:
        """One progress line on stderr (when ``verbose``)."""
        if self.verbose:
            print(f"{self.command}: {message}", file=sys.stderr)

    def stopping(self) -> Any:
        """Context in which Ctrl-C sets :attr:`stop` (see :func:`stop_on_sigint`)."""
        return stop_on_sigint(self.stop)


def _short(value: Any, limit: int = 80) -> str:
    # Settings hold whole dataset records and layer lists: name the change, not all of it.
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextmanager
def stop_on_sigint(event: threading.Event) -> Iterator[threading.Event]:
    """While active, the first Ctrl-C sets ``event`` (the loop then saves and stops at the
    next step boundary); a second Ctrl-C interrupts at once. Outside the main thread, where
    signal handlers cannot be installed, only ``event`` itself stops the loop."""
    if threading.current_thread() is not threading.main_thread():
        yield event
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if event.is_set():
            raise KeyboardInterrupt
        event.set()

    signal.signal(signal.SIGINT, handler)
    try:
        yield event
    finally:
        signal.signal(signal.SIGINT, previous)


def ignore_sigint(worker_id: int) -> None:
    """``worker_init_fn`` of data-loader workers: Ctrl-C reaches the whole process group, and
    workers must survive it so that the main process can finish its step and save."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class FolderBusyError(RuntimeError):
    """Another live process (or another run of this one) holds the folder's lock."""


class FolderLock:
    """An exclusive claim on an output folder, for as long as a run writes into it.

    The claim is an OS lock (``flock``; ``msvcrt.locking`` on Windows) on
    ``out/.mlfem-<command>.lock``, a file holding the owner's process id. The OS drops the lock
    when its process dies, however it dies, so a lock file left by a killed run is taken over
    (with a message naming the dead process) rather than blocking the folder for ever. The
    file is removed when the lock is released. Use as a context manager::

        with FolderLock(out, "evaluate"):
            ...  # the only run writing into out

    Raises:
        FolderBusyError: on entry, when another run holds the folder.
    """

    def __init__(self, out: str | Path, command: str) -> None:
        self.out = Path(out)
        self.command = command
        self.path = self.out / f".mlfem-{command}.lock"
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        """Claim the folder (created if needed); see the class docstring."""
        self.out.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if not _try_lock(fd):
                holder = _read_pid(fd)
                os.close(fd)
                who = f"process {holder}" if holder is not None else "another process"
                raise FolderBusyError(
                    f"{self.out} is in use by {who} (another mlfem {self.command} run; lock file "
                    f"{self.path.name}): wait for it to finish, or choose another --out"
                )
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if not same:  # its previous holder removed the file meanwhile: claim the new one
                os.close(fd)
                continue
            break
        previous = _read_pid(fd)
        if previous is not None:
            print(
                f"mlfem {self.command}: taking over the stale lock {self.path} of process "
                f"{previous}, which is no longer running (it was killed or crashed)",
                file=sys.stderr,
            )
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file and drop the claim (nothing when not held)."""
        if self._fd is None:
            return
        # Removed before it is unlocked: whoever opened the old file sees it replaced.
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _try_lock(fd: int) -> bool:
    """Lock the open file ``fd`` without waiting; False when someone else holds it."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read_pid(fd: int) -> int | None:
    """The process id a lock file holds (None when empty or unreadable)."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 64).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
