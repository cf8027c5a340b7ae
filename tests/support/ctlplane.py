"""A real local Kubernetes control plane (etcd + kube-apiserver) without Docker.

Used by the e2e pytest fixtures (`tests/e2e/conftest.py`), by `make cluster-up` / `make cluster-down`
(`python -m support.ctlplane up|down --dir .dev`) and by the benchmarks.

The binaries come from `hack/build-control-plane.sh` (built once from the Go module proxy and cached).
The plane listens on free loopback ports with TLS, a client-certificate admin user (group
`system:masters`) and RBAC authorization, and writes a kubeconfig with embedded credentials.
Processes are recorded in `<dir>/state.json` and stopped by PID (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import functools
import ipaddress
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "hack" / "build-control-plane.sh"


class ControlPlaneUnavailable(RuntimeError):
    """The control-plane binaries are missing and could not be built; the message says what is missing."""


def ensure_binaries() -> dict[str, Path]:
    """Run the (cached, idempotent) build script and return the paths of `KUBE_APISERVER` and `ETCD`."""
    if os.environ.get("TEST_ASSET_KUBE_APISERVER") and os.environ.get("TEST_ASSET_ETCD"):
        return {
            "KUBE_APISERVER": Path(os.environ["TEST_ASSET_KUBE_APISERVER"]),
            "ETCD": Path(os.environ["TEST_ASSET_ETCD"]),
        }
    proc = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ControlPlaneUnavailable(
            "the test control plane (kube-apiserver + etcd) could not be built by hack/build-control-plane.sh; "
            "it needs Go 1.26+ and the Go module proxy. Last output:\n" + proc.stderr[-3000:]
        )
    paths: dict[str, Path] = {}
    for line in proc.stdout.splitlines():
        if "=" in line:
            name, _, value = line.partition("=")
            paths[name.strip()] = Path(value.strip())
    for name in ("KUBE_APISERVER", "ETCD"):
        if name not in paths or not paths[name].exists():
            raise ControlPlaneUnavailable(f"{name} binary missing after the build: {paths.get(name)}")
    return paths


_handed_out: set[int] = set()


@functools.cache
def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (where outgoing connections take their source ports)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _worker_slot() -> tuple[int, int]:
    """(index, count) of this pytest-xdist worker (`gw<index>` of `count`); (0, 1) in any other process."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    try:
        return int(worker.removeprefix("gw")), max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    except ValueError:
        return 0, 1


def free_port() -> int:
    """Return a TCP port that is free on every address right now, chosen below the ephemeral range.

    A port the kernel picks (a bind to port 0) lies in the ephemeral range, where every outgoing connection
    also takes its source port: between this call and the server's own bind, any client connection on the
    machine can take it, and the server (an operator's health port, once) fails with "address already in
    use". Below that range only explicit binds compete: ports are drawn at random there, checked, and never
    handed out twice by this process. The parallel e2e tier's workers draw from disjoint sets (port modulo the
    worker count), so two workers never race for one port between the check and the bind.
    """
    low = _ephemeral_low()
    index, count = _worker_slot()
    for _ in range(200 if low > 11000 else 0):
        port = random.randrange(10000 // count + 1, low // count) * count + index
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        fallback: int = s.getsockname()[1]
        return fallback


# ---------------------------------------------------------------------------------------------- certificates


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class _CA:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls, cn: str) -> _CA:
        key = _key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                    key_encipherment=False, data_encipherment=False, key_agreement=False,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    def issue(
        self, cn: str, orgs: list[str], *, server: bool
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = _key()
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        attrs += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        return key, builder.sign(self.key, hashes.SHA256())


# ---------------------------------------------------------------------------------------------- the plane


@dataclass
class ControlPlane:
    """etcd + kube-apiserver on loopback, rooted at `workdir` (certs, data, logs, kubeconfig, state)."""

    workdir: Path
    apiserver_bin: Path
    etcd_bin: Path
    extra_apiserver_args: list[str] = field(default_factory=list)
    etcd_port: int = 0
    etcd_peer_port: int = 0
    port: int = 0
    pids: dict[str, int] = field(default_factory=dict)
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _api_args: list[str] = field(default_factory=list)
    # (stopped, ready) wall-clock times of each `stop_apiserver` ... `start_apiserver`: a restarted apiserver
    # answers before its RBAC caches are filled and denies requests it would allow (403) until it is ready.
    unready_windows: list[tuple[float, float]] = field(default_factory=list)
    _stopped_at: float = 0.0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def certs(self) -> Path:
        return self.workdir / "certs"

    @property
    def audit_log(self) -> Path:
        return self.workdir / "audit.log"

    # -- set-up -------------------------------------------------------------------------------------------

    def _write_certs(self) -> None:
        self.certs.mkdir(parents=True, exist_ok=True)
        serving_ca = _CA.create("goldrush-test-serving-ca")
        client_ca = _CA.create("goldrush-test-client-ca")
        skey, scert = serving_ca.issue("localhost", [], server=True)
        sa_key = _key()
        files = {
            "serving-ca.crt": _pem_cert(serving_ca.cert),
            "apiserver.crt": _pem_cert(scert),
            "apiserver.key": _pem_key(skey),
            "client-ca.crt": _pem_cert(client_ca.cert),
            "client-ca.key": _pem_key(client_ca.key),
            "sa.key": _pem_key(sa_key),
            "sa.pub": sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        }
        for name, data in files.items():
            (self.certs / name).write_bytes(data)
            (self.certs / name).chmod(0o600)

    def write_user_kubeconfig(self, path: Path, user: str, groups: list[str]) -> Path:
        """Mint a client certificate for `user` in `groups` and write a kubeconfig for it to `path`."""
        ca_key = serialization.load_pem_private_key((self.certs / "client-ca.key").read_bytes(), None)
        ca_cert = x509.load_pem_x509_certificate((self.certs / "client-ca.crt").read_bytes())
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        key, cert = _CA(ca_key, ca_cert).issue(user, groups, server=False)
        b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "goldrush-test", "cluster": {
                "server": self.url,
                "certificate-authority-data": b64((self.certs / "serving-ca.crt").read_bytes()),
            }}],
            "users": [{"name": user, "user": {
                "client-certificate-data": b64(_pem_cert(cert)),
                "client-key-data": b64(_pem_key(key)),
            }}],
            "contexts": [{"name": "goldrush-test", "context": {"cluster": "goldrush-test", "user": user}}],
            "current-context": "goldrush-test",
        }
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
        return path

    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self._procs[name] = proc
        self.pids[name] = proc.pid
        self._save_state()

    def _save_state(self) -> None:
        state = {"pids": self.pids, "port": self.port, "etcd_port": self.etcd_port}
        (self.workdir / "state.json").write_text(json.dumps(state))

    def start(self, timeout: float = 90.0) -> None:
        """Start etcd and kube-apiserver, wait until ready, write the admin kubeconfig."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_certs()
        self.etcd_port, self.etcd_peer_port, self.port = free_port(), free_port(), free_port()
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        etcd_args = [
            str(self.etcd_bin),
            "--name=goldrush-test",
            f"--data-dir={self.workdir / 'etcd-data'}",
            f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=goldrush-test={peer}",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]
        self._spawn("etcd", etcd_args)
        self._wait(lambda: self._etcd_healthy(), timeout, "etcd")
        c = self.certs
        api_args = [
            str(self.apiserver_bin),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            f"--cert-dir={c}",
            f"--tls-cert-file={c / 'apiserver.crt'}",
            f"--tls-private-key-file={c / 'apiserver.key'}",
            f"--client-ca-file={c / 'client-ca.crt'}",
            f"--secure-port={self.port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--authorization-mode=RBAC",
            "--allow-privileged=true",
            "--disable-admission-plugins=ServiceAccount",
            f"--service-account-issuer=https://127.0.0.1:{self.port}/",
            f"--service-account-key-file={c / 'sa.pub'}",
            f"--service-account-signing-key-file={c / 'sa.key'}",
            "--endpoint-reconciler-type=none",
            *self.extra_apiserver_args,
        ]
        self._api_args = api_args
        self._spawn("kube-apiserver", api_args)
        self.write_user_kubeconfig(self.kubeconfig, "admin", ["system:masters"])
        self._wait(self._apiserver_ready, timeout, "kube-apiserver")

    def _wait(self, probe: object, timeout: float, what: str) -> None:
        assert callable(probe)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    tail = (self.workdir / f"{name}.log").read_text(errors="replace")[-4000:]
                    self.stop()
                    raise RuntimeError(f"{name} exited with {proc.returncode} while starting:\n{tail}")
            if probe():
                return
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"{what} not ready after {timeout}s; logs in {self.workdir}")

    def _etcd_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.etcd_port}/health", timeout=2) as r:
                return bool(json.loads(r.read()).get("health") == "true")
        except OSError:
            return False

    def ssl_context(self) -> ssl.SSLContext:
        """A TLS context that trusts the serving CA and presents the admin client certificate."""
        cfg = json.loads(self.kubeconfig.read_text())
        user = cfg["users"][0]["user"]
        ctx = ssl.create_default_context(cafile=str(self.certs / "serving-ca.crt"))
        cert_file = self.workdir / "admin.crt"
        key_file = self.workdir / "admin.key"
        cert_file.write_bytes(base64.b64decode(user["client-certificate-data"]))
        key_file.write_bytes(base64.b64decode(user["client-key-data"]))
        key_file.chmod(0o600)
        ctx.load_cert_chain(str(cert_file), str(key_file))
        return ctx

    def _get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, context=self.ssl_context(), timeout=3) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except OSError:
            return 0, b""

    def _apiserver_ready(self) -> bool:
        status, _ = self._get("/readyz")
        if status != 200:
            return False
        status, _ = self._get("/api/v1/namespaces/default")
        return status == 200

    def stop_apiserver(self) -> None:
        """Stop only kube-apiserver (etcd keeps running); `start_apiserver` brings it back on the same port."""
        pid = self.pids.pop("kube-apiserver")
        self._procs.pop("kube-apiserver", None)
        self._stopped_at = time.time()
        stop_pids([pid])
        self._save_state()

    def start_apiserver(self, timeout: float = 60.0) -> None:
        """Start kube-apiserver again with the same arguments, port and certificates; wait until ready."""
        self._spawn("kube-apiserver", self._api_args)
        self._wait(self._apiserver_ready, timeout, "kube-apiserver")
        self.unready_windows.append((self._stopped_at, time.time()))

    # -- tear-down ----------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop both processes by PID (SIGTERM, then SIGKILL after 10 s)."""
        stop_pids(list(self.pids.values()))
        self.pids.clear()
        self._procs.clear()
        self._save_state()


def stop_pids(pids: list[int], grace: float = 10.0) -> None:
    """SIGTERM each PID (and its process group), wait up to `grace` seconds, then SIGKILL survivors and wait
    (up to 5 s each) until they are gone."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for pid in pids:
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.1)
        if alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
            gone_by = time.monotonic() + 5.0  # a SIGKILL takes effect asynchronously: wait until it has
            while time.monotonic() < gone_by and alive(pid):
                time.sleep(0.05)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def alive(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie that is not our child still answers kill(0); check /proc.
    try:
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    except (OSError, IndexError):
        return False


# ---------------------------------------------------------------------------------------------- CLI


def _cmd_up(directory: Path) -> int:
    state = directory / "state.json"
    if state.exists():
        pids = json.loads(state.read_text()).get("pids", {})
        if pids and all(alive(p) for p in pids.values()):
            print(f"control plane already running (pids {sorted(pids.values())}); kubeconfig {directory}/kubeconfig")
            return 0
        _cmd_down(directory)
    paths = ensure_binaries()
    plane = ControlPlane(directory, paths["KUBE_APISERVER"], paths["ETCD"])
    plane.start()
    print(f"control plane up at {plane.url} (etcd {paths['ETCD']}); kubeconfig {plane.kubeconfig}")
    return 0


def _cmd_down(directory: Path) -> int:
    state = directory / "state.json"
    if state.exists():
        pids = list(json.loads(state.read_text()).get("pids", {}).values())
        stop_pids(pids)
        print(f"stopped control plane processes {sorted(pids)}")
    for name in ("etcd-data", "certs", "state.json", "kubeconfig", "admin.crt", "admin.key",
                 "etcd.log", "kube-apiserver.log", "audit.log"):
        target = directory / name
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        elif target.exists():
            target.unlink()
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m support.ctlplane up|down|ensure [--dir DIR]` (called by the Makefile)."""
    parser = argparse.ArgumentParser(prog="ctlplane", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "ensure"])
    parser.add_argument("--dir", type=Path, default=REPO / ".dev")
    args = parser.parse_args(argv)
    directory: Path = args.dir.resolve()
    if args.command == "ensure":
        paths = ensure_binaries()
        for name, path in paths.items():
            print(f"{name}={path}")
        return 0
    if args.command == "up":
        directory.mkdir(parents=True, exist_ok=True)
        return _cmd_up(directory)
    return _cmd_down(directory)


if __name__ == "__main__":
    sys.exit(main())
