"""Which ``prune.*`` config section each pruning method reads.

Free of torch and pandas, so the Snakefile can import it while it builds the DAG.
"""

from __future__ import annotations

# methods whose config section has another name: variants share their family's section
SECTION_OF = {"entropy": "attention", "sep": "attention", "seven_heads": "seven"}


def method_params(config: dict, method: str) -> dict:
    """The method's own config section (``prune.<method>``, or the section it shares)."""
    prune = config["prune"]
    section = prune.get(method)
    if section is None:
        section = prune.get(SECTION_OF.get(method, method))
    return dict(section or {})
