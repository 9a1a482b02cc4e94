"""``make lab``: JupyterLab from the project's ``.venv`` on the project root, private by default.

``python -m qbt_lib.lab [--ip IP] [--port PORT] [extra jupyter lab arguments]`` starts
``jupyter lab`` with the ``qbt`` kernel as the default kernel, listening on 127.0.0.1 with a
fresh random token (``--allow-root`` when run as root, as in containers and CI), and prints
the URL with its token. Listening wider is an explicit choice: ``--ip 0.0.0.0`` (``make lab
LAB_IP=0.0.0.0``); the token is still required. The browser test starts the server through
:func:`lab_command` too, so it tests what ``make lab`` runs.
"""
from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from . import paths

KERNEL = "qbt"


def lab_env(token: str, base: dict | None = None) -> dict:
    """The server's environment: the token goes in ``JUPYTER_TOKEN``, not on the command line
    (where any local user could read it with ``ps``)."""
    return {**(os.environ if base is None else base), "JUPYTER_TOKEN": token}


def lab_command(port: int, ip: str = "127.0.0.1", root: str | os.PathLike = paths.PROJ_ROOT,
                extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The ``jupyter lab`` command line (the ``jupyter`` beside this interpreter); run it with
    :func:`lab_env`'s environment, which holds the token."""
    jupyter = Path(sys.executable).with_name("jupyter")
    cmd = [str(jupyter) if jupyter.exists() else "jupyter", "lab", "--no-browser",
           f"--ServerApp.ip={ip}", f"--ServerApp.port={int(port)}",
           "--ServerApp.port_retries=0",          # the printed URL is the one it listens on
           f"--ServerApp.root_dir={Path(root).resolve()}",
           f"--MappingKernelManager.default_kernel_name={KERNEL}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return cmd + list(extra)


def lab_url(port: int, token: str, ip: str = "127.0.0.1", path: str = "lab/tree/notebooks"
            ) -> str:
    host = "127.0.0.1" if ip in ("", "0.0.0.0", "::") else ip
    return f"http://{host}:{int(port)}/{path}?token={token}"


def strip(path: str | os.PathLike) -> bool:
    """Clear a notebook's outputs, execution counts and saved widget state in place (the
    notebooks under ``notebooks/`` are committed output-free); returns whether it changed."""
    import nbformat
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    nb.metadata.pop("widgets", None)
    after = nbformat.writes(nb)
    if after != before:
        Path(path).write_text(after + "\n" if not after.endswith("\n") else after)
    return after != before


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["strip"]:            # make strip
        for p in argv[1:] or sorted(map(str, paths.NOTEBOOKS.glob("*.ipynb"))):
            if strip(p):
                print(f"stripped {p}")
        return
    ap = argparse.ArgumentParser(prog="make lab", description=__doc__.split("\n\n")[0])
    ap.add_argument("--ip", default=os.environ.get("LAB_IP") or "127.0.0.1",
                    help="address to listen on (default 127.0.0.1: this machine only)")
    ap.add_argument("--port", type=int, default=int(os.environ.get("LAB_PORT") or 8888))
    args, extra = ap.parse_known_args(argv)
    token = os.environ.get("LAB_TOKEN") or secrets.token_hex(24)
    cmd = lab_command(args.port, args.ip, extra=extra)
    print(f"JupyterLab (qbt kernel) on {args.ip}:{args.port}; open:\n\n"
          f"    {lab_url(args.port, token, args.ip)}\n", flush=True)
    if args.ip not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: listening on {args.ip}, reachable from other machines "
              "(the token above is still required)", flush=True)
    os.execvpe(cmd[0], cmd, lab_env(token))   # becomes the server: Ctrl-C stops it


if __name__ == "__main__":
    main()
