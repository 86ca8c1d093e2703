"""Which weights a model gets, decided before anything is fingerprinted or built.

`resolve_weights` turns the `--weights` option into what will actually be loaded: Keras' ImageNet
file in the Keras cache (with its sha256), a user's weights file (with its sha256) or random init
(with its seed). The extraction fingerprint hashes that, not the option string, so a run that fell
back to random is redone once ImageNet weights appear, and an overwritten weights file is noticed.

The Keras cache folder is `--weights-cache DIR` (the folder holding the .h5 files), else
`$KERAS_HOME/models`, else `~/.keras/models` (Keras' own rule, including its /tmp fallback when
the home folder is not writable). Downloads use Keras' own downloader, after a connection probe
bounded in time, so an offline machine fails in seconds; the first network failure is remembered
for the rest of the process so nine models do not each wait. CONVNET_SEARCH_OFFLINE=1 disables
downloads altogether.

One file ships with the package (`weights_data/`, see its NOTICE.md): Keras' own no-top ImageNet
file for MobileNet α 0.25, so an offline run has one network with real features. It is used only
when the Keras cache lacks that file, and its sha256 is checked against `SHIPPED_WEIGHTS` before
every use (a damaged install is an error naming the file, never random weights).

Nothing here imports TensorFlow except an actual download.
"""
from __future__ import annotations

import hashlib
import os
import socket
import threading
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

from .spec import ModelSpec

OFFLINE_ENV = "CONVNET_SEARCH_OFFLINE"
PROBE_TIMEOUT = 5.0  # seconds to reach the download host (DNS included) before calling it offline
SOCKET_TIMEOUT = 30.0  # per socket operation during a download: a stalled transfer fails, a slow one not
README_HINT = "README: Weights on an offline machine"


SHIPPED_DIR = Path(__file__).resolve().parent / "weights_data"
# Keras cache file name -> sha256 of the byte-identical copy shipped in SHIPPED_DIR
SHIPPED_WEIGHTS = {
    "mobilenet_2_5_224_tf_no_top.h5": "dbdb03ee2a22fd895301636cd328b234bb3a9952358f436d82f46b81e0d5b0bf",
}


class WeightsError(RuntimeError):
    """Weights that cannot be used as asked; the message names the file and the problem."""


class FetchError(WeightsError):
    """A download that could not be done (no network, unwritable folder, bad hash)."""


@dataclass(frozen=True)
class WeightsCache:
    folder: Path  # holds the .h5 files (like $KERAS_HOME/models)
    source: str  # "--weights-cache" | "KERAS_HOME" | "default"
    why: str  # one line for people: which setting chose this folder


def weights_cache(cache_dir: Path | str | None = None) -> WeightsCache:
    if cache_dir:
        return WeightsCache(Path(cache_dir).expanduser().absolute(), "--weights-cache",
                            "set by --weights-cache (config key weights_cache)")
    env = os.environ.get("KERAS_HOME")
    if env:
        return WeightsCache(Path(env).expanduser().absolute() / "models", "KERAS_HOME",
                            f"KERAS_HOME={env}")
    home = Path("~").expanduser()
    base = home if os.access(home, os.W_OK) else Path("/tmp")  # what keras.backend.config does
    return WeightsCache(base / ".keras" / "models", "default",
                        "default: neither --weights-cache nor KERAS_HOME is set")


@dataclass(frozen=True)
class ResolvedWeights:
    kind: str  # "imagenet" | "random" | "file"
    path: Path | None
    sha256: str | None
    detail: str  # one short line for the manifest and the run summary
    seed: int = 0

    def fingerprint_key(self) -> tuple:
        """What the extraction fingerprint hashes: the bytes loaded, or the random seed."""
        return ("random", self.seed) if self.kind == "random" else (self.kind, self.sha256)


# ---------------------------------------------------------------------------------------------
# File digests (memoised per path, size and mtime: a precompute run asks for each file twice)
# ---------------------------------------------------------------------------------------------

_DIGESTS: dict[tuple[str, int, int], tuple[str, str]] = {}


def file_digests(path: Path) -> tuple[str, str]:
    """(sha256, md5) of a file; md5 because most Keras application files publish an md5."""
    st = path.stat()
    key = (str(path.absolute()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        sha, md5 = hashlib.sha256(), hashlib.md5()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                sha.update(block)
                md5.update(block)
        _DIGESTS[key] = (sha.hexdigest(), md5.hexdigest())
    return _DIGESTS[key]


def keras_hash_problem(spec: ModelSpec, path: Path) -> str | None:
    """None if the file matches the hash Keras publishes for it (or Keras publishes none)."""
    want = spec.weights_hash
    if not want:
        return None
    sha, md5 = file_digests(path)
    algo, got = ("sha256", sha) if len(want) == 64 else ("md5", md5)
    if got == want:
        return None
    return (f"{path}: {algo} {got[:12]}… differs from the one Keras publishes for {spec.name} "
            f"({want[:12]}…): an incomplete download or another file; delete it and run "
            f"`convnet-search weights fetch {spec.id}`")


def shipped_weights(spec: ModelSpec) -> Path | None:
    """The copy of the model's Keras file shipped with the package, sha256-verified; None if none ships.

    Raises WeightsError naming the file when it is missing from the install or its digest differs."""
    want = SHIPPED_WEIGHTS.get(spec.weights_file) if spec.weights_url else None
    if want is None:
        return None
    path = SHIPPED_DIR / spec.weights_file
    if not path.is_file():
        raise WeightsError(f"{path}: the ImageNet weights shipped with convnet-search are missing "
                           "(an incomplete install?); reinstall the package")
    sha, _ = file_digests(path)
    if sha != want:
        raise WeightsError(f"{path}: sha256 {sha[:12]}… differs from the shipped file's {want[:12]}… "
                           "(damaged install?); reinstall the package")
    return path


# ---------------------------------------------------------------------------------------------
# Downloads
# ---------------------------------------------------------------------------------------------

_NETWORK_FAILURE: str | None = None  # first network failure of this process, reused by later models


def reset_download_memo() -> None:
    global _NETWORK_FAILURE
    _NETWORK_FAILURE = None


def _probe(url: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """None if the download host (or the configured proxy) accepts a connection, else why not.

    Runs in a thread joined with a deadline because name resolution ignores socket timeouts.
    """
    if os.environ.get(OFFLINE_ENV):
        return f"downloads are disabled ({OFFLINE_ENV} is set)"
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        p = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = p.hostname or host, p.port or 80
    outcome: dict[str, BaseException] = {}

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as exc:
            outcome["error"] = exc

    t = threading.Thread(target=connect, daemon=True)
    t.start()
    t.join(timeout + 1)
    if t.is_alive():
        return f"no network: {host}:{port} did not answer within {timeout:g} s"
    if "error" in outcome:
        exc = outcome["error"]
        return f"no network: cannot reach {host}:{port} ({getattr(exc, 'strerror', None) or exc})"
    return None


class CacheFolderError(FetchError):
    """The weights cache folder cannot be created or written (a disk/permission problem)."""


def _check_cache_folder(cache) -> None:
    """Create the cache folder and write a probe file into it (os.access says yes to root on a
    read-only mount, and /proc accepts mkdir checks oddly): CacheFolderError naming the folder."""
    import tempfile

    try:
        cache.folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".convnet-search-probe-", dir=cache.folder)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise CacheFolderError(f"{cache.folder}: cannot write into the weights cache folder "
                               f"({exc.strerror or exc}; {cache.why}); choose a writable "
                               "--weights-cache") from None


def fetch_weights(spec: ModelSpec, cache_dir: Path | str | None = None) -> Path:
    """Download the model's no-top ImageNet file into the cache with Keras' own downloader.

    Returns the file; raises FetchError at once (after the bounded probe) when offline.
    """
    global _NETWORK_FAILURE
    cache = weights_cache(cache_dir)
    if not spec.weights_url:
        raise FetchError(f"{spec.id}: no Keras ImageNet weights are known for this model")
    target = cache.folder / spec.weights_file
    if target.is_file() and keras_hash_problem(spec, target) is None:
        return target
    _check_cache_folder(cache)  # before the network: a bad folder is not a network problem
    reason = _NETWORK_FAILURE or _probe(spec.weights_url)
    if reason:
        _NETWORK_FAILURE = reason
        raise FetchError(f"cannot download {spec.weights_file}: {reason}")
    from ..runtime import import_tensorflow

    import_tensorflow()
    import keras

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(SOCKET_TIMEOUT)
    try:
        # An absolute cache_subdir is used as is: the file lands exactly in cache.folder.
        got = keras.utils.get_file(spec.weights_file, spec.weights_url, file_hash=spec.weights_hash,
                                   cache_subdir=str(cache.folder))
    except ValueError as exc:  # Keras' hash check after the download
        raise FetchError(f"{target}: {str(exc).splitlines()[0]}") from exc
    except Exception as exc:  # URL errors arrive as bare Exception("URL fetch failure on ...")
        _NETWORK_FAILURE = f"download failed: {str(exc).splitlines()[0][:200]}"
        raise FetchError(f"cannot download {spec.weights_file}: {_NETWORK_FAILURE}") from exc
    finally:
        socket.setdefaulttimeout(old)
    return Path(got)


# ---------------------------------------------------------------------------------------------
# Resolution
# ---------------------------------------------------------------------------------------------

def _fetch_hint(spec: ModelSpec) -> str:
    return f"run `convnet-search weights fetch {spec.id}` where there is a network ({README_HINT})"


def resolve_weights(spec: ModelSpec, option: str, seed: int = 0,
                    cache_dir: Path | str | None = None) -> ResolvedWeights:
    """Decide what `--weights option` means for `spec`, without building the model.

    none/random: random init from `seed`. PATH: that file (sha256). imagenet/auto: Keras' no-top
    ImageNet file from the cache; if absent, the copy shipped with the package (verified), else one
    download attempt (Keras' downloader; skipped for
    the rest of the process after a network failure); then imagenet fails and auto falls back to
    random init with a loud warning. A cached file whose hash differs from Keras' published one is
    an error, never a fallback.
    """
    opt = str(option)
    if opt in ("none", "random"):
        return ResolvedWeights("random", None, None, f"random init (seed {seed})", seed)
    if opt in ("imagenet", "auto"):
        cache = weights_cache(cache_dir)
        path = cache.folder / spec.weights_file
        why_missing = ""
        shipped = None if path.is_file() else shipped_weights(spec)
        if shipped is not None:
            sha, _ = file_digests(shipped)
            return ResolvedWeights("imagenet", shipped, sha,
                                   f"ImageNet (Keras applications, shipped with convnet-search): "
                                   f"{shipped.name}, sha256 {sha[:12]}", seed)
        if not path.is_file():
            try:
                path = fetch_weights(spec, cache_dir)
            except FetchError as exc:
                why_missing = str(exc)
        if not path.is_file():
            if opt == "imagenet":
                raise WeightsError(
                    f"ImageNet weights for {spec.name} not found: no {spec.weights_file} in "
                    f"{cache.folder} ({cache.why}); {why_missing}. Either {_fetch_hint(spec)} and "
                    "copy the folder here, point KERAS_HOME or --weights-cache at a folder that has "
                    "it, or use --weights none (random init).")
            detail = (f"random (seed {seed}): ImageNet weights not found in {cache.folder}; "
                      f"{_fetch_hint(spec)}")
            warnings.warn(
                f"ImageNet weights for {spec.name} are not in {cache.folder} ({cache.why}) and could "
                f"not be downloaded ({why_missing}). FALLING BACK TO RANDOM WEIGHTS (seed {seed}): "
                "results show what an untrained network retrieves, not what ImageNet features do. "
                f"The bundle records weights='random' and the explorer shows a banner; {_fetch_hint(spec)}.",
                RuntimeWarning, stacklevel=2)
            return ResolvedWeights("random", None, None, detail, seed)
        problem = keras_hash_problem(spec, path)
        if problem:
            raise WeightsError(problem)
        sha, _ = file_digests(path)
        return ResolvedWeights("imagenet", path, sha,
                               f"ImageNet (Keras applications): {path.name}, sha256 {sha[:12]}", seed)
    path = Path(opt).expanduser()
    if not path.is_file():
        raise WeightsError(f"--weights {opt!r}: not 'auto', 'imagenet', 'none' or an existing weights file")
    sha, _ = file_digests(path)
    return ResolvedWeights("file", path.absolute(), sha, f"file {path.name}, sha256 {sha[:12]}", seed)


def load_failure(spec: ModelSpec, path: Path, exc: BaseException) -> str:
    """One line naming the file and what Keras/h5py reported."""
    text = str(exc).strip()
    msg = (text.splitlines()[0] if text else type(exc).__name__)[:300]
    if isinstance(exc, OSError) or "file signature" in msg or "truncated" in msg:
        return f"{path}: not a readable weights file (corrupt or truncated?): {msg}"
    return f"{path}: cannot load as {spec.name} weights (include_top=False): {msg}"
