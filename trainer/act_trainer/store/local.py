"""The ``file://`` backend (and plain local paths): atomic writes (temp file + rename)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from act_trainer.store.uris import MiB, StoreError, join, local_path


@contextlib.contextmanager
def file_errors(uri: str, action: str) -> Iterator[None]:
    try:
        yield
    except StoreError:
        raise
    except FileNotFoundError as exc:
        raise StoreError(f"cannot {action} {uri}: no such file or directory ({exc.filename})") from None
    except PermissionError as exc:
        raise StoreError(
            f"cannot {action} {uri}: permission denied on {exc.filename}; "
            "make the directory writable by this user, or choose another storage root"
        ) from None
    except OSError as exc:
        raise StoreError(f"cannot {action} {uri}: {exc}") from None


def atomic_write(path: Path, data: bytes | None = None, source: Path | None = None) -> None:
    """Write ``data`` (or copy ``source``) to ``path`` via a temp file and os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            if source is None:
                out.write(data or b"")
            else:
                with open(source, "rb") as src:
                    shutil.copyfileobj(src, out, 4 * MiB)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def local_files(root: Path) -> list[Path]:
    """Regular files under ``root``, recursively, sorted; skips our own temp files."""
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name.startswith(".") and name.endswith(".tmp"):
                continue
            found.append(Path(dirpath, name))
    return sorted(found)


def read_bytes(uri: str) -> bytes:
    with file_errors(uri, "read"):
        return local_path(uri).read_bytes()


def write_bytes(uri: str, data: bytes) -> None:
    with file_errors(uri, "write"):
        atomic_write(local_path(uri), data=bytes(data))


def exists(uri: str) -> bool:
    return local_path(uri).exists()


def list_uris(uri: str) -> list[str]:
    path = local_path(uri)
    if path.is_file():
        return [uri]
    with file_errors(uri, "list"):
        return [join(uri, p.relative_to(path).as_posix()) for p in local_files(path)]


def delete_prefix(uri: str) -> int:
    path = local_path(uri)
    with file_errors(uri, "delete"):
        if path.is_file():
            path.unlink()
            return 1
        if not path.is_dir():
            return 0
        files = local_files(path)
        shutil.rmtree(path)
    return len(files)


def upload_files(pairs: list[tuple[Path, str]]) -> None:
    for f, dest in pairs:
        with file_errors(dest, "upload to"):
            atomic_write(local_path(dest), source=f)


def download(uri: str, dest: Path) -> list[Path]:
    src = local_path(uri)
    with file_errors(uri, "download"):
        if src.is_file():
            atomic_write(dest, source=src)
            return [dest]
        if not src.is_dir():
            raise FileNotFoundError(2, "No such file or directory", str(src))
        written = []
        for f in local_files(src):
            target = dest / f.relative_to(src)
            atomic_write(target, source=f)
            written.append(target)
        return written


def check_writable(uri: str, probe: str) -> None:
    root = local_path(uri)
    with file_errors(uri, "check write access to"):
        if root.exists() and not root.is_dir():
            raise StoreError(f"cannot write under {uri}: {root} is a file, not a directory")
        root.mkdir(parents=True, exist_ok=True)
        atomic_write(local_path(probe), data=b"")
        os.unlink(local_path(probe))
