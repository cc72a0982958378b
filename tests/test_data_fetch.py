"""Fetching sources: a pypi: sdist is checked before anything of it runs or is unpacked, a
killed download leaves nothing that looks complete, hub datasets are read at a pinned
revision. Every server here is local (a file:// index, or an HTTP server in the test)."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
import types
from pathlib import Path

import pandas as pd
import pytest

from lotteryprune import data
from lotteryprune.data.fetch import pip_index_settings

PKG = "lp-evil-pkg"


def _evil_sdist(path: Path, marker: Path) -> bytes:
    """An sdist whose setup.py (and pyproject build) would write ``marker`` if it ever ran."""
    setup = f"open({str(marker)!r}, 'w').write('setup.py ran')\nfrom setuptools import setup\nsetup(name={PKG!r}, version='1.0')\n"
    files = {
        "lp_evil_pkg-1.0/setup.py": setup.encode(),
        "lp_evil_pkg-1.0/PKG-INFO": f"Metadata-Version: 2.1\nName: {PKG}\nVersion: 1.0\n".encode(),
    }
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path.read_bytes()


def _file_index(root: Path, marker: Path) -> tuple[str, str]:
    """A PEP 503 HTML index on disk, as /opt/pypi/simple is: a wheel and the sdist."""
    files = root / "files"
    files.mkdir(parents=True)
    blob = _evil_sdist(files / "lp_evil_pkg-1.0.tar.gz", marker)
    (files / "lp_evil_pkg-1.0-py3-none-any.whl").write_bytes(b"not the sdist")
    sha = hashlib.sha256(blob).hexdigest()
    page = root / "simple" / PKG
    page.mkdir(parents=True)
    (page / "index.html").write_text(
        "<!DOCTYPE html><html><body>\n"
        '<a href="../../files/lp_evil_pkg-1.0-py3-none-any.whl#sha256=00">lp_evil_pkg-1.0-py3-none-any.whl</a>\n'
        f'<a href="../../files/lp_evil_pkg-1.0.tar.gz#sha256={sha}">lp_evil_pkg-1.0.tar.gz</a>\n'
        "</body></html>\n"
    )
    return (root / "simple").as_uri(), sha


@pytest.fixture
def pip_index(monkeypatch):
    """Point pip's configuration (and so the fetcher) at one index only."""

    def use(url: str):
        monkeypatch.setenv("PIP_INDEX_URL", url)
        monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
        # pip's spelling of --no-build-isolation: a `pip download` of the sdist would then build
        # it with this venv's setuptools, running its setup.py (as the fetcher once did)
        monkeypatch.setenv("PIP_NO_BUILD_ISOLATION", "0")

    return use


def test_pip_index_settings_follow_pip_configuration(tmp_path, monkeypatch, pip_index):
    pip_index("https://mirror.example/simple")
    assert pip_index_settings()["indexes"] == ["https://mirror.example/simple"]
    monkeypatch.delenv("PIP_INDEX_URL")
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL")
    conf = tmp_path / "pip.conf"
    conf.write_text(
        "[global]\nindex-url = https://a.example/simple\nextra-index-url = file:///x/simple https://b.example/s\n"
    )
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    assert pip_index_settings()["indexes"] == ["https://a.example/simple", "file:///x/simple", "https://b.example/s"]


def test_pypi_sdist_is_verified_before_anything_runs(tmp_path, pip_index):
    marker = tmp_path / "setup-py-ran"
    index, sha = _file_index(tmp_path / "index", marker)
    pip_index(index)
    with pytest.raises(data.DataError) as err:
        data.fetch(f"pypi:{PKG}==1.0", tmp_path / "raw" / "bad.download", sha256="0" * 64)
    assert not marker.exists(), "the sdist's setup.py ran before its sha256 was checked"
    assert str(err.value).startswith(f"pypi:{PKG}==1.0: sha256 mismatch: got {sha}")
    assert not (tmp_path / "raw" / "bad.download").exists()

    record = data.fetch(f"pypi:{PKG}==1.0", tmp_path / "raw" / "ok.download", sha256=sha)
    assert not marker.exists(), "the sdist's setup.py ran"
    assert (tmp_path / "raw" / "ok.download").read_bytes() == (
        tmp_path / "index" / "files" / "lp_evil_pkg-1.0.tar.gz"
    ).read_bytes()
    assert record["filename"] == "lp_evil_pkg-1.0.tar.gz" and record["url"].startswith("file:") and record["verified"]


def test_pypi_index_hash_is_checked_even_without_a_config_hash(tmp_path, pip_index):
    index, _ = _file_index(tmp_path / "index", tmp_path / "marker")
    page = tmp_path / "index" / "simple" / PKG / "index.html"
    page.write_text(page.read_text().replace("tar.gz#sha256=", "tar.gz#sha256=1" + "0" * 63 + "&x="))
    pip_index(index)
    with pytest.raises(data.DataError, match=f"^pypi:{PKG}==1.0: .* does not match the index's own sha256 1"):
        data.fetch(f"pypi:{PKG}==1.0", tmp_path / "raw.download")


def test_pypi_unknown_version_and_unpinned_source_are_named(tmp_path, pip_index):
    index, _ = _file_index(tmp_path / "index", tmp_path / "marker")
    pip_index(index)
    with pytest.raises(data.DataError, match=f"^pypi:{PKG}==2.0: no sdist of {PKG}==2.0"):
        data.fetch(f"pypi:{PKG}==2.0", tmp_path / "raw.download")
    with pytest.raises(data.DataError, match=f"^pypi:{PKG}>=1: a pypi: source pins one release"):
        data.fetch(f"pypi:{PKG}>=1", tmp_path / "raw.download")


class _Server:
    """A local HTTP server: a PEP 691 JSON simple index and files, optionally slow."""

    def __init__(self, files: dict[str, bytes], *, delay: float = 0.0, chunk: int = 4096):
        self.files, self.delay, self.chunk, self.accept, self.auth = files, delay, chunk, [], []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.accept.append(self.headers.get("Accept", ""))
                server.auth.append(self.headers.get("Authorization"))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                ctype = (
                    "application/vnd.pypi.simple.v1+json"
                    if self.path.startswith("/simple/")
                    else "application/octet-stream"
                )
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    for start in range(0, len(body), server.chunk):
                        self.wfile.write(body[start : start + server.chunk])
                        self.wfile.flush()
                        time.sleep(server.delay)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_pypi_json_simple_api_over_http(tmp_path, pip_index):
    marker = tmp_path / "setup-py-ran"
    blob = _evil_sdist(tmp_path / "sdist.tar.gz", marker)
    sha = hashlib.sha256(blob).hexdigest()
    page = {
        "meta": {"api-version": "1.0"},
        "files": [
            {"filename": "lp_evil_pkg-1.0-py3-none-any.whl", "url": "/files/w.whl", "hashes": {}},
            {"filename": "lp_evil_pkg-0.9.tar.gz", "url": "/files/old.tar.gz", "hashes": {}},
            {"filename": "lp_evil_pkg-1.0.tar.gz", "url": "../../files/new.tar.gz", "hashes": {"sha256": sha}},
        ],
    }
    server = _Server({f"/simple/{PKG}/": json.dumps(page).encode(), "/files/new.tar.gz": blob})
    try:
        pip_index(server.url + "/simple")
        record = data.fetch(f"pypi:{PKG}==1.0", tmp_path / "raw.download", sha256=sha, size=len(blob))
    finally:
        server.close()
    assert record["url"] == server.url + "/files/new.tar.gz" and record["index_sha256"] == sha
    assert "application/vnd.pypi.simple.v1+json" in server.accept[0]
    assert (tmp_path / "raw.download").read_bytes() == blob and not marker.exists()


def test_index_credentials_are_sent_but_never_recorded(tmp_path, pip_index):
    blob = b"sdist bytes"
    page = {"files": [{"filename": "lp_evil_pkg-1.0.tar.gz", "url": "/files/a.tar.gz", "hashes": {}}]}
    server = _Server({f"/simple/{PKG}/": json.dumps(page).encode(), "/files/a.tar.gz": blob})
    try:
        pip_index(server.url.replace("http://", "http://me:s3cret@") + "/simple")
        record = data.fetch(f"pypi:{PKG}==1.0", tmp_path / "raw.download")
    finally:
        server.close()
    assert server.auth == ["Basic bWU6czNjcmV0"] * 2  # base64 of "me:s3cret", on the page and on the file
    assert "s3cret" not in json.dumps(record) and record["url"] == server.url + "/files/a.tar.gz"


def test_short_http_download_is_an_error(tmp_path):
    server = _Server({"/f": b"x" * 10})

    class Truncating(http.server.BaseHTTPRequestHandler):  # says 100 bytes, sends 10
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"x" * 10)

        def log_message(self, *args):
            pass

    server.httpd.RequestHandlerClass = Truncating
    try:
        with pytest.raises(data.DataError, match=f"^{server.url}/f: download of"):
            data.fetch(server.url + "/f", tmp_path / "raw.download")
    finally:
        server.close()
    assert not (tmp_path / "raw.download").exists()


FETCH_IN_CHILD = "import sys; from lotteryprune.data import fetch; fetch(sys.argv[1], sys.argv[2], sha256=sys.argv[3], size=int(sys.argv[4]))"


def test_kill_9_during_download_leaves_nothing_complete_and_a_rerun_succeeds(tmp_path):
    payload = os.urandom(1 << 20)
    sha = hashlib.sha256(payload).hexdigest()
    server = _Server({"/big.zip": payload}, delay=0.02, chunk=8192)  # about 2.5 s for the whole file
    dest = tmp_path / "raw" / "labelled.download"
    url = server.url + "/big.zip"
    try:
        child = subprocess.Popen([sys.executable, "-c", FETCH_IN_CHILD, url, str(dest), sha, str(len(payload))])
        partial = None
        deadline = time.time() + 60
        while time.time() < deadline and child.poll() is None:
            partial = next((p for p in dest.parent.glob(".*/*") if p.is_file() and p.stat().st_size > 0), None)
            if partial is not None:
                break
            time.sleep(0.02)
        assert partial is not None, "the download never started"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
        assert not dest.exists()
        left = [p for p in dest.parent.rglob("*") if p.is_file()]
        assert all(p.name != dest.name and p.stat().st_size < len(payload) for p in left)

        server.delay = 0.0
        record = data.fetch(url, dest, sha256=sha, size=len(payload))
    finally:
        server.close()
    assert dest.read_bytes() == payload and record["sha256"] == sha
    assert sorted(p.name for p in dest.parent.iterdir()) == ["labelled.download"]  # the killed run's leftovers gone


def test_hub_dataset_is_read_at_its_revision_and_recorded(tmp_path, monkeypatch):
    calls = []

    class FakeDataset:
        column_names = ["text", "toxicity"]

        def __len__(self):
            return 2

        def __getitem__(self, column):
            return {"text": ["one", "two"]}[column]

    def load_dataset(name, **kwargs):
        calls.append((name, kwargs))
        return FakeDataset()

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    commit = "0123456789abcdef0123456789abcdef01234567"
    record = data.fetch("hub:google/civil_comments", tmp_path / "extra.download", revision=commit)
    assert calls == [("google/civil_comments", {"split": "train", "revision": commit})]
    assert record["revision"] == commit and record["verified"] is False
    assert pd.read_parquet(tmp_path / "extra.download")["text"].tolist() == ["one", "two"]
