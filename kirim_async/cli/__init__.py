"""The ``kirim-labels`` command: seed labels from CSV or JSON Lines.

    kirim-labels seed labels.csv --report report.jsonl
    kirim-labels seed labels.csv --sandbox          # against an in-process fake server

``_command`` parses the options and runs the job (the only module that prints or
exits), ``_seedfile`` reads seed files and writes and reads reports, ``_progress``
shows progress and the summary.
"""

from __future__ import annotations

from ._command import main

__all__ = ["main"]
