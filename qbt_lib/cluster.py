"""A Dask cluster of separate OS processes on this machine, for tests, ``make cluster`` and
the scale-out benchmark: ``dask scheduler`` and ``dask worker`` started from Dask's own
command line, on 127.0.0.1 and free ports (the dashboard too), each worker in its own
working directory with its own ``--local-directory`` and ``QBT_CACHE_DIR``.

Nothing here is cluster code of our own: it only launches and stops Dask's processes. Each
process runs in its own process group, killed when the cluster stops (also when a test that
uses it fails), and gets SIGTERM if the process that started it dies without cleaning up. ``hide=[path, ...]`` starts each worker in its own mount namespace with an
empty tmpfs over those paths (``unshare -m``, root only), so a test can prove that workers
need nothing from the client's disk but the output location.

``python -m qbt_lib.cluster`` (``make cluster``) starts one and waits for Ctrl-C.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

__all__ = ["ProcessCluster", "can_hide_paths", "free_port"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dask_cli() -> list[str]:
    exe = Path(sys.executable).with_name("dask")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "dask"]


def can_hide_paths() -> bool:
    """Whether workers can be started with paths hidden (``unshare -m`` as root)."""
    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    try:
        r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            "mount -t tmpfs qbt-probe /mnt && umount /mnt"],
                           capture_output=True, timeout=20)
        return r.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


class ProcessCluster:
    """``dask scheduler`` + ``n_workers`` x ``dask worker`` (one process, ``nthreads``
    threads each, under a nanny that restarts a killed worker), as separate processes.

    Use as a context manager; ``address`` is the scheduler's ``tcp://127.0.0.1:PORT``,
    ``scheduler_file`` its scheduler file, ``dashboard`` the dashboard's URL."""

    def __init__(self, n_workers: int = 2, nthreads: int = 1, root: str | os.PathLike | None = None,
                 hide: Sequence[str | os.PathLike] = (), memory_limit: str = "auto",
                 env: dict | None = None, start_timeout: float = 120.0):
        self.n_workers, self.nthreads = int(n_workers), int(nthreads)
        self._own_root = root is None
        self.root = (Path(root).resolve() if root is not None       # the processes run elsewhere
                     else Path(tempfile.mkdtemp(prefix="qbt-cluster-")))
        self.hide = [str(Path(p).resolve()) for p in hide]
        self.memory_limit = memory_limit
        self.env = dict(env or {})
        self.start_timeout = start_timeout
        self.port = free_port()
        self.dashboard_port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.dashboard = f"http://127.0.0.1:{self.dashboard_port}/status"
        self.scheduler_file = str(self.root / "scheduler.json")
        self.procs: dict[str, subprocess.Popen] = {}

    # ----------------------------------------------------------------- life cycle
    def __enter__(self) -> "ProcessCluster":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _spawn(self, name: str, cmd: list[str], cwd: Path, env: dict) -> subprocess.Popen:
        cwd.mkdir(parents=True, exist_ok=True)
        log = open(self.root / f"{name}.log", "ab")
        p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True,
                             preexec_fn=_die_with_parent)
        log.close()
        self.procs[name] = p
        return p

    def start(self) -> None:
        base = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        self._spawn("scheduler", [*_dask_cli(), "scheduler", "--host", "127.0.0.1",
                                  "--port", str(self.port), "--dashboard-address",
                                  f"127.0.0.1:{self.dashboard_port}", "--scheduler-file",
                                  self.scheduler_file, "--no-show"],
                    self.root / "scheduler", base)
        for i in range(self.n_workers):
            self.start_worker(i)
        self.wait_for_workers(self.n_workers, self.start_timeout)

    def start_worker(self, i: int) -> None:
        wdir = self.root / f"worker-{i}"
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1",
               "QBT_CACHE_DIR": str(wdir / "cache"), "OMP_NUM_THREADS": str(self.nthreads)}
        cmd = [*_dask_cli(), "worker", self.address, "--name", f"worker-{i}", "--nworkers", "1",
               "--nthreads", str(self.nthreads), "--host", "127.0.0.1",
               "--dashboard-address", "127.0.0.1:0", "--local-directory", str(wdir / "local"),
               "--memory-limit", self.memory_limit, "--death-timeout", "60"]
        if self.hide:
            mounts = " && ".join(f"mkdir -p '{p}' && mount -t tmpfs qbt-hidden '{p}'"
                                 for p in self.hide)
            cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                   f'{mounts} && exec "$@"', "sh", *cmd]
        self._spawn(f"worker-{i}", cmd, wdir, env)

    def client(self, **kw):
        from distributed import Client
        return Client(self.address, **kw)

    def wait_for_workers(self, n: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [k for k, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"dask process(es) {dead} exited; see logs in {self.root}:\n"
                                   + self.logs(dead))
            try:
                with self.client(timeout="5s") as c:
                    c.wait_for_workers(n, timeout=max(1.0, deadline - time.monotonic()))
                    return
            except (OSError, TimeoutError):
                time.sleep(0.3)
        raise TimeoutError(f"the cluster at {self.address} did not get {n} worker(s) in "
                           f"{timeout:.0f} s; logs in {self.root}:\n" + self.logs())

    def logs(self, names: Sequence[str] | None = None, tail: int = 3000) -> str:
        out = []
        for name in names or list(self.procs):
            f = self.root / f"{name}.log"
            if f.exists():
                out.append(f"--- {name}\n{f.read_text(errors='replace')[-tail:]}")
        return "\n".join(out)

    def worker_pids(self) -> dict[str, int]:
        """``{worker address: pid}`` of the worker processes (not their nannies)."""
        with self.client(timeout="10s") as c:
            return c.run(os.getpid)

    def kill_worker(self, which: int = 0) -> int:
        """SIGKILL one worker process (its nanny starts a fresh one); returns its pid."""
        pids = sorted(self.worker_pids().items())
        pid = pids[which % len(pids)][1]
        os.kill(pid, signal.SIGKILL)
        return pid

    def kill_all(self) -> None:
        """The whole cluster gone at once: SIGKILL every process group."""
        for p in self.procs.values():
            _kill_group(p)

    def stop(self) -> None:
        for p in reversed(list(self.procs.values())):
            _kill_group(p, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in self.procs.values():
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _kill_group(p)
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:  # pragma: no cover
                pass
        self.procs.clear()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)


def _die_with_parent() -> None:
    """In the child, before exec (Linux): SIGTERM it when the process that started it dies,
    so a client killed without cleanup (SIGKILL, a CI timeout) leaves no cluster behind."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def _kill_group(p: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qbt_lib.cluster",
                                 description="Start a Dask scheduler and workers as separate "
                                             "processes on 127.0.0.1; Ctrl-C stops them.")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="threads per worker")
    ap.add_argument("--memory-limit", default="auto")
    ap.add_argument("--dir", default=None, help="working directory (default: a temp dir)")
    a = ap.parse_args(argv)
    with ProcessCluster(a.workers, a.threads, root=a.dir, memory_limit=a.memory_limit) as cl:
        print(json.dumps({"scheduler": cl.address, "dashboard": cl.dashboard,
                          "scheduler_file": cl.scheduler_file, "logs": str(cl.root)}, indent=1))
        print(f"\nuse it: papermill notebooks/synth.ipynb out.ipynb -p backend dask "
              f"-p scheduler {cl.address}\nCtrl-C stops the cluster.", flush=True)
        try:
            while all(p.poll() is None for p in cl.procs.values()):
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
