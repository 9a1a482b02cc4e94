"""``python -m qbt_lib.report run|render|all|golden|readme [--only NAME ...]``."""
from __future__ import annotations

import argparse

from .notebooks import NOTEBOOKS, available_notebooks, golden, run_notebooks
from .page import render
from .readme import write_readme


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qbt_lib.report")
    ap.add_argument("action", choices=["run", "render", "golden", "all", "readme"])
    ap.add_argument("--only", nargs="*", default=None, help="notebooks to execute")
    args = ap.parse_args(argv)
    names = available_notebooks(args.only or NOTEBOOKS)
    rc = 0
    if args.action in ("run", "all"):
        status = run_notebooks(names)
        rc = int(any(s != "ok" for s in status.values()))
    if args.action == "golden":
        golden(names)
    if args.action in ("render", "all"):
        render()
    if args.action == "readme":
        write_readme()
    return rc

