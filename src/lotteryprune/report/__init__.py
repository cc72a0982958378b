"""The report stage: the paper's tables and the claims file (:mod:`.tables`), and its
figures (:mod:`.figures`), computed from result files only.
"""

from .tables import REPORTED, aggregate, claims, load_finetune, mean_ci, reference_f1, table4, table5, table6

__all__ = ["REPORTED", "aggregate", "claims", "load_finetune", "mean_ci", "reference_f1", "table4", "table5", "table6"]
