"""Readers: one module per source family, each returning a `SourceData`."""

from recalign.data.readers.amazon import read_amazon
from recalign.data.readers.base import SourceData
from recalign.data.readers.custom import CustomColumns, read_custom
from recalign.data.readers.movielens import read_movielens

__all__ = ["CustomColumns", "SourceData", "read_amazon", "read_custom", "read_movielens"]
