"""A throwaway one-node Slurm cluster for tests.

``start_cluster(workdir)`` installs Debian's ``slurm-wlm`` and ``munge`` when
they are missing, makes sure ``munged`` runs, writes a private ``slurm.conf``
(own ports, state, spool and logs inside ``workdir``), starts ``slurmctld`` and
``slurmd`` and waits until the node is idle. ``Cluster.stop()`` cancels what is
left in the queue, shuts both daemons down and kills any step daemon or job
process that outlived them.

Command line::

    python slurm_cluster.py install    # install the packages when missing (.ci/test runs it)
    python slurm_cluster.py up DIR     # start, print the SLURM_CONF export line
    python slurm_cluster.py down DIR   # stop the cluster recorded in DIR
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

SLURM_PACKAGES: tuple[str, ...] = ("slurm-wlm", "munge")
MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_RUN_DIR = Path("/run/munge")
MUNGE_PID_FILE = MUNGE_RUN_DIR / "munged.pid"
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
STATE_FILE_NAME = "cluster.json"
CLUSTER_NAME = "cigolden"
PARTITION = "debug"
MIN_JOB_AGE_S = 60
KILL_WAIT_S = 2
# slurmstepd creates a unix socket "<spool>/<node>_<jobid>.<stepid>" for every
# step; sun_path holds 107 characters, the step id takes up to 10 digits.
SOCKET_PATH_MAX = 107
JOB_ID_DIGITS = 7


class ClusterUnavailable(RuntimeError):
    """The cluster cannot be provided here (not root, install failed, ...)."""


class ClusterStartError(ClusterUnavailable):
    """The daemons were started but the cluster did not become usable."""


@dataclass
class Cluster:
    workdir: Path
    conf_path: Path
    node_name: str
    partition: str
    cluster_name: str
    slurmctld_port: int
    slurmd_port: int
    slurmctld_pid: int
    slurmd_pid: int
    munged_pid: int | None
    jobcomp_path: Path
    log_dir: Path
    installed_packages: bool = False
    startup_seconds: float = 0.0
    env: dict[str, str] = field(default_factory=dict)
    _procs: list[subprocess.Popen[bytes]] = field(
        default_factory=list, repr=False, compare=False, metadata={"persist": False}
    )

    def client_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (default ``os.environ``) without ``SLURM_*`` plus ``env``."""
        source = os.environ if base is None else base
        merged = {k: v for k, v in source.items() if not k.startswith("SLURM_")}
        merged.update(self.env)
        return merged

    def run(
        self,
        args: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 60.0,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a Slurm client command against this cluster."""
        return subprocess.run(
            list(args),
            env=self.client_env(),
            cwd=cwd,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def node_state(self) -> str:
        result = self.run(["sinfo", "-h", "-N", "-n", self.node_name, "-o", "%T"], check=False)
        return result.stdout.strip() if result.returncode == 0 else ""

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel all jobs, stop the daemons, kill step daemons and job processes left."""
        deadline = time.monotonic() + timeout
        if _pid_matches(self.slurmctld_pid, "slurmctld", self.conf_path):
            self._cancel_all_jobs(deadline)
            self.run(["scontrol", "shutdown"], check=False, timeout=10)
        for pid, name in ((self.slurmd_pid, "slurmd"), (self.slurmctld_pid, "slurmctld")):
            _terminate(pid, name, self.conf_path, max(1.0, deadline - time.monotonic()))
        _kill_leftovers(self.workdir, self.conf_path)
        for proc in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=1)
        self._procs.clear()
        if self.munged_pid is not None:
            _terminate(self.munged_pid, "munged", None, 5.0)
            self.munged_pid = None
        self.slurmctld_pid = self.slurmd_pid = 0
        state_file = self.workdir / STATE_FILE_NAME
        if state_file.exists():
            state_file.unlink()

    def _cancel_all_jobs(self, deadline: float) -> None:
        listed = self.run(["squeue", "-h", "-o", "%A"], check=False, timeout=10)
        job_ids = listed.stdout.split()
        if not job_ids:
            return
        self.run(["scancel", *job_ids], check=False, timeout=10)
        while time.monotonic() < deadline:
            left = self.run(["squeue", "-h", "-t", "all", "-o", "%A %T"], check=False, timeout=10)
            active = [
                line
                for line in left.stdout.splitlines()
                if line.split()[-1]
                in {"RUNNING", "PENDING", "COMPLETING", "CONFIGURING", "SUSPENDED"}
            ]
            if left.returncode != 0 or not active:
                return
            time.sleep(0.5)

    def save(self) -> None:
        data: dict[str, object] = {}
        for item in fields(self):
            if not item.metadata.get("persist", True):
                continue
            value = getattr(self, item.name)
            data[item.name] = str(value) if isinstance(value, Path) else value
        (self.workdir / STATE_FILE_NAME).write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def load(cls, workdir: Path) -> Cluster:
        data = json.loads((workdir / STATE_FILE_NAME).read_text())
        for key in ("workdir", "conf_path", "jobcomp_path", "log_dir"):
            data[key] = Path(data[key])
        return cls(**data)


def start_cluster(
    workdir: Path,
    *,
    timeout: float = 60.0,
    install: bool = True,
    gpus: int = 0,
) -> Cluster:
    """Start a one-node cluster whose files all live in ``workdir``.

    ``gpus`` > 0 declares that many ``gpu`` GRES on the node, backed by
    stand-in device files in ``workdir/dev``, so that ``--gpus=N`` and
    ``--gres=gpu:N`` requests are accepted, scheduled and get
    ``CUDA_VISIBLE_DEVICES``. A cluster still recorded in ``workdir`` (from a
    run that never called ``stop()``) is stopped first.

    Raises ``ClusterUnavailable`` when this machine cannot host it (the
    message is meant as a skip reason) and ``ClusterStartError`` (a subclass)
    when the daemons do not come up within ``timeout`` seconds.
    """
    started = time.monotonic()
    if os.geteuid() != 0:
        raise ClusterUnavailable("a local Slurm cluster needs root (slurmd runs jobs as any user)")
    if not install and not packages_present():
        raise ClusterUnavailable("slurmctld/munged are not installed")
    installed = install_packages()
    for tool in ("slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "munged", "munge"):
        if shutil.which(tool) is None:
            raise ClusterUnavailable(
                f"{tool} not found on PATH after installing {', '.join(SLURM_PACKAGES)}"
            )

    workdir = workdir.resolve()
    node_name = socket.gethostname().split(".")[0]
    dirs = {name: workdir / name for name in ("state", "spool", "log", "run", "dev")}
    longest_socket = len(f"{dirs['spool']}/{node_name}_") + JOB_ID_DIGITS + len(".4294967294")
    if longest_socket > SOCKET_PATH_MAX:
        raise ClusterUnavailable(
            f"workdir path too long for slurmstepd's unix sockets under {dirs['spool']}"
        )
    if (workdir / STATE_FILE_NAME).exists():
        Cluster.load(workdir).stop()

    munged_pid = _ensure_munged()
    for path in dirs.values():
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)

    ctld_port, slurmd_port = _free_ports(2)
    conf_path = workdir / "slurm.conf"
    jobcomp_path = dirs["log"] / "jobcomp.txt"
    conf_path.write_text(
        render_slurm_conf(
            node_name=node_name,
            cpus=os.cpu_count() or 1,
            real_memory_mb=_real_memory_mb(),
            slurmctld_port=ctld_port,
            slurmd_port=slurmd_port,
            state_dir=dirs["state"],
            spool_dir=dirs["spool"],
            log_dir=dirs["log"],
            run_dir=dirs["run"],
            jobcomp_path=jobcomp_path,
            gpus=gpus,
        )
    )
    gres_path = workdir / "gres.conf"
    if gpus > 0:
        devices = _fake_gpu_devices(workdir / "dev", gpus)
        gres_path.write_text(f"NodeName={node_name} Name=gpu File={devices}\n")
    elif gres_path.exists():
        gres_path.unlink()

    env = {"SLURM_CONF": str(conf_path)}
    daemon_env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    daemon_env.update(env)
    slurmctld = _spawn(
        ["slurmctld", "-D", "-f", str(conf_path)],
        dirs["state"],
        dirs["log"] / "slurmctld.stderr",
        daemon_env,
    )
    slurmd = _spawn(
        ["slurmd", "-D", "-f", str(conf_path), "-N", node_name],
        dirs["spool"],
        dirs["log"] / "slurmd.stderr",
        daemon_env,
    )
    cluster = Cluster(
        workdir=workdir,
        conf_path=conf_path,
        node_name=node_name,
        partition=PARTITION,
        cluster_name=CLUSTER_NAME,
        slurmctld_port=ctld_port,
        slurmd_port=slurmd_port,
        slurmctld_pid=slurmctld.pid,
        slurmd_pid=slurmd.pid,
        munged_pid=munged_pid,
        jobcomp_path=jobcomp_path,
        log_dir=dirs["log"],
        installed_packages=installed,
        env=env,
        _procs=[slurmctld, slurmd],
    )
    cluster.save()
    try:
        _wait_idle(cluster, {"slurmctld": slurmctld, "slurmd": slurmd}, time.monotonic() + timeout)
    except BaseException:
        cluster.stop()
        raise
    cluster.startup_seconds = round(time.monotonic() - started, 2)
    cluster.save()
    return cluster


def packages_present() -> bool:
    return shutil.which("slurmctld") is not None and shutil.which("munged") is not None


def install_packages() -> bool:
    """Install slurm-wlm and munge when they are missing; True when this call installed them."""
    if packages_present():
        return False
    _apt_install(SLURM_PACKAGES)
    return True


def render_slurm_conf(
    *,
    node_name: str,
    cpus: int,
    real_memory_mb: int,
    slurmctld_port: int,
    slurmd_port: int,
    state_dir: Path,
    spool_dir: Path,
    log_dir: Path,
    run_dir: Path,
    jobcomp_path: Path,
    gpus: int = 0,
) -> str:
    node_gres = f" Gres=gpu:{gpus}" if gpus > 0 else ""
    lines = [
        f"ClusterName={CLUSTER_NAME}",
        f"SlurmctldHost={node_name}(127.0.0.1)",
        "SlurmUser=root",
        "SlurmdUser=root",
        f"SlurmctldPort={slurmctld_port}",
        f"SlurmdPort={slurmd_port}",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"StateSaveLocation={state_dir}",
        f"SlurmdSpoolDir={spool_dir}",
        f"SlurmctldPidFile={run_dir / 'slurmctld.pid'}",
        f"SlurmdPidFile={run_dir / 'slurmd.pid'}",
        f"SlurmctldLogFile={log_dir / 'slurmctld.log'}",
        f"SlurmdLogFile={log_dir / 'slurmd.log'}",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SwitchType=switch/none",
        "MpiDefault=none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "SchedulerType=sched/backfill",
        "SchedulerParameters=batch_sched_delay=0",
        "SlurmdParameters=config_overrides",
        "ReturnToService=2",
        f"KillWait={KILL_WAIT_S}",
        f"MinJobAge={MIN_JOB_AGE_S}",
        "OverTimeLimit=0",
        "EnforcePartLimits=ALL",
        "InactiveLimit=0",
        "Waittime=0",
        "MailProg=/bin/true",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/filetxt",
        f"JobCompLoc={jobcomp_path}",
        *(["GresTypes=gpu"] if gpus > 0 else []),
        f"NodeName={node_name} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={real_memory_mb}"
        f"{node_gres} State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes={node_name} Default=YES MaxTime=INFINITE State=UP",
    ]
    return "\n".join(lines) + "\n"


def _fake_gpu_devices(dev_dir: Path, count: int) -> str:
    """Create ``count`` stand-in GPU device files; return their gres.conf range.

    Slurm drops file-less ``gpu`` GRES, so each one needs a device file: a
    character device aliasing /dev/null where mknod is allowed, else a plain
    file (slurmd then logs an error per file but still counts them).
    """
    for index in range(count):
        path = dev_dir / f"gpu{index}"
        try:
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        except OSError:
            path.touch()
    return str(dev_dir / "gpu0") if count == 1 else f"{dev_dir}/gpu[0-{count - 1}]"


def _apt_install(packages: Iterable[str]) -> None:
    """apt-get update + install, with service start-up in maintainer scripts blocked.

    Without a policy-rc.d the packages' scripts would try to start system-wide
    munged/slurmctld/slurmd on the default ports, so a temporary one that
    denies every start is put in place unless the machine already has one.
    """
    if shutil.which("apt-get") is None:
        raise ClusterUnavailable("slurmctld is missing and apt-get is not available to install it")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    lock = ["-o", "DPkg::Lock::Timeout=120"]
    commands = [
        ["apt-get", "update", "-qq", *lock],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *lock, *packages],
    ]
    own_policy = not POLICY_RC_D.exists()
    if own_policy:
        POLICY_RC_D.write_text("#!/bin/sh\nexit 101\n")
        POLICY_RC_D.chmod(0o755)
    try:
        for command in commands:
            try:
                result = subprocess.run(
                    command, env=env, capture_output=True, text=True, timeout=900
                )
            except subprocess.TimeoutExpired:
                raise ClusterUnavailable(f"{' '.join(command)} timed out") from None
            if result.returncode != 0:
                tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
                raise ClusterUnavailable(
                    f"{' '.join(command)} failed with exit code {result.returncode}:\n"
                    + "\n".join(tail)
                )
    finally:
        if own_policy:
            POLICY_RC_D.unlink(missing_ok=True)


def _munge_works() -> bool:
    try:
        result = subprocess.run(["munge", "-n"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _ensure_munged() -> int | None:
    """Make sure munged answers; return its pid if this call started it."""
    if _munge_works():
        return None
    try:
        munge_user = pwd.getpwnam("munge")
    except KeyError:
        raise ClusterUnavailable(
            "user 'munge' does not exist (is the munge package installed?)"
        ) from None
    if not MUNGE_KEY.exists():
        MUNGE_KEY.parent.mkdir(parents=True, exist_ok=True)
        MUNGE_KEY.write_bytes(os.urandom(1024))
        os.chown(MUNGE_KEY, munge_user.pw_uid, munge_user.pw_gid)
        MUNGE_KEY.chmod(0o400)
    for path in (MUNGE_RUN_DIR, Path("/var/log/munge"), Path("/var/lib/munge")):
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, munge_user.pw_uid, munge_user.pw_gid)
    munged = shutil.which("munged") or "/usr/sbin/munged"
    errors: list[str] = []
    for extra in ([], ["--force"]):
        result = subprocess.run(
            ["runuser", "-u", "munge", "--", munged, *extra],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if result.returncode != 0:
            errors.append(result.stderr.strip())
        for _ in range(50):
            if _munge_works():
                return _read_pid(MUNGE_PID_FILE)
            time.sleep(0.1)
    raise ClusterUnavailable("munged could not be started: " + " | ".join(e for e in errors if e))


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _free_ports(count: int) -> list[int]:
    sockets: list[socket.socket] = []
    try:
        while len(sockets) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("0.0.0.0", 0))
            port = sock.getsockname()[1]
            if port in (6817, 6818):
                sock.close()
                continue
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _real_memory_mb() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return max(256, int(line.split()[1]) // 1024 // 2)
    except OSError:
        pass
    return 1024


def _spawn(
    command: list[str], cwd: Path, stderr_path: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    with stderr_path.open("wb") as stderr:
        return subprocess.Popen(
            command,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


def _wait_idle(
    cluster: Cluster, procs: Mapping[str, subprocess.Popen[bytes]], deadline: float
) -> None:
    state = ""
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise ClusterStartError(
                    f"{name} exited with code {proc.returncode} during start-up\n"
                    + _log_tails(cluster)
                )
        state = cluster.node_state()
        if state == "idle":
            return
        if state.startswith(("inval", "drain")):
            reason = cluster.run(["sinfo", "-h", "-R", "-o", "%E"], check=False).stdout.strip()
            raise ClusterStartError(
                f"node {cluster.node_name} is {state}: {reason}\n" + _log_tails(cluster)
            )
        time.sleep(0.25)
    raise ClusterStartError(
        f"node {cluster.node_name} not idle in time (last state {state!r})\n" + _log_tails(cluster)
    )


def _log_tails(cluster: Cluster, lines: int = 15) -> str:
    parts: list[str] = []
    for name in ("slurmctld.log", "slurmctld.stderr", "slurmd.log", "slurmd.stderr"):
        path = cluster.log_dir / name
        if path.exists():
            text = path.read_text(errors="replace").strip().splitlines()[-lines:]
            if text:
                parts.append(f"--- {path} ---\n" + "\n".join(text))
    return "\n".join(parts)


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _pid_matches(pid: int, name: str, conf_path: Path | None) -> bool:
    if pid <= 0:
        return False
    args = _cmdline(pid)
    if not args or not Path(args[0].split(":")[0]).name.startswith(name):
        return False
    return conf_path is None or str(conf_path) in args


def _gone(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    stat_fields = _proc_stat(pid)
    return not stat_fields or stat_fields[0] in {"Z", "X"}


def _terminate(pid: int, name: str, conf_path: Path | None, grace: float) -> None:
    if not _pid_matches(pid, name, conf_path):
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        end = time.monotonic() + wait
        while time.monotonic() < end:
            if _gone(pid):
                return
            time.sleep(0.1)


def _proc_stat(pid: int) -> list[str]:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return text.rsplit(")", 1)[1].split()


def _all_pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _leftover_pids(workdir: Path, conf_path: Path) -> list[int]:
    """Step daemons of this cluster and every process of the jobs they ran.

    slurmstepd inherits slurmd's working directory (the spool dir here) and
    starts a session that all job tasks share; job processes also carry this
    cluster's SLURM_CONF together with SLURM_JOB_ID in their environment.
    """
    spool = str(workdir / "spool")
    own = os.getpid()
    steps: list[int] = []
    sessions: set[str] = set()
    for pid in _all_pids():
        args = _cmdline(pid)
        if not args or not args[0].startswith("slurmstepd"):
            continue
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if cwd == spool or cwd.startswith(spool + "/"):
            steps.append(pid)
            step_fields = _proc_stat(pid)
            if len(step_fields) > 3:
                sessions.add(step_fields[3])
    conf_marker = f"SLURM_CONF={conf_path}".encode()
    tasks: list[int] = []
    for pid in _all_pids():
        if pid == own or pid in steps:
            continue
        task_fields = _proc_stat(pid)
        if len(task_fields) > 3 and task_fields[3] in sessions:
            tasks.append(pid)
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if conf_marker in environ and any(item.startswith(b"SLURM_JOB_ID=") for item in environ):
            tasks.append(pid)
    return tasks + steps


def _kill_leftovers(workdir: Path, conf_path: Path) -> None:
    for _ in range(3):
        pids = _leftover_pids(workdir, conf_path)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        end = time.monotonic() + 5
        while time.monotonic() < end and not all(_gone(pid) for pid in pids):
            time.sleep(0.1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a throwaway one-node Slurm cluster.")
    parser.add_argument("action", choices=("install", "up", "down"))
    parser.add_argument("workdir", type=Path, nargs="?", default=Path("slurm-cluster"))
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument(
        "--gpus",
        type=int,
        default=0,
        help="gpu GRES to declare on the node (stand-in device files)",
    )
    args = parser.parse_args(argv)
    workdir: Path = args.workdir
    if args.action == "install":
        if os.geteuid() != 0:
            print("installing slurm-wlm and munge needs root; skipped", file=sys.stderr)
            return 0
        try:
            installed = install_packages()
        except ClusterUnavailable as exc:
            print(f"cannot install {', '.join(SLURM_PACKAGES)}: {exc}", file=sys.stderr)
            return 2
        print(f"{', '.join(SLURM_PACKAGES)} {'installed' if installed else 'already installed'}")
        return 0
    if args.action == "up":
        workdir.mkdir(parents=True, exist_ok=True)
        if (workdir / STATE_FILE_NAME).exists():
            print(f"a cluster is already recorded in {workdir}; run 'down' first", file=sys.stderr)
            return 1
        try:
            cluster = start_cluster(workdir, timeout=args.timeout, gpus=args.gpus)
        except ClusterUnavailable as exc:
            print(f"cannot start cluster: {exc}", file=sys.stderr)
            return 2
        print(
            f"cluster up in {cluster.startup_seconds}s"
            f" (node {cluster.node_name}, partition {cluster.partition})"
        )
        print(f"export SLURM_CONF={cluster.conf_path}")
        return 0
    if not (workdir / STATE_FILE_NAME).exists():
        print(f"no cluster recorded in {workdir}", file=sys.stderr)
        return 1
    Cluster.load(workdir.resolve()).stop()
    print("cluster stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
