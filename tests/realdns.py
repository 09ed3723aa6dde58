"""Real NSD, unbound and other DNS server processes on 127.0.0.x for the tests and the bench."""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode

INSTALL_HINT = (
    "nsd and unbound are needed for the end-to-end tests: "
    "apt-get update && apt-get install -y nsd unbound"
)
# The name in the generated server certificate; clients pass it as the TLS server name.
SERVER_HOSTNAME = "resolver.test"
NS_NAME = "ns.lab-root."

_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")
# One counter for the whole process, so two labs alive at once never share an address.
_address_counter = itertools.count()
_address_lock = threading.Lock()
# Labs still running at interpreter exit (a bench script that crashed) are stopped then.
_live_labs: weakref.WeakSet[DNSLab] = weakref.WeakSet()


class LabError(RuntimeError):
    """A server of the lab could not be started or configured."""


class MissingBinaryError(LabError):
    """nsd, unbound or openssl is not installed."""


@dataclass(frozen=True)
class Endpoint:
    """Where one running server listens, and where its log is."""

    name: str
    address: str
    port: int
    pid: int
    log: Path
    tls_port: int | None = None
    https_port: int | None = None
    ca_file: Path | None = None

    @property
    def doh_url(self) -> str:
        """Return the DoH URL; raise LabError when the server has no https port."""
        if self.https_port is None:
            raise LabError(f"{self.name} was started without https")
        return f"https://{self.address}:{self.https_port}/dns-query"


def find_binary(name: str) -> str | None:
    """Return the path of a program on PATH or in an sbin directory, or None."""
    found = shutil.which(name)
    if found:
        return found
    for directory in _SBIN_DIRS:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def require_binaries() -> None:
    """Return when nsd and unbound are installed; raise MissingBinaryError otherwise."""
    if find_binary("nsd") is None or find_binary("unbound") is None:
        raise MissingBinaryError(INSTALL_HINT)


def fail_unless_installed() -> None:
    """Fail the calling test (never skip) when nsd or unbound is missing, saying how to
    install them. For fixtures; imports pytest only when called."""
    import pytest

    missing = None
    try:
        require_binaries()
    except MissingBinaryError as error:
        missing = str(error)
    if missing is not None:
        pytest.fail(missing, pytrace=False)


def root_zone(records: Iterable[str], ns_address: str = "127.0.0.1") -> str:
    """Return the text of a root zone: SOA, NS with glue at ns_address, then the records.

    Records are zone-file lines with absolute owner names, e.g.
    "youtube.com. 300 IN A 93.184.216.34".
    """
    head = [
        "$TTL 300",
        f". 86400 IN SOA {NS_NAME} hostmaster.lab-root. 1 1800 900 604800 300",
        f". 86400 IN NS {NS_NAME}",
        f"{NS_NAME} 86400 IN A {ns_address}",
    ]
    return "\n".join(itertools.chain(head, records)) + "\n"


def address_for(n: int) -> str:
    """Return the n-th lab address: 127.0.0.10 to 127.0.0.254, then 127.0.1.10 and so on.

    Raises LabError past 127.0.255.254.
    """
    high, low = divmod(n, 245)
    if not 0 <= high <= 255:
        raise LabError("no loopback addresses left for the lab")
    return f"127.0.{high}.{10 + low}"


def next_address() -> str:
    """Return a loopback address never handed out before in this process."""
    with _address_lock:
        n = next(_address_counter)
    return address_for(n)


def free_port(address: str, taken: Iterable[int] = ()) -> int:
    """Return a port free for both UDP and TCP on address; raise LabError if none is found."""
    avoid = set(taken)
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((address, 0))
            port = int(tcp.getsockname()[1])
            if port in avoid:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((address, port))
                except OSError:
                    continue
            return port
    raise LabError(f"no free port on {address}")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:]) or f"({path} is empty)"


def _quote(value: str) -> str:
    # unbound takes either quote style; TXT data carries double quotes inside.
    return f"'{value}'" if '"' in value else f'"{value}"'


def _group_alive(pgid: int) -> bool:
    """Return True while a live (not zombie) process is in process group pgid."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses; fields after the last ")" are fixed.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


@dataclass
class _Server:
    endpoint: Endpoint
    process: subprocess.Popen[bytes]
    output: Path


class DNSLab:
    """A set of NSD and unbound servers under one work directory; stop() ends them all."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._servers: list[_Server] = []
        self._nsd: Endpoint | None = None
        self._ca: tuple[Path, Path] | None = None
        self._names: set[str] = set()
        # Directories of servers that drop root: real place -> the link to it in work_dir.
        self._staged: dict[Path, Path] = {}
        self._staging: Path | None = None
        _live_labs.add(self)

    def __enter__(self) -> DNSLab:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def servers(self) -> list[Endpoint]:
        """Return the endpoints of the servers still running."""
        return [s.endpoint for s in self._servers]

    # --- NSD -------------------------------------------------------------------------------

    def start_nsd(
        self,
        zone_text: str | None = None,
        zone_file: Path | None = None,
        *,
        records: Iterable[str] | None = None,
        name: str = "nsd",
        start_timeout: float = 120.0,
    ) -> Endpoint:
        """Start NSD serving the root zone and return its endpoint once it answers.

        Give exactly one of zone_text (a whole zone), zone_file (used in place, for big
        zones) or records (wrapped by root_zone() with glue at NSD's own address).
        unbound resolvers started later use the last NSD started as their root.
        Raises MissingBinaryError, or LabError with the tail of NSD's log.
        """
        if sum(x is not None for x in (zone_text, zone_file, records)) != 1:
            raise LabError("start_nsd needs exactly one of zone_text, zone_file, records")
        nsd = find_binary("nsd")
        if nsd is None:
            raise MissingBinaryError(INSTALL_HINT)
        directory = self._server_dir(name)
        address = next_address()
        if zone_file is not None:
            zone_path = Path(zone_file).resolve()
        else:
            zone_path = directory / "root.zone"
            text = zone_text if zone_text is not None else root_zone(records or [], address)
            zone_path.write_text(text)

        def configure(port: int, tls_port: int | None, https_port: int | None) -> list[str]:
            log = directory / "nsd.log"
            conf = directory / "nsd.conf"
            conf.write_text(
                "server:\n"
                f"    ip-address: {address}@{port}\n"
                "    do-ip6: no\n"
                '    username: ""\n'
                '    chroot: ""\n'
                f'    zonesdir: "{directory}"\n'
                f'    pidfile: "{directory}/nsd.pid"\n'
                '    database: ""\n'
                f'    xfrdfile: "{directory}/xfrd.state"\n'
                f'    zonelistfile: "{directory}/zone.list"\n'
                f'    xfrdir: "{directory}"\n'
                f'    logfile: "{log}"\n'
                "    verbosity: 1\n"
                "    server-count: 1\n"
                "    reuseport: no\n"
                # unbound queries NSD from one address; rate limiting would distort benchmarks.
                "    rrl-ratelimit: 0\n"
                "    rrl-whitelist-ratelimit: 0\n"
                "    zonefiles-write: 0\n"
                "    hide-version: yes\n"
                "remote-control:\n"
                "    control-enable: no\n"
                "zone:\n"
                '    name: "."\n'
                f'    zonefile: "{zone_path}"\n'
            )
            checkconf = find_binary("nsd-checkconf")
            if checkconf is not None:
                check = subprocess.run(
                    [checkconf, str(conf)], capture_output=True, text=True, check=False
                )
                if check.returncode != 0:
                    raise LabError(f"nsd-checkconf refused {conf}:\n{check.stdout}{check.stderr}")
            return [nsd, "-d", "-c", str(conf)]

        endpoint = self._launch(
            name,
            address,
            directory,
            directory / "nsd.log",
            configure,
            [],
            start_timeout,
            authoritative=True,
        )
        self._nsd = endpoint
        return endpoint

    # --- unbound ---------------------------------------------------------------------------

    def start_unbound(
        self,
        name: str,
        *,
        local_zones: dict[str, str] | None = None,
        local_data: list[str] | None = None,
        tls: bool = False,
        https: bool = False,
        extra: str = "",
        upstream: Endpoint | None = None,
        start_timeout: float = 30.0,
    ) -> Endpoint:
        """Start an unbound recursive resolver whose root is NSD; return it once it answers.

        local_zones maps a name to a local-zone type (always_nxdomain, always_refuse,
        redirect, ...); local_data holds lines such as "bad.example. A 192.0.2.34".
        tls and https add DoT and DoH (HTTP/2, /dns-query) ports with a certificate for
        SERVER_HOSTNAME and the address, signed by the lab's CA (Endpoint.ca_file).
        extra is added to the server: clause after the defaults, so it can override them.
        upstream defaults to the last NSD started. Raises MissingBinaryError, or LabError
        with the tail of unbound's log.
        """
        if find_binary("unbound") is None:
            raise MissingBinaryError(INSTALL_HINT)
        if (upstream or self._nsd) is None:
            raise LabError("start NSD before unbound, or pass upstream")
        directory = self._server_dir(name)
        return self._run_unbound(
            name,
            directory,
            next_address(),
            None,
            local_zones=local_zones,
            local_data=local_data,
            tls=tls,
            https=https,
            extra=extra,
            upstream=upstream,
            start_timeout=start_timeout,
        )

    def restart_unbound(
        self,
        endpoint: Endpoint,
        *,
        local_zones: dict[str, str] | None = None,
        local_data: list[str] | None = None,
        tls: bool = False,
        https: bool = False,
        extra: str = "",
        upstream: Endpoint | None = None,
        start_timeout: float = 30.0,
    ) -> Endpoint:
        """Stop the unbound at ``endpoint`` (if it still runs) and start it again with new settings.

        The new server listens on the same address and port (and the same tls/https ports where
        the old one had them), so a config that points at it keeps working; the keyword
        arguments are those of start_unbound and replace the old ones entirely. Returns the new
        endpoint. Raises LabError when ``endpoint`` is no unbound of this lab or a port stays
        taken, MissingBinaryError when unbound is missing.
        """
        if find_binary("unbound") is None:
            raise MissingBinaryError(INSTALL_HINT)
        if (upstream or self._nsd) is None:
            raise LabError("start NSD before unbound, or pass upstream")
        directory = self.work_dir / endpoint.name
        if endpoint.name not in self._names or not (directory / "unbound.conf").is_file():
            raise LabError(f"{endpoint.name!r} is not an unbound server of this lab")
        for server in list(self._servers):
            ep = server.endpoint
            if ep.name == endpoint.name and ep.address == endpoint.address:
                self.stop_server(ep)
        ports = (endpoint.port, endpoint.tls_port, endpoint.https_port)
        return self._run_unbound(
            endpoint.name,
            directory,
            endpoint.address,
            ports,
            local_zones=local_zones,
            local_data=local_data,
            tls=tls,
            https=https,
            extra=extra,
            upstream=upstream,
            start_timeout=start_timeout,
        )

    def _run_unbound(
        self,
        name: str,
        directory: Path,
        address: str,
        ports: tuple[int, int | None, int | None] | None,
        *,
        local_zones: dict[str, str] | None,
        local_data: list[str] | None,
        tls: bool,
        https: bool,
        extra: str,
        upstream: Endpoint | None,
        start_timeout: float,
    ) -> Endpoint:
        """Write the config of an unbound in ``directory`` and launch it (``ports``: fixed)."""
        unbound = find_binary("unbound")
        root = upstream or self._nsd
        if unbound is None or root is None:
            raise LabError("unbound needs its binary and a root to query")
        log = directory / "unbound.log"
        ca_file: Path | None = None
        cert: tuple[Path, Path] | None = None
        if tls or https:
            ca_file = self._ensure_ca()
            cert = self._server_cert(directory, address)
        zones = local_zones or {}
        data = local_data or []

        def configure(port: int, tls_port: int | None, https_port: int | None) -> list[str]:
            lines = [
                "server:",
                "    verbosity: 1",
                "    num-threads: 1",
                f"    interface: {address}@{port}",
                f"    port: {port}",
                "    do-ip4: yes",
                "    do-ip6: no",
                '    username: ""',
                '    chroot: ""',
                f'    directory: "{directory}"',
                f'    pidfile: "{directory}/unbound.pid"',
                f'    logfile: "{log}"',
                "    use-syslog: no",
                "    log-time-ascii: yes",
                "    do-daemonize: no",
                "    access-control: 127.0.0.0/8 allow",
                "    do-not-query-localhost: no",
                '    module-config: "iterator"',
                "    qname-minimisation: no",
                "    harden-referral-path: no",
                "    so-reuseport: no",
                "    outgoing-range: 8192",
                "    num-queries-per-thread: 4096",
                "    incoming-num-tcp: 256",
                "    outgoing-num-tcp: 64",
                # unbound answers these itself by default; here the lab's root zone decides.
                '    local-zone: "test." nodefault',
                '    local-zone: "invalid." nodefault',
                '    local-zone: "onion." nodefault',
            ]
            for zone, kind in zones.items():
                lines.append(f"    local-zone: {_quote(zone)} {kind}")
            for line in data:
                lines.append(f"    local-data: {_quote(line)}")
            if cert is not None:
                key, pem = cert
                lines += [f'    tls-service-key: "{key}"', f'    tls-service-pem: "{pem}"']
            if tls_port is not None:
                lines += [f"    tls-port: {tls_port}", f"    interface: {address}@{tls_port}"]
            if https_port is not None:
                lines += [
                    f"    https-port: {https_port}",
                    f"    interface: {address}@{https_port}",
                    '    http-endpoint: "/dns-query"',
                ]
            lines += [f"    {x.strip()}" for x in extra.splitlines() if x.strip()]
            lines += [
                "stub-zone:",
                '    name: "."',
                f"    stub-addr: {root.address}@{root.port}",
                "remote-control:",
                "    control-enable: no",
            ]
            conf = directory / "unbound.conf"
            conf.write_text("\n".join(lines) + "\n")
            return [unbound, "-d", "-c", str(conf)]

        wanted = [p for p, on in (("tls", tls), ("https", https)) if on]
        return self._launch(
            name,
            address,
            directory,
            log,
            configure,
            wanted,
            start_timeout,
            authoritative=False,
            ca_file=ca_file,
            fixed_ports=ports,
        )

    # --- other programs ---------------------------------------------------------------------

    def server_dir(self, name: str, *, owner: str | None = None) -> Path:
        """Return a new empty directory for the files of a server called name.

        Normally that is work_dir/name. With owner (a system user the server switches to) and
        when running as root, it must be reachable by that user, which a pytest tmp_path
        (mode 0700 from /tmp/pytest-of-root down) is not: the directory is then made in a
        private area of the system's temporary directory, owned by owner, with work_dir/name a
        symbolic link to it, and stop() moves it back to work_dir/name. Give servers the
        returned path. Raises LabError when name is taken or owner is no user here.
        """
        if owner is None or os.geteuid() != 0:
            return self._server_dir(name)
        try:
            account = pwd.getpwnam(owner)
        except KeyError:
            raise LabError(f"no user {owner!r} on this system to run {name} as") from None
        link = self.work_dir / name
        if name in self._names or link.exists():
            raise LabError(f"a server named {name!r} already exists in this lab")
        self._names.add(name)
        if self._staging is None:
            self._staging = Path(tempfile.mkdtemp(prefix="registry-monitor-lab-"))
            self._staging.chmod(0o711)  # others may pass through to their own directory only
        directory = self._staging / name
        directory.mkdir()
        os.chown(directory, account.pw_uid, account.pw_gid)
        directory.chmod(0o700)
        link.symlink_to(directory, target_is_directory=True)
        self._staged[directory] = link
        return directory

    def start_process(
        self,
        name: str,
        directory: Path,
        configure: Callable[[int], list[str]],
        *,
        log: Path,
        address: str | None = None,
        start_timeout: float = 30.0,
    ) -> Endpoint:
        """Start another DNS server program and return its endpoint once it answers on UDP.

        directory comes from server_dir(name); the program runs there with its output in
        output.log. configure(port) writes its files and returns its command line; it is
        called again with another port when the first turns out to be taken. log is the
        program's own log (the endpoint names it through work_dir, so it stays valid after
        stop()). address defaults to a new 127.0.0.x; programs that only bind addresses an
        interface carries need 127.0.0.1. stop() and stop_server() end it like NSD and
        unbound. Raises LabError with the tail of the logs when it does not answer.
        """
        link = self._staged.get(directory)
        shown_log = log if link is None else link / log.relative_to(directory)
        return self._launch(
            name,
            address or next_address(),
            directory,
            log,
            lambda port, _tls, _https: configure(port),
            [],
            start_timeout,
            authoritative=False,
            shown_log=shown_log,
        )

    # --- stopping --------------------------------------------------------------------------

    def stop_server(self, endpoint: Endpoint, timeout: float = 5.0) -> None:
        """Stop one server (SIGTERM, then SIGKILL after timeout) and return when it is gone."""
        for server in list(self._servers):
            if server.endpoint == endpoint:
                self._servers.remove(server)
                _terminate(server.process, timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every server of the lab and return when all their processes are gone."""
        servers, self._servers = self._servers, []
        for server in servers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGTERM)
        for server in servers:
            _terminate(server.process, timeout)
        self._bring_home()

    # --- internals -------------------------------------------------------------------------

    def _bring_home(self) -> None:
        """Move the directories of servers that dropped root back into work_dir."""
        staged, self._staged = self._staged, {}
        for directory, link in staged.items():
            link.unlink(missing_ok=True)
            try:
                directory.rename(link)
            except OSError:  # another file system: copy what can be copied (no sockets)
                shutil.copytree(directory, link, symlinks=True, ignore=_special_files)
                shutil.rmtree(directory, ignore_errors=True)
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None

    def _server_dir(self, name: str) -> Path:
        if name in self._names:
            raise LabError(f"a server named {name!r} already exists in this lab")
        self._names.add(name)
        directory = self.work_dir / name
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def _launch(
        self,
        name: str,
        address: str,
        directory: Path,
        log: Path,
        configure: Callable[[int, int | None, int | None], list[str]],
        extra_ports: list[str],
        start_timeout: float,
        *,
        authoritative: bool,
        ca_file: Path | None = None,
        fixed_ports: tuple[int, int | None, int | None] | None = None,
        shown_log: Path | None = None,
    ) -> Endpoint:
        output = directory / "output.log"
        last_error: LabError | None = None
        # A probed port can be taken by someone else before the server binds it: retry then.
        # A fixed port (a restart) is retried as it is, for a while: the old server's sockets
        # may take a moment to go.
        for _ in range(3 if fixed_ports is None else 25):
            ports: dict[str, int | None] = {"tls": None, "https": None}
            if fixed_ports is None:
                port = free_port(address)
            else:
                port, ports["tls"], ports["https"] = fixed_ports
            taken = [p for p in (port, ports["tls"], ports["https"]) if p is not None]
            for kind in ("tls", "https"):
                if kind not in extra_ports:
                    ports[kind] = None
                elif ports[kind] is None:
                    extra_port = free_port(address, taken=taken)
                    ports[kind] = extra_port
                    taken.append(extra_port)
            argv = configure(port, ports["tls"], ports["https"])
            with output.open("ab") as out:
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=directory,
                    start_new_session=True,
                )
            server_ep = Endpoint(
                name=name,
                address=address,
                port=port,
                pid=process.pid,
                log=shown_log or log,
                tls_port=ports["tls"],
                https_port=ports["https"],
                ca_file=ca_file,
            )
            server = _Server(server_ep, process, output)
            self._servers.append(server)
            try:
                _wait_ready(server, start_timeout, authoritative=authoritative)
                return server_ep
            except LabError as error:
                self.stop_server(server_ep)
                last_error = error
                if "in use" not in str(error):
                    raise
                if fixed_ports is not None:
                    time.sleep(0.2)
        assert last_error is not None
        raise last_error

    def _ensure_ca(self) -> Path:
        if self._ca is None:
            directory = self.work_dir / "ca"
            directory.mkdir(exist_ok=True)
            key, cert = directory / "ca.key", directory / "ca.pem"
            _openssl(
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "30",
                "-subj", "/CN=registry-monitor test CA",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            )  # fmt: skip
            self._ca = (key, cert)
        return self._ca[1]

    def _server_cert(self, directory: Path, address: str) -> tuple[Path, Path]:
        assert self._ca is not None
        ca_key, ca_cert = self._ca
        key, csr, pem = directory / "server.key", directory / "server.csr", directory / "server.pem"
        ext = directory / "server.ext"
        ext.write_text(
            f"subjectAltName=DNS:{SERVER_HOSTNAME},IP:{address}\n"
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth\n"
        )
        _openssl(
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={SERVER_HOSTNAME}",
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
            "-CAcreateserial", "-out", str(pem), "-days", "30", "-extfile", str(ext),
        )  # fmt: skip
        return key, pem


def _special_files(directory: str, names: list[str]) -> set[str]:
    """Return the names in directory that are neither regular files, directories nor links."""
    skipped = set()
    for name in names:
        path = Path(directory) / name
        if path.is_symlink() or path.is_file() or path.is_dir():
            continue
        skipped.add(name)
    return skipped


def _openssl(*args: str) -> None:
    openssl = find_binary("openssl")
    if openssl is None:
        raise MissingBinaryError("openssl is needed for DoT/DoH tests: apt-get install -y openssl")
    done = subprocess.run([openssl, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LabError(f"openssl {args[0]} failed:\n{done.stderr}")


def _wait_ready(server: _Server, timeout: float, *, authoritative: bool) -> None:
    """Return once the server answers a DNS query; raise LabError with its log otherwise."""
    endpoint = server.endpoint
    # NSD must answer its zone authoritatively; for unbound any reply shows it listens,
    # and RD=0 keeps the check from waiting on recursion.
    query = dns.message.make_query(".", "SOA")
    if not authoritative:
        query.flags &= ~dns.flags.RD
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise LabError(_failure(server, f"exited with status {server.process.returncode}"))
        # A connected socket hears the ICMP "port unreachable" of a server not yet bound at
        # once, instead of waiting out the timeout.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.connect((endpoint.address, endpoint.port))
                reply = dns.query.udp(
                    query, endpoint.address, port=endpoint.port, timeout=0.5, sock=sock
                )
            except (dns.exception.Timeout, OSError):
                reply = None
        if reply is not None:
            if not authoritative:
                return
            if reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA:
                return
            raise LabError(
                _failure(server, f"answered . SOA with {dns.rcode.to_text(reply.rcode())}")
            )
        if time.monotonic() > deadline:
            raise LabError(_failure(server, f"did not answer within {timeout:.0f} s"))
        time.sleep(0.02)


def _failure(server: _Server, what: str) -> str:
    ep = server.endpoint
    return (
        f"{ep.name} on {ep.address}@{ep.port} {what}\n"
        f"--- {ep.log} ---\n{_tail(ep.log)}\n--- {server.output} ---\n{_tail(server.output)}"
    )


def _terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM the process group, SIGKILL it after timeout, and reap the leader."""
    pgid = process.pid
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        process.wait(timeout)
    # NSD's children may outlive the leader by a moment.
    deadline = time.monotonic() + timeout
    killed = False
    while _group_alive(pgid):
        if time.monotonic() > deadline:
            if killed:
                raise LabError(f"processes of group {pgid} survived SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            killed = True
            deadline = time.monotonic() + timeout
        time.sleep(0.01)


@atexit.register
def _stop_all_labs() -> None:
    for lab in list(_live_labs):
        lab.stop()
