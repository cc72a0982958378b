"""Genetic lottery head pruning of transformer encoders (Bluteau & Gras, 2025) and its competitors.

The library holds all the logic; the Snakemake scripts in workflow/scripts only read
files, call one function from here, and write files.
"""

__version__ = "0.1.0"
