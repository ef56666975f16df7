"""Files for every stage: atomic writes and (de)compressing streams.

- `atomic_path` / `write_atomic`: a file appears under its final name complete or not at all. The
  data goes to a temporary sibling (`temp_path`: `.tmp-PID-NAME`, hidden, unique per process, with
  the final name's suffix, which picks the compression), is fsync'ed, and is renamed onto the final
  name with os.replace; a failed write leaves no temporary file behind. Resumable stages rely on it:
  a completion marker written last, atomically, means that every file written before it is whole.
- `staged_directory`: the same for a directory (a model export): written in a hidden sibling and renamed
  onto its final name only when the block succeeds, so a refused export leaves nothing that looks usable.
- `open_compressed`: a .gz, .zst or plain file by its suffix, as text or bytes.
- Inputs on object storage (`s3://`, `gs://`, any fsspec URL): `is_url`, `list_url` (an object, a
  prefix or a glob), `open_binary`, `file_size`. They are read through fsspec, imported only when a
  URL is given, with the store's usual credentials plus `storage_options()` (`--storage-option`,
  passed to worker processes in JALM_STORAGE_OPTIONS). Outputs are never written there (`refuse_url`).
  A URL is kept as a str: Path("s3://b/k") would become "s3:/b/k".
"""

from __future__ import annotations

import gzip
import io
import json
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from jalm.errors import JalmError

TMP_PREFIX = ".tmp-"
# Written (atomically) into a stage's output directory before its first output and deleted as the run's
# very last step: while it is there, the directory is a run in progress or one that was killed.
INCOMPLETE_MARKER = ".jalm-incomplete"


def temp_path(path: str | Path) -> Path:
    """The temporary sibling that a write of `path` goes to before it is renamed: `.tmp-PID-NAME`."""
    path = Path(path)
    return path.with_name(f"{TMP_PREFIX}{os.getpid()}-{path.name}")


def is_temporary(path: str | Path) -> bool:
    """Whether `path` is a write in progress (or one a killed process left): never an input."""
    return Path(path).name.startswith(TMP_PREFIX)


def remove_temp_files(folder: str | Path) -> int:
    """Delete the temporary files under `folder` (a killed worker's or run's leftovers); how many.

    Only while no process writes there: a run calls it before its jobs start and after they end."""
    folder, removed = Path(folder), 0
    if not folder.is_dir():
        return 0
    for path in folder.rglob(f"{TMP_PREFIX}*"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def is_hidden(path: Path, root: Path) -> bool:
    """Whether a file found under `root` is hidden (a `.tmp-` write, a run's `.work/` folder): no input."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def begin_run(out: str | Path, command: str) -> None:
    """Mark `out` as the output of a `command` run in progress (see INCOMPLETE_MARKER)."""
    write_atomic(Path(out) / INCOMPLETE_MARKER, f"{command}\n")


def end_run(out: str | Path) -> None:
    """The run that writes `out` has completed: the last thing it does."""
    marker = Path(out) / INCOMPLETE_MARKER
    marker.unlink(missing_ok=True)
    _fsync(marker.parent, getattr(os, "O_DIRECTORY", None))


def refuse_incomplete(inputs: list[str | Path], allow: bool = False) -> None:
    """A JalmError if an input (a file, its folder, or the folder above, as for `clean/kept/`) belongs
    to a run that did not complete; `allow`: read it anyway."""
    if allow:
        return
    for item in inputs:
        if is_url(item):
            _refuse_incomplete_url(str(item))
            continue
        item = Path(item)
        folder = item if item.is_dir() else item.parent
        for candidate in (folder, folder.parent):
            marker = candidate / INCOMPLETE_MARKER
            if marker.exists():
                command = marker.read_text(encoding="utf-8").strip() or "jalm"
                raise JalmError(
                    f"{item}: written by a `{command}` run that did not complete ({marker} is there); "
                    "rerun it to finish, or pass --allow-incomplete to read it as it is"
                )


def _refuse_incomplete_url(url: str) -> None:
    """refuse_incomplete for a URL: the marker in its prefix (or the one above), as uploaded with it."""
    fs, path = url_filesystem(url)
    try:
        marker = _incomplete_marker_of(fs, path)
    except Exception as error:  # no credentials, no endpoint: each store's own exceptions
        raise JalmError(f"{url}: cannot be read ({type(error).__name__}: {error})") from None
    if marker:
        raise JalmError(
            f"{url}: written by a run that did not complete ({fs.unstrip_protocol(marker)} is there); "
            "rerun it to finish, or pass --allow-incomplete to read it as it is"
        )


def _incomplete_marker_of(fs: Any, path: str) -> str | None:
    cut = min([path.find(c) for c in _GLOB_CHARS if c in path] or [len(path)])
    if cut < len(path):  # a glob: the folder its fixed part ends in
        folder = path[:cut].rsplit("/", 1)[0]
    else:
        folder = path.rstrip("/") if fs.isdir(path) else posixpath.dirname(path)
    for candidate in (folder, posixpath.dirname(folder)):
        marker = f"{candidate}/{INCOMPLETE_MARKER}"
        if candidate and fs.exists(marker):
            return marker
    return None


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write `path`'s content to; when the block succeeds, fsync it and rename
    it onto `path` (creating the parent directory first); when it fails, delete it.

        with atomic_path(out / "kept.jsonl.zst") as tmp, open_compressed(tmp, "wb") as handle:
            handle.write(data)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        _fsync(tmp, os.O_RDONLY)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync(path.parent, getattr(os, "O_DIRECTORY", None))  # the rename itself


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Write bytes, or str as UTF-8, to `path` atomically (see atomic_path)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


STAGED_MARKERS = ("jalm.json", "config.json")  # an earlier export, which a new one may replace


@contextmanager
def staged_directory(path: str | Path) -> Iterator[Path]:
    """Yield an empty hidden directory beside `path` (`.tmp-PID-NAME-XXXX`); when the block succeeds, it
    replaces `path`; when it fails, it is deleted and `path` is left as it was.

    `path` may be missing, an empty directory or an earlier export (it holds jalm.json or config.json);
    anything else is refused before any work, so a user's directory is never deleted by mistake.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise JalmError(f"{path}: exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not any((path / n).exists() for n in STAGED_MARKERS):
        raise JalmError(f"{path}: not empty and not a model directory; choose another --out")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f"{TMP_PREFIX}{os.getpid()}-{path.name}-"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():  # moved aside first so that `path` is never half old, half new
        old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f"{TMP_PREFIX}old-{path.name}-"))
        os.replace(path, old / path.name)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    _fsync(path.parent, getattr(os, "O_DIRECTORY", None))


def _fsync(path: Path, flags: int | None) -> None:
    if flags is None:  # no O_DIRECTORY (Windows): a directory cannot be opened to sync it
        return
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_compressed(
    path: str | Path,
    mode: str = "rt",
    *,
    level: int = 10,
    window_log: int | None = None,
    buffering: int = -1,
) -> IO[Any]:
    """Open `path` for reading or writing ("rt", "rb", "wt", "wb"), compressed by its suffix: .gz, .zst
    or none. Text is UTF-8. A file to read that does not exist is a JalmError naming it.

    Writing: `level` is the zstd level (gzip's is `level` clamped to 1..9); `window_log` sets zstd's
    window (2**window_log bytes) instead of the level's. Reading: `buffering` is a plain file's read
    buffer (compressed streams keep their own, so a truncated one loses no more lines).
    """
    if is_url(path):
        return _open_url(str(path), mode)
    path = Path(path)
    binary, reading = "b" in mode, "r" in mode
    if reading and not path.exists():
        raise JalmError(f"{path}: no such file")
    suffix = path.suffix
    if suffix == ".gz":
        compresslevel = min(max(level, 1), 9)
        stream: IO[bytes] = gzip.open(path, "rb") if reading else gzip.open(path, "wb", compresslevel)
    elif suffix == ".zst":
        stream = _zstd_reader(path) if reading else _zstd_writer(path, level, window_log)
    else:
        if binary:
            return open(path, "rb" if reading else "wb", buffering=buffering if reading else -1)
        return open(path, "r" if reading else "w", encoding="utf-8")
    return stream if binary else io.TextIOWrapper(stream, encoding="utf-8")


def _zstd_reader(path: Path) -> IO[bytes]:
    import zstandard

    return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, "rb")))


def _zstd_writer(path: Path, level: int, window_log: int | None) -> IO[bytes]:
    import zstandard

    if window_log is None:
        compressor = zstandard.ZstdCompressor(level=level)
    else:
        params = zstandard.ZstdCompressionParameters.from_level(level, window_log=window_log)
        compressor = zstandard.ZstdCompressor(compression_params=params)
    return compressor.stream_writer(open(path, "wb"))


# ---- inputs on object storage ------------------------------------------------------------------------

STORAGE_OPTIONS_ENV = "JALM_STORAGE_OPTIONS"  # JSON; inherited by worker processes
_GLOB_CHARS = "*?["


def is_url(path: str | Path) -> bool:
    """Whether `path` is an fsspec URL (`s3://bucket/key`, `gs://...`) rather than a local path."""
    return isinstance(path, str) and "://" in path and not path.startswith("file://")


def base_name(path: str | Path) -> str:
    """The last part of a local path or a URL."""
    return path.name if isinstance(path, Path) else posixpath.basename(str(path).rstrip("/"))


def refuse_url(out: str | Path, command: str) -> None:
    """Outputs go to a local or shared filesystem: an object storage --out is one line, not a crash."""
    if is_url(str(out)):
        raise JalmError(
            f"{out}: `{command}` writes its outputs to a local or shared filesystem, not to object storage "
            "(inputs may be URLs); give a local --out and copy the result up afterwards"
        )


def set_storage_options(pairs: list[str] | None) -> None:
    """KEY=VALUE options for the inputs' fsspec filesystem (e.g. endpoint_url=http://127.0.0.1:9000);
    a VALUE that is JSON (true, 3) is read as such. Kept in the environment so worker processes see them."""
    options = storage_options()
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise JalmError(f"--storage-option {pair!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    if options:
        os.environ[STORAGE_OPTIONS_ENV] = json.dumps(options)


def storage_options() -> dict[str, Any]:
    return json.loads(os.environ.get(STORAGE_OPTIONS_ENV) or "{}")


def url_filesystem(url: str) -> tuple[Any, str]:
    """(fsspec filesystem, path inside it) for `url`; a missing package is one line."""
    try:
        import fsspec

        return fsspec.core.url_to_fs(url, **storage_options())
    except ImportError as error:
        raise JalmError(
            f"{url}: reading object storage needs fsspec and the store's package "
            f"(pip install 'jalm[cloud]' for S3; gcsfs for gs://): {error}"
        ) from None


def list_url(url: str) -> list[tuple[str, int]]:
    """(URL, size) of the objects that `url` names: one object, every object under a prefix ("folder"),
    or those a glob matches (`s3://b/crawl/segments/*/wet/*.wet.gz`); sorted, hidden parts skipped (as
    for local folders: `.tmp-` writes, `.work/`). A URL that names nothing is a JalmError."""
    fs, path = url_filesystem(url)
    try:
        if any(char in path for char in _GLOB_CHARS):
            root = path[: min(path.find(c) for c in _GLOB_CHARS if c in path)].rsplit("/", 1)[0]
            found = fs.glob(path, detail=True)
        elif fs.isdir(path):
            root, found = path.rstrip("/"), fs.find(path, detail=True)
        elif fs.isfile(path):
            root, found = posixpath.dirname(path), {path: fs.info(path)}
        else:
            raise JalmError(f"{url}: no such object or prefix")
    except JalmError:
        raise
    except Exception as error:  # no credentials, no endpoint, no permission: each store's own exceptions
        raise JalmError(f"{url}: cannot be listed ({type(error).__name__}: {error})") from None
    out = []
    for name, info in found.items():
        relative = name[len(root) :].strip("/") if name.startswith(root) else posixpath.basename(name)
        if info.get("type") == "file" and not any(part.startswith(".") for part in relative.split("/")):
            out.append((fs.unstrip_protocol(name), int(info.get("size") or 0)))
    if not out:
        raise JalmError(f"{url}: names no object")
    return sorted(out)


def open_binary(path: str | Path) -> IO[bytes]:
    """A local file or a URL, opened for reading bytes (seekable)."""
    if not is_url(path):
        return open(path, "rb")
    fs, inner = url_filesystem(str(path))
    return fs.open(inner, "rb")


def file_size(path: str | Path) -> int:
    if not is_url(path):
        return Path(path).stat().st_size
    fs, inner = url_filesystem(str(path))
    return int(fs.size(inner))


def _open_url(url: str, mode: str) -> IO[Any]:
    """open_compressed for a URL: reading only."""
    if "r" not in mode:
        refuse_url(url, "jalm")
    raw = io.BufferedReader(open_binary(url), buffer_size=1 << 20)  # line iteration in big reads
    name = url.lower()
    if name.endswith(".gz"):
        stream: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="rb")
    elif name.endswith(".zst"):
        import zstandard

        stream = io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw))
    else:
        stream = raw
    return stream if "b" in mode else io.TextIOWrapper(stream, encoding="utf-8")
