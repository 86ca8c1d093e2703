"""frontend/scripts/serve.py --data (issue 19 row 12: `make serve BUNDLE=DIR` shows a bundle built
anywhere): /data/... comes from DIR, everything else from the build, and nothing outside either."""
from __future__ import annotations

import importlib.util
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _serve_module():
    spec = importlib.util.spec_from_file_location("serve", ROOT / "frontend/scripts/serve.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_data_comes_from_the_given_bundle(tmp_path):
    from http.server import ThreadingHTTPServer

    serve = _serve_module()
    dist, bundle = tmp_path / "dist", tmp_path / "my-bundle"
    (dist / "data").mkdir(parents=True)
    (dist / "index.html").write_text("app")
    (dist / "data" / "manifest.json").write_text("old")
    bundle.mkdir()
    (bundle / "manifest.json").write_text("mine")
    (tmp_path / "secret.txt").write_text("no")
    server = ThreadingHTTPServer(("127.0.0.1", 0), serve.make_handler(dist, "default-src 'self'", bundle))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        def get(path: str) -> bytes:
            with urllib.request.urlopen(base + path, timeout=10) as r:
                return r.read()
        assert get("/data/manifest.json?x=1") == b"mine"
        assert get("/index.html") == b"app"
        with pytest.raises(urllib.error.HTTPError):
            get("/data/../../secret.txt")
    finally:
        server.shutdown()
        server.server_close()


def test_a_folder_without_a_manifest_is_refused(tmp_path, capsys):
    assert _serve_module().main(["--data", str(tmp_path)]) == 2
    assert "no manifest.json" in capsys.readouterr().err
