"""The inputs of a ``fastcam generate`` run, listed once: :class:`Manifest`.

:func:`list_inputs` turns what the user passed into rows (one per image and
target): a stable image id, the URI a worker reads the bytes from, the
fingerprint the listing saw, and the target code. The manifest is stored with
the store (:meth:`fastcam.generation.store.SaliencyStore.write_manifest`), so a
worker anywhere needs only the store to know what to compute.

Sources (:func:`list_inputs`):

* a local folder (recursive) or an fsspec folder URL (``s3://``, ``gs://``,
  ``memory://``, ``file://``): every file whose name ends with one of
  :data:`IMAGE_EXTENSIONS`, id = the path relative to the folder;
* a text file (local or URL) of paths or URLs, one per line, relative ones
  resolved against the file's folder; id = the line as written;
* a Python sequence of paths or URLs; id = as given;
* WebDataset tar shards (a ``.tar`` URL or path, brace patterns
  ``val-{0000..0009}.tar`` expanded): id = ``SHARD_NAME/KEY.EXT``;
* a Parquet table (``.parquet``) with an image-bytes column: id = the
  ``id_column`` value (default: ``SHARD_NAME/ROW``).

Target codes (the ``target`` column): ``c >= 0`` explains class ``c``;
``-1 - r`` explains the model's rank-``r`` class (``-1``: the predicted one;
``topk:K`` makes K rows per image, codes ``-1 .. -K``).

URIs are recorded without ``user:password@``: :func:`redact` removes it, and
:func:`remember_credentials` keeps the original in this process only, where
:func:`read_bytes` restores it.
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import tarfile
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from ..errors import UsageError

#: file name endings (case-insensitive) taken from an image folder
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                    ".ppm", ".pgm", ".pbm", ".pnm")

ImagesSpec = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]

#: the URI forms of members of a tar shard and rows of a table
_TAR = re.compile(r"^tar\[(\d+):(\d+)\]::(.*)$")
_ROW = re.compile(r"^parquet\[(\d+)\]::(.*)$")
_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)([^/@]*@)")


def is_url(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


_CREDENTIALS: dict[str, str] = {}
#: secret strings seen in this process (URL userinfo, secret storage options), never shown
_SECRETS: set = set()
_SECRET_KEYS = re.compile(r"secret|token|password|passwd|credential|key|sas|auth", re.IGNORECASE)


def redact(text: Any) -> str:
    """``text`` with every URL's ``user:password@`` removed and every secret this
    process was given (:func:`remember_credentials`, :func:`remember_secrets`) masked."""
    out = re.sub(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s'\"]*@", r"\1", str(text))
    for secret in sorted(_SECRETS, key=len, reverse=True):
        out = out.replace(secret, "***")
    return out


def remember_credentials(url: str) -> None:
    """Keep ``url``'s userinfo in this process (never in the store) for
    :func:`read_bytes` of URIs under it."""
    url = str(url)
    m = _USERINFO.match(url)
    if m:
        _CREDENTIALS[redact(url)] = url
        userinfo = m.group(2)[:-1]
        _SECRETS.update(v for v in (userinfo, userinfo.split(":", 1)[-1]) if len(v) >= 4)


def remember_secrets(storage_options: Optional[dict]) -> None:
    """Mask the values of secret-looking storage options in every message."""
    for k, v in (storage_options or {}).items():
        if isinstance(v, dict):
            remember_secrets(v)
        elif isinstance(v, str) and len(v) >= 4 and _SECRET_KEYS.search(str(k)):
            _SECRETS.add(v)


def _restore(uri: str) -> str:
    for bare, full in _CREDENTIALS.items():
        if uri.startswith(bare):
            return full + uri[len(bare):]
    return uri


@dataclass(frozen=True)
class Manifest:
    """One row per (image, target): ``ids`` (sorted by id, then target code),
    ``uris``, listing ``fingerprints`` ("" when the listing saw none) and
    ``targets`` (int64 codes, see the module); ``source``: what the user
    passed, redacted (recorded, not checked)."""

    ids: list[str]
    uris: list[str]
    fingerprints: list[str]
    targets: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.ids)

    def digest(self) -> str:
        """sha256 of the rows' ids (the store's identity of its inputs; the
        targets are the target record's)."""
        h = hashlib.sha256()
        h.update(str(len(self.ids)).encode())
        for p in self.ids:
            h.update(b"\n")
            h.update(p.encode("utf-8", "surrogateescape"))
        return h.hexdigest()


# -- listing -------------------------------------------------------------------------
def options_for(url: str, storage_options: Optional[dict]) -> dict:
    """The storage options for ``url``'s protocol: ``storage_options[PROTOCOL]``
    when given per protocol (``{"s3": {...}, "gs": {...}}``), else the flat
    options, except for http(s) URLs, which take none (their credentials are
    the URL's own)."""
    options = dict(storage_options or {})
    protocol = url.split("://", 1)[0].lower() if "://" in url else "file"
    if isinstance(options.get(protocol), dict):
        return dict(options[protocol])
    if protocol in ("http", "https", "file"):
        return {}
    return {k: v for k, v in options.items() if not (isinstance(v, dict) and k.isalpha() and k.islower()
                                                      and k in ("s3", "gs", "gcs", "az", "abfs", "memory"))}


def _fs(url: str, storage_options: Optional[dict]):
    import fsspec

    try:
        return fsspec.core.url_to_fs(_restore(url), **options_for(url, storage_options))
    except ImportError as e:
        raise UsageError(f"{redact(url)}: {e} (pip install 'fastcam[remote]')") from None


def _fingerprint(info: dict) -> str:
    etag = info.get("ETag") or info.get("etag") or info.get("md5Hash")
    if etag:
        return f"etag:{str(etag).strip(chr(34))}"
    mtime = info.get("mtime") or info.get("LastModified") or info.get("updated") or info.get("created")
    if hasattr(mtime, "timestamp"):
        mtime = int(mtime.timestamp() * 1e9)
    elif isinstance(mtime, float):
        mtime = int(mtime * 1e9)
    return f"{info.get('size')}:{mtime}"


def stat_fingerprint(path: str) -> str:
    """``SIZE:MTIME_NS`` of a local file ("" when it cannot be read)."""
    try:
        st = os.stat(path)
    except OSError:
        return ""
    return f"{st.st_size}:{st.st_mtime_ns}"


def _is_image_name(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return not base.startswith(".") and base.lower().endswith(IMAGE_EXTENSIONS)


def _scan_local(root: Path) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if _is_image_name(name):
                full = Path(dirpath) / name
                if full.is_file():
                    found.append(full.relative_to(root).as_posix())
    return found


def _list_folder_url(url: str, storage_options: Optional[dict]) -> tuple[list[str], list[str], list[str]]:
    fs, root = _fs(url, storage_options)
    try:
        found = fs.find(root, detail=True)
    except Exception as e:  # noqa: BLE001 - an unreadable listing stops the run before any work
        raise UsageError(f"--images {redact(url)}: cannot list it ({type(e).__name__}: {redact(e)})") from None
    root = root.rstrip("/")
    ids, uris, prints = [], [], []
    base = redact(url).rstrip("/")
    for path, info in sorted(found.items()):
        rel = path[len(root):].lstrip("/")
        if info.get("type", "file") != "file" or not _is_image_name(rel) or \
                any(part.startswith(".") for part in rel.split("/")[:-1]):
            continue
        ids.append(rel)
        uris.append(f"{base}/{rel}")
        prints.append(_fingerprint(info))
    return ids, uris, prints


def _read_text(location: str, storage_options: Optional[dict]) -> str:
    if is_url(location):
        fs, path = _fs(location, storage_options)
        try:
            return fs.cat_file(path).decode("utf-8")
        except Exception as e:  # noqa: BLE001
            raise UsageError(f"{redact(location)}: cannot read it ({type(e).__name__}: {redact(e)})") from None
    with open(location, encoding="utf-8") as f:
        return f.read()


def _url_fingerprints(urls: Sequence[str], storage_options: Optional[dict]) -> list[str]:
    out = []
    for u in urls:
        try:
            fs, path = _fs(u, storage_options)
            out.append(_fingerprint(fs.info(path)))
        except Exception:  # noqa: BLE001 - unreachable: its read fails later and is recorded
            out.append("")
    return out


def _expand_shards(spec: str) -> list[str]:
    m = re.search(r"\{(\d+)\.\.(\d+)\}", spec)
    if not m:
        return [spec]
    a, b = m.group(1), m.group(2)
    width = len(a)
    return [u for i in range(int(a), int(b) + 1)
            for u in _expand_shards(spec[:m.start()] + str(i).zfill(width) + spec[m.end():])]


def _open_binary(location: str, storage_options: Optional[dict]):
    if is_url(location):
        fs, path = _fs(location, storage_options)
        return fs.open(path, "rb")
    return open(location[7:] if location.startswith("file://") else location, "rb")


def _list_tars(spec: str, storage_options: Optional[dict]) -> tuple[list[str], list[str], list[str]]:
    """WebDataset shards: one row per image member (``KEY.EXT``); a shard that
    cannot be read to its end keeps the members listed before the damage."""
    ids, uris, prints = [], [], []
    for shard in _expand_shards(spec):
        bare = redact(shard)
        name = bare.rstrip("/").rsplit("/", 1)[-1]
        try:
            with _open_binary(shard, storage_options) as f, tarfile.open(fileobj=f, mode="r|") as tar:
                try:
                    for member in tar:
                        if member.isfile() and _is_image_name(member.name):
                            ids.append(f"{name}/{member.name}")
                            uris.append(f"tar[{member.offset_data}:{member.size}]::{bare}")
                            prints.append(f"{member.size}:{int(member.mtime)}")
                except (tarfile.TarError, EOFError, OSError) as e:
                    warnings.warn(f"{bare}: damaged after {len(ids)} member(s) ({type(e).__name__}: {e}); "
                                  "the members before it are listed", stacklevel=3)
        except FileNotFoundError:
            raise UsageError(f"--images: no such shard {bare}") from None
        except (tarfile.TarError, OSError) as e:
            raise UsageError(f"--images: {bare} is not a readable tar ({type(e).__name__}: {redact(e)})") from None
    return ids, uris, prints


def _list_table(location: str, storage_options: Optional[dict], image_column: str, id_column: Optional[str],
                label_column: Optional[str]) -> tuple[list[str], list[str], list[str], Optional[dict]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError("reading Parquet tables needs pyarrow: pip install 'fastcam[remote]'") from None
    bare = redact(location)
    name = bare.rstrip("/").rsplit("/", 1)[-1]
    with _open_binary(location, storage_options) as f:
        pf = pq.ParquetFile(f)
        columns = pf.schema_arrow.names
        for flag, col in (("--image-column", image_column), ("--id-column", id_column),
                          ("--label-column", label_column)):
            if col is not None and col not in columns:
                raise UsageError(f"{flag} {col!r}: {bare} has no such column; its columns: {columns}")
        wanted = [c for c in (id_column, label_column) if c is not None]
        meta = pf.read(columns=wanted).to_pydict() if wanted else {}
        n = pf.metadata.num_rows
    ids = [str(v) for v in meta[id_column]] if id_column else [f"{name}/{i}" for i in range(n)]
    uris = [f"parquet[{i}]::{bare}" for i in range(n)]
    labels = dict(zip(ids, meta[label_column])) if label_column else None
    if is_url(location):
        fs, path = _fs(location, storage_options)
        table_print = _fingerprint(fs.info(path))
    else:
        table_print = stat_fingerprint(location[7:] if location.startswith("file://") else location)
    return ids, uris, [f"{table_print}#{i}" for i in range(n)], labels


def list_inputs(images: ImagesSpec, *, storage_options: Optional[dict] = None,
                image_column: str = "image", id_column: Optional[str] = None,
                label_column: Optional[str] = None) -> tuple[list[str], list[str], list[str], str, Optional[dict]]:
    """(ids, uris, fingerprints, redacted source, labels or None), sorted by id,
    unique; see the module for the sources."""
    labels = None
    remember_secrets(storage_options)
    if isinstance(images, (str, os.PathLike)):
        spec = os.fspath(images)
        remember_credentials(spec)
        source = redact(spec)
        low = spec.lower().split("?")[0]
        if low.endswith(".tar"):
            ids, uris, prints = _list_tars(spec, storage_options)
            kind = "shards"
        elif low.endswith(".parquet") or low.endswith(".arrow"):
            ids, uris, prints, labels = _list_table(spec, storage_options, image_column, id_column, label_column)
            kind = "table"
        elif is_url(spec) or spec.startswith("file://"):
            fs, path = _fs(spec, storage_options)
            try:
                is_dir = fs.isdir(path)
                is_file = not is_dir and fs.isfile(path)
            except Exception as e:  # noqa: BLE001
                raise UsageError(f"--images {source}: unreachable ({type(e).__name__}: {redact(e)})") from None
            if is_dir:
                ids, uris, prints = _list_folder_url(spec, storage_options)
                kind = "folder"
            elif is_file:
                ids, uris, prints, kind = _from_list(_read_text(spec, storage_options), spec.rsplit("/", 1)[0],
                                                     storage_options)
            else:
                raise UsageError(f"--images {source!r}: no such folder or file")
        else:
            src = Path(spec)
            if src.is_dir():
                ids = _scan_local(src)
                uris = [str(src / p) for p in ids]
                prints = [stat_fingerprint(u) for u in uris]
                kind = "folder"
            elif src.is_file():
                ids, uris, prints, kind = _from_list(_read_text(spec, None), str(src.parent), storage_options)
            else:
                raise UsageError(f"--images {source!r}: no such folder or file")
    else:
        given = [os.fspath(p) for p in images]
        for p in given:
            remember_credentials(p)
        ids = [redact(p) for p in given]
        uris = list(ids)
        prints = [stat_fingerprint(p) if not is_url(p) else None for p in given]
        remote = [i for i, p in enumerate(prints) if p is None]
        for i, fp in zip(remote, _url_fingerprints([given[i] for i in remote], storage_options)):
            prints[i] = fp
        kind, source = "path list", f"<{len(given)} paths>"
    order = sorted(range(len(ids)), key=lambda i: ids[i])
    seen, keep = set(), []
    for i in order:
        if ids[i] not in seen:
            seen.add(ids[i])
            keep.append(i)
    if len(keep) < len(ids):
        warnings.warn(f"{len(ids) - len(keep)} duplicate path(s) in the {kind} were dropped", stacklevel=3)
    if not keep:
        raise UsageError(f"no images found in the {kind} {source!r}")
    return ([ids[i] for i in keep], [uris[i] for i in keep], [prints[i] for i in keep], source, labels)


def _from_list(text: str, base: str, storage_options: Optional[dict]):
    lines = [ln.strip() for ln in text.splitlines()]
    ids = [p for p in lines if p and not p.startswith("#")]
    for p in ids:
        remember_credentials(p)
    uris = [p if is_url(p) or os.path.isabs(p) or p.startswith("file://") else f"{base}/{p}" for p in ids]
    ids = [redact(p) for p in ids]
    uris = [redact(u) for u in uris]
    prints = [stat_fingerprint(u) if not is_url(u) else None for u in uris]
    remote = [i for i, p in enumerate(prints) if p is None]
    for i, fp in zip(remote, _url_fingerprints([uris[i] for i in remote], storage_options)):
        prints[i] = fp
    return ids, uris, prints, "list file"


# -- targets ---------------------------------------------------------------------------
def parse_target(target: Union[str, int, os.PathLike, None]) -> tuple[str, Any]:
    """``("predicted", None)``, ``("class", c)``, ``("topk", K)`` or ``("file", path)``."""
    if target is None or (isinstance(target, str) and target.lower() == "predicted"):
        return "predicted", None
    if isinstance(target, (int, np.integer)) or (isinstance(target, str) and target.strip().lstrip("-").isdigit()):
        c = int(target)
        if c < 0:
            raise UsageError(f"--target {c}: a class index must be >= 0")
        return "class", c
    if isinstance(target, str) and target.lower().startswith("topk:"):
        k = target.split(":", 1)[1]
        if not k.isdigit() or int(k) < 1:
            raise UsageError(f"--target {target!r}: topk:K needs an integer K >= 1")
        return "topk", int(k)
    path = Path(target)
    if not path.is_file():
        raise UsageError(f"--target {str(target)!r}: neither 'predicted', a class index, topk:K nor a file")
    return "file", path


def read_target_file(path: Path) -> dict[str, list[int]]:
    """Image -> its classes, from eval's labels CSV (``image,class[,...]`` with a
    header) or ``PATH CLASS`` lines (whitespace, comma or tab separated); an
    image may be repeated for several classes."""
    text = path.read_text(encoding="utf-8-sig")
    first = next((ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")), "")
    out: dict[str, list[int]] = {}
    if first.replace(" ", "").lower().startswith("image,class"):
        reader = csv.DictReader(io.StringIO(text))
        for n, row in enumerate(reader, 2):
            c = (row.get("class") or "").strip()
            if not c.lstrip("-").isdigit():
                raise UsageError(f"{path}:{n}: class {c!r} is not an integer")
            out.setdefault(row["image"].strip(), []).append(int(c))
        return out
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.replace(",", " ").replace("\t", " ").rsplit(None, 1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise UsageError(f"{path}:{n}: expected 'PATH CLASS', got {line!r}")
        out.setdefault(parts[0].strip(), []).append(int(parts[1]))
    return out


def _lookup(wanted: dict, image_id: str, stems: Optional[dict] = None) -> Optional[list]:
    """An image's classes: by its id, by its file name (eval's CSV names images
    by file name; a folder's ids may have subfolders), or by its file name without
    the extension (as the shared ImageNet labels do) when no other listed image has
    that stem (``stems``: stem -> how many listed images have it)."""
    got = wanted.get(image_id)
    name = image_id.rsplit("/", 1)[-1]
    if got is None:
        got = wanted.get(name)
    stem = name.rsplit(".", 1)[0]
    if got is None and stem != name and (stems is None or stems.get(stem, 0) == 1):
        got = wanted.get(stem)
    return got


def make_manifest(images: ImagesSpec, target: Union[str, int, os.PathLike, None] = "predicted", *,
                  storage_options: Optional[dict] = None, image_column: str = "image",
                  id_column: Optional[str] = None, label_column: Optional[str] = None
                  ) -> tuple[Manifest, Any]:
    """The run's rows and the store's record of its target (checked on resume)."""
    ids, uris, prints, source, labels = list_inputs(images, storage_options=storage_options,
                                                    image_column=image_column, id_column=id_column,
                                                    label_column=label_column)
    kind, value = parse_target(target)
    if labels is not None and kind == "predicted" and label_column is not None:
        kind, value = "labels", labels
    rows: list[tuple[int, int]] = []          # (index into the listing, code)
    if kind == "predicted":
        rows = [(i, -1) for i in range(len(ids))]
        record: Any = "predicted"
    elif kind == "class":
        rows = [(i, value) for i in range(len(ids))]
        record = {"class": value}
    elif kind == "topk":
        rows = [(i, -1 - r) for i in range(len(ids)) for r in range(value)]
        record = {"topk": value}
    else:
        wanted = {k: (v if isinstance(v, list) else [v]) for k, v in value.items()} if kind == "labels" \
            else read_target_file(value)
        stems = Counter(p.rsplit("/", 1)[-1].rsplit(".", 1)[0] for p in ids)
        missing = [p for p in ids if not _lookup(wanted, p, stems)]
        if missing:
            raise UsageError(f"--target {str(target)!r} has no class for {len(missing)} image(s), "
                             f"e.g. {missing[0]!r}")
        for i, p in enumerate(ids):
            classes = sorted(set(int(c) for c in _lookup(wanted, p, stems)))
            if classes[0] < 0:
                raise UsageError(f"--target {str(target)!r}: negative class index for {p!r}")
            rows += [(i, c) for c in classes]
        codes = np.asarray([c for _, c in rows], dtype="<i8")
        record = {"file": Path(value).name if kind == "file" else f"column {label_column}",
                  "sha256": hashlib.sha256(codes.tobytes()).hexdigest()}
    manifest = Manifest([ids[i] for i, _ in rows], [uris[i] for i, _ in rows], [prints[i] or "" for i, _ in rows],
                        np.asarray([c for _, c in rows], dtype=np.int64), source)
    return manifest, record


# -- reading ---------------------------------------------------------------------------
def read_bytes(uri: str, storage_options: Optional[dict] = None) -> bytes:
    """The bytes of a manifest URI: a local path, an fsspec URL, a tar member
    (``tar[OFFSET:SIZE]::SHARD``) or a table row (``parquet[ROW]::TABLE``, the
    image column recorded in the store; see :func:`read_table_cell`)."""
    m = _TAR.match(uri)
    if m:
        offset, size, shard = int(m.group(1)), int(m.group(2)), m.group(3)
        with _open_binary(_restore(shard), storage_options) as f:
            f.seek(offset)
            data = f.read(size)
        if len(data) != size:
            raise EOFError(f"tar member truncated ({len(data)} of {size} bytes)")
        return data
    with _open_binary(_restore(uri), storage_options) as f:
        return f.read()


def read_table_cells(table: str, rows: Sequence[int], column: str, storage_options: Optional[dict] = None) -> list:
    """The ``column`` values of ``rows`` of a Parquet table (bytes, or a dict
    with ``bytes``: Hugging Face's image feature)."""
    import pyarrow.parquet as pq

    with _open_binary(_restore(table), storage_options) as f:
        pf = pq.ParquetFile(f)
        starts = np.cumsum([0] + [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)])
        groups = sorted({int(np.searchsorted(starts, r, side="right") - 1) for r in rows})
        col = pf.read_row_groups(groups, columns=[column]).column(0).to_pylist()
    first = {g: int(starts[g]) for g in groups}
    offset, base = {}, 0
    for g in groups:
        offset[g] = base
        base += int(starts[g + 1] - starts[g])
    out = []
    for r in rows:
        g = int(np.searchsorted(starts, r, side="right") - 1)
        v = col[offset[g] + r - first[g]]
        out.append(v.get("bytes") if isinstance(v, dict) else v)
    return out


def table_row(uri: str) -> Optional[tuple[str, int]]:
    """(table, row) of a ``parquet[ROW]::TABLE`` URI, else None."""
    m = _ROW.match(uri)
    return (m.group(2), int(m.group(1))) if m else None
