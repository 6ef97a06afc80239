"""Private Mosquitto and PostgreSQL servers for the tests, CI and ``station fleet demo``.

Why real servers: the fleet's guarantees (a station cannot write another station's topics, a refused
publish comes back with a reason code, a row counts as delivered only after the PostgreSQL commit, the
broker's persistence file loses what it had not saved when killed) are the servers' behaviour, and a fake
would only restate our assumptions. So each test gets its own broker and cluster in a temporary folder,
on a free port and a private Unix socket, and they are stopped when the ``with`` block ends, whatever
raised inside it (and, as a last resort, when the interpreter exits).

Both servers are the Debian packages (``mosquitto``, ``postgresql``); run as root (CI, the containers)
they drop to their own users, so the folders they write are chowned to ``mosquitto`` and ``postgres``.
Where the caller's folder is not reachable by that user (pytest's ``tmp_path`` sits under a 0700 root
directory) or too long for a Unix socket path, the server's files go to a fresh ``/tmp/fleet-*`` folder
instead (``.folder`` says which); that folder is removed when the context manager exits.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from station.errors import StationError

MOSQUITTO_INSTALL = "mosquitto not installed: apt-get install mosquitto (or `make fleet-deps` as root)"
POSTGRES_INSTALL = "PostgreSQL not installed: apt-get install postgresql (or `make fleet-deps` as root)"
OPENSSL_INSTALL = "openssl not installed: apt-get install openssl"
START_TIMEOUT_S = 20.0
#: Unix socket paths are limited to 107 bytes; the socket file's name takes 16 of them.
_MAX_SOCKET_DIR = 90

# Every server still running, so an interpreter exit (a test run ending) never leaves one behind.
_LIVE: set[LocalBroker | LocalPostgres] = set()


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.kill()
            if server._ours:
                shutil.rmtree(server.folder, ignore_errors=True)


def fleet_acl() -> str:
    """The broker's ACL: each station writes and reads only its own topics; the ingester and the desk
    read everything and write only the marks and the acknowledgements.

    Why ``pattern`` with ``%u``: a station's MQTT user name is its station id, so one line covers every
    station. The site level is ``+`` because a station's site comes from its own config; the station id
    is what the password proves. The user names ``ingester`` and ``desk`` must not be used as station
    ids (the patterns apply to every user).
    """
    return "\n".join([
        "# Stations (user name = station id): write their own rows, alarm images, chain anchors, heartbeat and status;",
        "# read their own high-water marks and the desk's acknowledgements.",
        "pattern write fleet/+/%u/row/#",
        "pattern write fleet/+/%u/snapshot/#",
        "pattern write fleet/+/%u/heartbeat",
        "pattern write fleet/+/%u/status",
        "pattern write fleet/+/%u/anchor/#",
        "pattern read fleet/+/%u/hwm/#",
        "pattern read fleet/+/%u/desk/#",
        "",
        "# The ingester reads everything and publishes the retained high-water marks.",
        "user ingester",
        "topic read fleet/#",
        "topic write fleet/+/+/hwm/#",
        "",
        "# The security desk reads everything and sends acknowledgements to the stations.",
        "user desk",
        "topic read fleet/#",
        "topic write fleet/+/+/desk/#",
        "",
    ])


# --- helpers -------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"


def _user(name: str, install: str) -> pwd.struct_passwd | None:
    """The service user when we run as root (the server will drop to it); None when we are not root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError as exc:
        raise StationError(f"user {name!r} missing: {install}") from exc


def _reachable(folder: Path, user: pwd.struct_passwd | None) -> bool:
    """Whether ``user`` may traverse every directory down to ``folder`` (mode bits; ACLs ignored)."""
    if user is None:
        return True
    groups = set(os.getgrouplist(user.pw_name, user.pw_gid))
    for part in [folder, *folder.parents]:
        try:
            st = part.stat()
        except OSError:
            return False
        if st.st_uid == user.pw_uid:
            bit = stat.S_IXUSR
        elif st.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def _service_dir(folder: Path, name: str, user: pwd.struct_passwd | None) -> tuple[Path, bool]:
    """The directory the server owns: ``folder/name`` when its user can reach it and the path is short
    enough for a Unix socket, else a fresh ``/tmp/fleet-<name>-*``. Returns (dir, ours_to_remove)."""
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    wanted = folder / name
    if _reachable(folder, user) and len(str(wanted)) <= _MAX_SOCKET_DIR:
        wanted.mkdir(exist_ok=True)
        work, ours = wanted, False
    else:
        work, ours = Path(tempfile.mkdtemp(prefix=f"fleet-{name}-", dir="/tmp")), True
        with contextlib.suppress(OSError):
            if not wanted.exists() and not wanted.is_symlink():
                wanted.symlink_to(work)  # where to look, for whoever inspects the test's folder
    os.chmod(work, 0o700)
    return work, ours


def _chown_tree(path: Path, user: pwd.struct_passwd | None) -> None:
    if user is None:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, user.pw_uid, user.pw_gid)
        for entry in dirs + files:
            os.lchown(os.path.join(root, entry), user.pw_uid, user.pw_gid)


def _run(argv: list[str], what: str, **kwargs) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, **kwargs)
    except FileNotFoundError as exc:
        raise StationError(f"{what}: {argv[0]} not found") from exc
    if done.returncode != 0:
        detail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise StationError(f"{what} failed (exit {done.returncode}): {detail}")
    return done


def _as_user(user: pwd.struct_passwd | None, argv: list[str]) -> list[str]:
    if user is None:
        return argv
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    return [runuser, "-u", user.pw_name, "--", *argv]


def make_ca(folder: Path, name: str = "ca") -> tuple[Path, Path]:
    """A throw-away certificate authority in ``folder``: ``(name.crt, name.key)``.

    Why: the TLS listener needs a certificate a client can verify, and a test needs a second, unrelated
    CA to show that verification really happens. Valid for 30 days from now (OpenSSL reads the real
    clock, whatever the tests do to Python's).
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise StationError(OPENSSL_INSTALL)
    folder.mkdir(parents=True, exist_ok=True)
    crt, key = folder / f"{name}.crt", folder / f"{name}.key"
    _run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
          "-keyout", str(key), "-out", str(crt), "-days", "30", "-subj", f"/CN=fleet throw-away {name}",
          "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"], "openssl (CA)")
    return crt, key


def _server_certificate(folder: Path, ca_crt: Path, ca_key: Path) -> tuple[Path, Path]:
    """A server certificate for 127.0.0.1 and localhost, signed by the throw-away CA."""
    openssl = shutil.which("openssl") or "openssl"
    crt, key, csr, ext = (folder / "server.crt", folder / "server.key", folder / "server.csr",
                          folder / "server.ext")
    _run([openssl, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
          "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1"], "openssl (server key)")
    ext.write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
                   "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    _run([openssl, "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
          "-CAcreateserial", "-out", str(crt), "-days", "30", "-extfile", str(ext)], "openssl (server cert)")
    return crt, key


# --- Mosquitto ------------------------------------------------------------------------------------------


class LocalBroker:
    """A private Mosquitto 2 broker: password file, ACL, MQTT v5, persistence, optional TLS listener.

    Runs in the foreground as our child (so ``pid`` is the broker's own and ``kill`` is a real SIGKILL);
    ``start`` again after ``stop`` or ``kill`` reuses the folder, the ports and the persistence file, which
    Mosquitto writes at a clean shutdown and every ``autosave_interval`` (the default, 30 minutes) -- so a
    killed broker loses what it held in memory, the case the fleet's delivery rule is built for.

    Attributes
    ----------
    url, tls_url : str
        ``mqtt://127.0.0.1:PORT``; ``mqtts://127.0.0.1:PORT2`` (None without TLS).
    ca_file : Path | None
        The throw-away CA a TLS client must trust.
    passwords : dict[str, str]
        The users and their passwords, as given.
    folder, conf_path, log_path : Path
        Where the broker's files are; its configuration; its log (stderr, appended across restarts).
    """

    def __init__(self, folder: Path, users: Mapping[str, str], acl: str | None = None, tls: bool = False):
        self.mosquitto = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists(
            "/usr/sbin/mosquitto") else None)
        self.mosquitto_passwd = shutil.which("mosquitto_passwd")
        if self.mosquitto is None or self.mosquitto_passwd is None:
            raise StationError(MOSQUITTO_INSTALL)
        for name, password in users.items():
            if not name or any(c in name for c in ":\n\r/#+") or "\n" in password or "\r" in password:
                raise StationError(f"broker user {name!r}: no ':', '/', '#', '+' or line breaks allowed")
        self.passwords = dict(users)
        self._user = _user("mosquitto", MOSQUITTO_INSTALL)
        self.folder, self._ours = _service_dir(Path(folder), "mosquitto", self._user)
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.tls_port: int | None = None
        self.tls_url: str | None = None
        self.ca_file: Path | None = None
        self.conf_path = self.folder / "mosquitto.conf"
        self.log_path = self.folder / "mosquitto.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._write_files(acl if acl is not None else fleet_acl(), tls)

    def _write_files(self, acl: str, tls: bool) -> None:
        passwd, acl_path = self.folder / "passwd", self.folder / "acl"
        passwd.write_text("".join(f"{user}:{password}\n" for user, password in self.passwords.items()))
        os.chmod(passwd, 0o600)
        _run([self.mosquitto_passwd, "-U", str(passwd)], "mosquitto_passwd")  # hashes it in place
        acl_path.write_text(acl)
        lines = [
            "# Written by station.fleet.servers: a private broker for one test or demo.",
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {passwd}",
            f"acl_file {acl_path}",
            "persistence true",
            f"persistence_location {self.folder}/",
            "persistence_file mosquitto.db",
            # Keep the QoS 1 messages of a client that is away (Mosquitto's default keeps 1000 and drops
            # the rest): an ingester restarting gets the backlog from the broker rather than only from the
            # stations' re-sends above its marks. Delivery never rests on this (see station.fleet.protocol).
            # A large number, not 0 ("no limit"): with 0, Mosquitto 2.0.11 drops the connection of a client
            # whose publish the ACL refused instead of answering with the reason code (measured).
            "max_queued_messages 1000000",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp true",
            f"listener {self.port} 127.0.0.1",
        ]
        if tls:
            tls_dir = self.folder / "tls"
            ca_crt, ca_key = make_ca(tls_dir)
            crt, key = _server_certificate(tls_dir, ca_crt, ca_key)
            self.tls_port = free_port()
            self.tls_url = f"mqtts://127.0.0.1:{self.tls_port}"
            self.ca_file = ca_crt
            lines += [f"listener {self.tls_port} 127.0.0.1", f"cafile {ca_crt}", f"certfile {crt}",
                      f"keyfile {key}", "require_certificate false"]
        self.conf_path.write_text("\n".join(lines) + "\n")
        _chown_tree(self.folder, self._user)

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs."""
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def start(self) -> LocalBroker:
        """Start (or restart) the broker and wait until every listener accepts connections."""
        if self.running:
            return self
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen([self.mosquitto, "-c", str(self.conf_path)], cwd=self.folder,
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        _LIVE.add(self)
        ports = [self.port] + ([self.tls_port] if self.tls_port else [])
        deadline = time.monotonic() + START_TIMEOUT_S
        while not all(_port_open(port) for port in ports):
            if self._process.poll() is not None:
                _LIVE.discard(self)
                raise StationError(f"mosquitto exited with {self._process.returncode}: {_tail(self.log_path)}")
            if time.monotonic() > deadline:
                self.kill()
                raise StationError(f"mosquitto did not listen on {ports} within {START_TIMEOUT_S:.0f} s: "
                                   f"{_tail(self.log_path)}")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """A clean shutdown (SIGTERM: Mosquitto saves its persistence file); SIGKILL if it hangs."""
        process, self._process = self._process, None
        _LIVE.discard(self)
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash or a power cut: nothing since the last autosave is written."""
        process, self._process = self._process, None
        _LIVE.discard(self)
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def close(self) -> None:
        """Stop the broker and remove its folder if it was a temporary one of ours."""
        self.stop()
        if self._ours:
            shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def local_broker(folder: Path, *, users: Mapping[str, str], acl: str | None = None,
                 tls: bool = False) -> Iterator[LocalBroker]:
    """A running :class:`LocalBroker` for the ``with`` block; stopped on the way out, whatever happened.

    Parameters
    ----------
    folder : Path
        Where its files go (``folder/mosquitto``, or a temporary folder linked from there).
    users : Mapping[str, str]
        User name -> password. Stations' user names are their station ids.
    acl : str, optional
        The ACL file's text; :func:`fleet_acl` by default.
    tls : bool
        Also listen with TLS (``tls_url``; trust ``ca_file``).
    """
    broker = LocalBroker(folder, users, acl, tls)
    try:
        broker.start()
        yield broker
    finally:
        broker.close()


# --- PostgreSQL -----------------------------------------------------------------------------------------


def _pg_bin(name: str) -> str:
    """A PostgreSQL server program: on PATH, else Debian's newest /usr/lib/postgresql/<N>/bin."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    for bin_dir in reversed(versions):
        if (bin_dir / name).exists():
            return str(bin_dir / name)
    raise StationError(POSTGRES_INSTALL)


class LocalPostgres:
    """A private PostgreSQL cluster on a Unix socket in its own folder (no TCP), with a ``fleet`` database.

    Authentication is ``trust`` for every local connection: it is a throw-away cluster in a temporary
    folder, and its socket directory is mode 0700 and owned by ``postgres``, so only that user and root
    can reach it. The roles and their privileges (what the fleet's tests check) are the migrations' job
    (``station.fleet.central``); connect as ``postgres`` to run them. ``fsync`` stays on, so a commit
    survives :meth:`kill` the way it would survive a crash.

    Attributes
    ----------
    folder : Path
        The socket directory; the cluster's data is in ``folder/data``, its log in ``folder/postgres.log``.
    """

    def __init__(self, folder: Path):
        self.initdb, self.pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        self._user = _user("postgres", POSTGRES_INSTALL)
        self.folder, self._ours = _service_dir(Path(folder), "postgres", self._user)
        self.data = self.folder / "data"
        self.log_path = self.folder / "postgres.log"
        self._pid: int | None = None
        _chown_tree(self.folder, self._user)
        if not (self.data / "PG_VERSION").exists():
            # --no-sync only skips initdb's own fsync of the fresh cluster; the server runs with fsync on.
            _run(_as_user(self._user, [self.initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust",
                                       "-E", "UTF8", "--no-locale", "--no-sync"]),
                 "initdb", cwd=self.folder)

    def dsn(self, role: str = "postgres", dbname: str = "fleet", password: str | None = None) -> str:
        """A libpq key/value connection string for ``role`` on ``dbname`` over the private socket."""
        parts = [f"host={self.folder}", "port=5432", f"user={role}", f"dbname={dbname}"]
        if password is not None:
            parts.append("password='" + password.replace("\\", "\\\\").replace("'", "\\'") + "'")
        return " ".join(parts)

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while it runs."""
        return self._pid if self._pid is not None and _alive(self._pid) else None

    def start(self) -> LocalPostgres:
        """Start (or restart, with crash recovery after :meth:`kill`) and make sure ``fleet`` exists."""
        if self.pid is not None:
            return self
        options = (f"-c listen_addresses='' -k {self.folder} -c fsync=on -c unix_socket_permissions=0700 "
                   "-c recovery_init_sync_method=syncfs")
        self._remove_stale_lock()
        _LIVE.add(self)
        try:
            _run(_as_user(self._user, [self.pg_ctl, "-D", str(self.data), "-l", str(self.log_path), "-w",
                                       "-t", str(int(START_TIMEOUT_S) * 3), "-o", options, "start"]),
                 "pg_ctl start", cwd=self.folder)
        except StationError as exc:
            _LIVE.discard(self)
            raise StationError(f"{exc}; log: {_tail(self.log_path)}") from exc
        self._pid = int((self.data / "postmaster.pid").read_text().split()[0])
        self._create_database("fleet")
        return self

    def _remove_stale_lock(self) -> None:
        """After :meth:`kill` the lock files still name the dead postmaster; where that process is gone
        (or a zombie not yet reaped by init, which ``kill(pid, 0)`` still finds) PostgreSQL would refuse
        to start, so the stale files go, as it would after a reboot."""
        for lock in [self.data / "postmaster.pid", *self.folder.glob(".s.PGSQL.*.lock")]:
            try:
                pid = int(lock.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            if not _alive(pid):
                lock.unlink(missing_ok=True)

    def _create_database(self, name: str) -> None:
        import psycopg

        try:
            with psycopg.connect(self.dsn(dbname="postgres"), autocommit=True) as conn:
                if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                    conn.execute(f'CREATE DATABASE "{name}"')
        except psycopg.Error as exc:
            raise StationError(f"PostgreSQL: cannot create database {name}: {exc}".splitlines()[0]) from exc

    def stop(self) -> None:
        """A fast shutdown (open sessions are ended; everything committed is kept)."""
        _LIVE.discard(self)
        if self.pid is None:
            self._pid = None
            return
        try:
            _run(_as_user(self._user, [self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "-t", "30",
                                       "stop"]), "pg_ctl stop", cwd=self.folder)
        except StationError:
            self.kill()
        self._pid = None

    def kill(self) -> None:
        """SIGKILL to the postmaster and every server process under it, as a crash would.

        The whole process group (pg_ctl starts the postmaster in a session of its own): killing only the
        postmaster would leave backends holding the shared memory, and the next start would refuse.
        """
        _LIVE.discard(self)
        pid, self._pid = self._pid, None
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _group_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)

    def close(self) -> None:
        """Stop the cluster; a temporary folder of ours is removed, so its cluster is just killed (a
        clean shutdown's checkpoint would fsync every file initdb wrote: seconds per test, for nothing)."""
        if self._ours:
            self.kill()
            shutil.rmtree(self.folder, ignore_errors=True)
        else:
            self.stop()


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie of ours is reaped and counts as dead)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process is still in process group ``pgid``."""
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


@contextlib.contextmanager
def local_postgres(folder: Path) -> Iterator[LocalPostgres]:
    """A running :class:`LocalPostgres` for the ``with`` block; stopped on the way out, whatever happened."""
    server = LocalPostgres(folder)
    try:
        server.start()
        yield server
    finally:
        server.close()
