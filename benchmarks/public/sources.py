"""Where the public data sets live, and what their authors' licences allow.

Two places: copies bundled with jaxlaws (``benchmarks/data/public/``, only data under a licence that allows it,
trimmed to what the benchmarks use) and the shared read-only originals (``$JAXLAWS_PUBLIC_DATA``, default
``../shared/data/public`` next to the repository). Data without a licence file (Chinchilla, Data Mixing Laws)
are never copied: they are read from the originals, and a loader raises :class:`DataUnavailable` when they are
absent, so benchmarks and tests skip them cleanly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

BUNDLED = Path(__file__).resolve().parents[1] / "data" / "public"
_DEFAULT_SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "public"


class Source(NamedTuple):
    name: str
    citation: str
    url: str
    licence: str
    bundled: bool  # whether jaxlaws ships a copy

    def line(self) -> str:
        where = "bundled copy" if self.bundled else "read from the shared originals, not bundled"
        return f"{self.name}: {self.citation} ({self.url}); licence: {self.licence}; {where}"


CHINCHILLA = Source(
    "Chinchilla (Epoch replication)",
    "Besiroglu et al. 2024, 'Chinchilla Scaling: A replication attempt'; points extracted from "
    "Hoffmann et al. 2022 Fig. 4",
    "github.com/epoch-research/analyzing-chinchilla",
    "no licence file (data extracted from a published figure)",
    False,
)
DML = Source(
    "Data Mixing Laws runs",
    "Ye et al. 2024, 'Data Mixing Laws'",
    "github.com/yegcjs/mixinglaws data/",
    "no licence file (published experimental results)",
    False,
)
REGMIX = Source(
    "RegMix 1M runs",
    "Liu et al. 2024, 'RegMix: Data Mixture as Regression'",
    "github.com/sail-sg/regmix data/",
    "MIT",
    True,
)
SCALEBENCH = Source(
    "scalebench domain-mixture split",
    "PlanarG/active-sl, built from the Data Mixing Laws runs",
    "github.com/PlanarG/active-sl benchmark/dataset/domain_mixture_scaling_law",
    "MIT (c) 2026 Sijie Li",
    True,
)


class DataUnavailable(FileNotFoundError):
    """A public data set that jaxlaws may not bundle is not present on this machine."""


def shared_dir() -> Path:
    """The shared originals: ``$JAXLAWS_PUBLIC_DATA`` if set, else ``../shared/data/public``."""
    return Path(os.environ.get("JAXLAWS_PUBLIC_DATA", _DEFAULT_SHARED))


def shared_file(source: Source, rel: str) -> Path:
    """Path of ``rel`` under the shared originals, or :class:`DataUnavailable` naming what is missing."""
    path = shared_dir() / rel
    if not path.is_file():
        raise DataUnavailable(
            f"{source.name} is not bundled (licence: {source.licence}) and {path} is absent; "
            "set JAXLAWS_PUBLIC_DATA to the folder holding the public data to use it"
        )
    return path
