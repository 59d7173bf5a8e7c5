"""Reporting of evaluation runs: figures (the paper's Fig. 4-7), tables and a self-contained
HTML report with a gallery of maps (``docs/evaluation.md``).

>>> from mlfem.reporting import write_report
>>> write_report("runs/salicon")          # doctest: +SKIP
PosixPath('runs/salicon/report.html')
"""

from mlfem.reporting.html import ReportError, write_report
from mlfem.reporting.tables import headline_table

__all__ = ["ReportError", "headline_table", "write_report"]
