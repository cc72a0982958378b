"""The report stage: the paper's tables and the claims file (:mod:`.tables`, compared by the
paired bootstrap of :mod:`.stats`), and its figures (:mod:`.figures`), computed from result
files only.
"""

from .tables import REPORTED, Results, Settings, claims, load_results, table4, table5, table6

__all__ = ["REPORTED", "Results", "Settings", "claims", "load_results", "table4", "table5", "table6"]
