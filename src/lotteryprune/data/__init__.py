"""The data stage: fetch and verify raw sources (:mod:`.fetch`), normalise them to one
schema (:mod:`.formats`), split (:mod:`.split`).

Schema of every normalised table: ``id`` (str, unique), ``text`` (str, non-empty),
``label`` (0/1 for labelled data, null for extra text), ``source`` (str).
"""

from .fetch import DataError, fetch, sha256_of, verify
from .formats import normalise
from .split import split

__all__ = ["DataError", "fetch", "normalise", "sha256_of", "split", "verify"]
