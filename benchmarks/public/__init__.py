"""Loaders for the public data sets the jaxlaws benchmarks are judged on (issue 9).

Each returns tidy arrays or DataFrames plus a source + licence line. RegMix and the scalebench split are MIT and
bundled (``benchmarks/data/public``); Chinchilla and the Data Mixing Laws runs carry no licence, so they are read
from ``$JAXLAWS_PUBLIC_DATA`` (default ``../shared/data/public``) and raise :class:`DataUnavailable` if absent.
"""

from .chinchilla import load_chinchilla
from .dml import load_dml
from .regmix import load_regmix
from .scalebench import load_scalebench
from .sources import DataUnavailable

__all__ = ["DataUnavailable", "load_chinchilla", "load_dml", "load_regmix", "load_scalebench"]
