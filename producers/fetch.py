"""Download the public Telemanom data set and verify every file against a shipped SHA-256 manifest."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tmstream.ground.exceptions import DataError

DATA_URL = "https://s3-us-west-2.amazonaws.com/telemanom/data.zip"
LABELS_URL = "https://raw.githubusercontent.com/khundman/telemanom/master/labeled_anomalies.csv"
MANIFEST = Path(__file__).with_name("nasa_manifest.sha256")


def expected_hashes() -> dict[str, str]:
    """``relative path -> sha256`` for the 82 train + 82 test arrays and the label file."""
    lines = MANIFEST.read_text().split("\n")
    return {path.removeprefix("./"): digest for digest, path in (ln.split() for ln in lines if ln)}


def verify(root: Path) -> list[str]:
    """Paths under ``root`` that are missing or differ from the manifest (empty when all is well)."""
    bad = []
    for relative, digest in expected_hashes().items():
        path = root / relative
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            bad.append(relative)
    return bad


def _download(url: str, target: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as response, target.open("wb") as out:
            shutil.copyfileobj(response, out)
    except (urllib.error.URLError, OSError) as exc:
        raise DataError(f"cannot download {url}: {exc} (offline? point TMSTREAM_DATA_DIR at a copy)") from exc


def fetch(out: Path) -> int:
    """Download, unpack and verify into ``out``; returns the number of verified files."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "data.zip"
        _download(DATA_URL, archive)
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.namelist():
                parts = Path(member).parts
                if len(parts) >= 2 and parts[-2] in {"train", "test"} and member.endswith(".npy"):
                    target = out / parts[-2] / parts[-1]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(bundle.read(member))
        _download(LABELS_URL, out / "labeled_anomalies.csv")
    bad = verify(out)
    if bad:
        raise DataError(f"{len(bad)} downloaded file(s) fail the checksum, e.g. {bad[0]}")
    return len(expected_hashes())
