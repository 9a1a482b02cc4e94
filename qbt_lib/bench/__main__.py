"""``python -m qbt_lib.bench <workload>|all [--quick | --size tiny|quick|full] [--tag TAG] [--out DIR]``."""
from __future__ import annotations

import argparse
import importlib
import sys

from . import SIZES, WORKLOADS, Bench


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qbt_lib.bench",
                                 description="Time the reference and fast paths of a workload "
                                             "in one run and print the ratios.")
    ap.add_argument("workload", choices=[*WORKLOADS, "all"])
    ap.add_argument("--quick", action="store_true", help="small sizes (the report's)")
    ap.add_argument("--size", choices=SIZES, default=None,
                    help="tiny (seconds per workload) | quick (= --quick) | full (default)")
    ap.add_argument("--tag", default=None, help="suffix of the JSON name, e.g. h100")
    ap.add_argument("--out", default=None, help="output folder (default outputs/bench)")
    args = ap.parse_args(argv)
    names = WORKLOADS if args.workload == "all" else (args.workload,)
    for name in names:
        try:
            mod = importlib.import_module(f"qbt_lib.{name}.bench")
        except ModuleNotFoundError as e:
            if args.workload == "all" and e.name in (f"qbt_lib.{name}", f"qbt_lib.{name}.bench"):
                print(f"[{name}] no benchmark yet, skipped", file=sys.stderr)
                continue
            raise
        size = args.size or ("quick" if args.quick else "full")
        print(f"== {name} ({size})", flush=True)
        b = Bench(name, size=size, tag=args.tag, out_dir=args.out)
        mod.run(b)
        b.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
