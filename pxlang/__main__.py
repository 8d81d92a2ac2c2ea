"""``python -m pxlang …``: the ``pxlang`` command, for a venv whose scripts are not on PATH."""

from pxlang.cli import entry

entry()
