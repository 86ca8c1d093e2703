"""Serve the built explorer (frontend/dist) on 127.0.0.1 with its Content-Security-Policy as an
HTTP header, not only as index.html's <meta> tag: a <meta> CSP does not govern the page's web
worker (the private search), a header on the worker script does. The policy is read from the
built index.html's meta tag, so it is defined once (frontend/index.html).

It also answers single byte-range requests (206 Partial Content), which http.server does not: the
explorer fetches one query's neighbours as a Range of its .knn file (docs/bundle.md).

With --data BUNDLE, the explorer's data/ is served from that bundle folder (what `precompute --out`
wrote) instead of the build's copy of frontend/public/data: `make serve BUNDLE=path/to/bundle`.

Usage: python frontend/scripts/serve.py [--dir frontend/dist] [--data BUNDLE] [--port 8000] [--bind 127.0.0.1]
"""
from __future__ import annotations

import argparse
import functools
import os
import re
import sys
import urllib.parse
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

META_CSP = re.compile(
    r"""<meta\s+http-equiv=["']Content-Security-Policy["']\s+content=(["'])(.+?)\1""", re.IGNORECASE | re.DOTALL)


def csp_from_html(html: str) -> str:
    """The policy of the page's CSP <meta> tag; a page without one is an error (never serve without)."""
    m = META_CSP.search(html)
    if not m:
        raise ValueError("no <meta http-equiv=\"Content-Security-Policy\"> tag found")
    return " ".join(m.group(2).split())


RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single satisfiable "bytes=a-b" / "bytes=a-" range, else None
    (then the whole file is sent with 200, which the explorer also accepts)."""
    m = RANGE.match(header or "")
    if not m:
        return None
    start = int(m.group(1))
    end = min(size - 1, int(m.group(2))) if m.group(2) else size - 1
    return (start, end) if start <= end else None


class Handler(SimpleHTTPRequestHandler):
    csp = ""  # set by make_handler
    data_dir = ""  # set by make_handler: where /data/... comes from ("" = the build's own data/)

    def translate_path(self, path: str) -> str:
        route = urllib.parse.urlsplit(path).path
        if self.data_dir and (route == "/data" or route.startswith("/data/")):
            served = self.directory
            self.directory = self.data_dir  # the base class maps the rest of the URL under it safely
            try:
                return super().translate_path(path[len("/data"):] or "/")
            finally:
                self.directory = served
        return super().translate_path(path)

    def send_head(self):  # noqa: ANN201 (http.server's signature)
        path = self.translate_path(self.path)
        if "Range" not in self.headers or not os.path.isfile(path):
            return super().send_head()
        f = open(path, "rb")
        size = os.fstat(f.fileno()).st_size
        rng = parse_range(self.headers["Range"], size)
        if rng is None:
            f.close()
            return super().send_head()
        start, end = rng
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        f.seek(start)
        self._range_left = end - start + 1
        return f

    def copyfile(self, source, outputfile) -> None:
        left = getattr(self, "_range_left", None)
        if left is None:
            return super().copyfile(source, outputfile)
        self._range_left = None
        outputfile.write(source.read(left))

    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy", self.csp)
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()


def make_handler(directory: Path, csp: str, data: Path | None = None):
    cls = type("CspHandler", (Handler,), {"csp": csp, "data_dir": str(data.resolve()) if data else ""})
    # .mjs and .wasm must have script/wasm types under nosniff.
    cls.extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript",
                          ".mjs": "text/javascript", ".wasm": "application/wasm", ".json": "application/json"}
    return functools.partial(cls, directory=str(directory))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=Path(__file__).resolve().parents[1] / "dist")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--data", type=Path, help="bundle folder to serve as data/ (a precompute --out)")
    args = ap.parse_args(argv)
    if args.data is not None and not (args.data / "manifest.json").is_file():
        print(f"serve: {args.data}: no manifest.json; give the folder a precompute run wrote (its --out)",
              file=sys.stderr)
        return 2
    index = args.dir / "index.html"
    try:
        csp = csp_from_html(index.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        print(f"serve: {index}: {e}; build the explorer first (make frontend)", file=sys.stderr)
        return 2
    try:
        server = ThreadingHTTPServer((args.bind, args.port), make_handler(args.dir, csp, args.data))
    except OSError as e:
        print(f"serve: cannot listen on {args.bind}:{args.port}: {e.strerror}", file=sys.stderr)
        return 2
    shown = f"{args.dir} with data/ from {args.data}" if args.data else str(args.dir)
    print(f"Serving {shown} on http://{args.bind}:{server.server_address[1]}/ (CSP sent as a header); Ctrl-C stops",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
