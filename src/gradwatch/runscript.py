"""Run an unmodified training script in this process, watched, keeping its exit status.

The script runs as ``__main__`` (``runpy``) with its own ``sys.argv`` and its directory first on
``sys.path``, exactly as ``python script.py args`` would. Exceptions, ``sys.exit``, SIGINT and
SIGTERM all end in the same place: the watcher is detached and its record committed, so a crashed
run is diagnosed up to its last step.

Example:
    >>> # status, watcher = run_script("train.py", ["--lr", "0.1"], out="runs/t")
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import traceback
from pathlib import Path

from .autowatch import AutoWatch
from .inject import StopAfter
from .watcher import Watcher


class ScriptNotFound(FileNotFoundError):
    """The script to run does not exist.

    Example:
        >>> try:
        ...     run_script("no_such_train.py", [], out="runs/x")
        ... except ScriptNotFound as e:
        ...     print(e)
        no such script: 'no_such_train.py'; give the path of a Python training script
    """


def run_script(script: str | os.PathLike, args: list[str], out: str | os.PathLike,
               **watch_kwargs) -> tuple[int, Watcher | None]:
    """Run ``script`` with ``args`` under an :class:`AutoWatch`; return (exit status, watcher).

    Raises:
        ScriptNotFound: ``script`` is not a file.

    Example:
        >>> # status, watcher = run_script("train.py", ["--epochs", "1"], out="runs/x")
        >>> # this is what ``gradwatch run --out runs/x train.py --epochs 1`` does
    """
    path = Path(script)
    if not path.is_file():
        raise ScriptNotFound(f"no such script: {str(path)!r}; give the path of a Python training script")
    old_argv, old_path = sys.argv[:], sys.path[:]
    sys.argv = [str(path)] + list(args)
    sys.path.insert(0, str(path.resolve().parent))

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    old_term = signal.signal(signal.SIGTERM, on_term)
    status = 0
    aw = AutoWatch(str(out), **watch_kwargs)
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as e:
        status = _exit_code(e.code)
    except StopAfter:
        status = 0  # a trial's step budget, not a crash
    except KeyboardInterrupt as e:
        traceback.print_exc()
        aw.note_crash(e)
        status = 130
    except BaseException as e:  # noqa: BLE001 - the script's own crash: show it as Python would
        traceback.print_exc()
        aw.note_crash(e)
        status = 1
    finally:
        sys.argv, sys.path[:] = old_argv, old_path
        signal.signal(signal.SIGTERM, old_term)
        sys.stdout.flush()
        watcher = aw.close()
    return status, watcher


def _exit_code(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
