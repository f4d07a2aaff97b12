"""Python package indexes served over HTTPS to builds, for the tests.

Build steps reach the host on the docker0 gateway (loopback is the step's own), so the server
binds there, and speaks TLS with a CA made for it: the generated tooling takes index mirrors
over https only, and builds trust the CA through the `ca_bundle` secret. Each index answers
the Simple API as uv asks for it (PEP 691 JSON, with file sizes: PEP 700), else PEP 503 HTML.
A `Hold` stops one download half-way, for the fault tests: a network cut in the middle of a step.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote

JSON = "application/vnd.pypi.simple.v1+json"


def wheel(
    folder: Path, name: str, version: str, files: dict[str, str], random: int = 0, zeros: int = 0
) -> Path:
    """A pure-Python wheel in `folder`: `files` in module `name`, and a data file of `random`
    bytes (the wheel is as big) or of `zeros` (a small download that unpacks that big)."""
    module = name.replace("-", "_")
    dist = f"{module}-{version}.dist-info"
    path = folder / f"{module}-{version}-py3-none-any.whl"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    tags = "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    members = {f"{module}/{filename}": text for filename, text in files.items()}
    members |= {f"{dist}/METADATA": metadata, f"{dist}/WHEEL": tags}
    folder.mkdir(parents=True, exist_ok=True)
    record = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, text in members.items():
            archive.writestr(member, text)
            record.append(_recorded(member, [text.encode()]))
        if random or zeros:
            member = f"{module}/weights.bin"
            chunks = [os.urandom(random)] if random else _zeros(zeros)
            with archive.open(member, "w", force_zip64=True) as out:
                record.append(_recorded(member, chunks, out.write))
        archive.writestr(f"{dist}/RECORD", "".join(record) + f"{dist}/RECORD,,\n")
    return path


def _zeros(size: int, chunk: int = 1 << 20):
    """`size` zero bytes, a MiB at a time."""
    for start in range(0, size, chunk):
        yield bytes(min(chunk, size - start))


def _recorded(member: str, chunks, write=lambda chunk: None) -> str:
    """The RECORD line of a wheel member made of `chunks`, each passed to `write` on the way."""
    digest, size = hashlib.sha256(), 0
    for chunk in chunks:
        write(chunk)
        digest.update(chunk)
        size += len(chunk)
    encoded = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
    return f"{member},sha256={encoded},{size}\n"


def certificates(folder: Path, address: str) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for `address` (an IP) it signs: (ca.pem, cert.pem, key.pem)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    cert, key, csr = folder / "cert.pem", folder / "key.pem", folder / "cert.csr"
    extensions = folder / "server.ext"
    extensions.write_text(
        f"subjectAltName=IP:{address}\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    for cmd in (
        f"req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-index-CA -keyout {ca_key}"
        f" -out {ca} -addext basicConstraints=critical,CA:TRUE"
        " -addext keyUsage=critical,keyCertSign,cRLSign",
        f"req -newkey rsa:2048 -nodes -subj /CN={address} -keyout {key} -out {csr}",
        f"x509 -req -days 2 -in {csr} -CA {ca} -CAkey {ca_key} -CAcreateserial -out {cert}"
        f" -extfile {extensions}",
    ):
        subprocess.run(["openssl", *cmd.split()], check=True, capture_output=True)
    return ca, cert, key


class Hold:
    """One request stopped half-way, as a network cut or a dying server leaves it. Once armed
    with a method and a path's end, the first such request gets, for a GET, its headers and half
    its body, else nothing; then `reached` is set, and the connection stays open, silent, until
    cut() resets it (TCP RST) or the timeout."""

    def __init__(self) -> None:
        self.method, self.suffix, self.held = "GET", "", ""  # held: the path that was held
        self.reached = threading.Event()
        self._cut = threading.Event()
        self._lock = threading.Lock()

    def arm(self, suffix: str, method: str = "GET") -> None:
        with self._lock:
            self.method, self.suffix, self.held = method, suffix, ""
            self.reached.clear()
            self._cut.clear()

    def wants(self, method: str, path: str) -> bool:
        """Whether this request is the one to hold (each arm() holds one)."""
        with self._lock:
            if method != self.method or not self.suffix or not path.endswith(self.suffix):
                return False
            self.suffix, self.held = "", path
            return True

    def stall(
        self, handler: BaseHTTPRequestHandler, headers: dict[str, str] | None = None, body=b""
    ) -> None:
        """Answer 200 with `headers` and half of `body` (no answer at all when `headers` is
        None), wait for cut(), then reset the connection."""
        if headers is not None:
            handler.send_response(200)
            for key, value in headers.items():
                handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body[: len(body) // 2])
        self.reached.set()
        self._cut.wait(timeout=600)
        reset(handler.connection)  # the RST goes when the handler returns, right after this
        handler.close_connection = True

    def cut(self) -> None:
        self._cut.set()


def reset(connection: socket.socket, wake: bool = False) -> None:
    """End a connection with a TCP RST, as a cut network or a dead server leaves the other end:
    sent when the connection closes (its handler returning); with `wake`, a FIN now too, which
    also wakes a handler that waits on it in another thread."""
    try:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if wake:
            connection.shutdown(socket.SHUT_RDWR)
    except OSError:  # closed already
        pass


@dataclass
class Indexes:
    """What is served: index path -> its files; every path asked for and every file downloaded,
    in order; and a Hold."""

    base: str
    files: dict[str, list[Path]]
    requests: list[str] = field(default_factory=list)
    downloads: list[str] = field(default_factory=list)  # the files served whole, by GET
    hold: Hold = field(default_factory=Hold)

    def url(self, index: str) -> str:
        return f"{self.base}/{index}"

    def project_page(self, index: str, project: str, as_json: bool) -> tuple[str, bytes] | None:
        """The Simple API page of `project` on `index`, or None when it has no such files."""
        found = [f for f in self.files.get(index, []) if _project(f.name) == project]
        if not found:
            return None
        entries = [
            {
                "filename": f.name,
                "url": f"{self.base}/{index}/files/{quote(f.name)}",
                "hashes": {"sha256": hashlib.sha256(f.read_bytes()).hexdigest()},
                "size": f.stat().st_size,
            }
            for f in found
        ]
        if as_json:
            versions = sorted({f.name.split("-")[1] for f in found})
            page = {"meta": {"api-version": "1.1"}, "name": project, "versions": versions}
            page["files"] = entries
            return JSON, json.dumps(page).encode()
        links = "".join(
            f'<a href="{html.escape(e["url"])}#sha256={e["hashes"]["sha256"]}">'
            f"{html.escape(e['filename'])}</a>\n"
            for e in entries
        )
        return "text/html", f"<!DOCTYPE html><html><body>\n{links}</body></html>\n".encode()


def _project(filename: str) -> str:
    """The normalized project name of a wheel file name."""
    return filename.split("-")[0].replace("_", "-").lower()


class QuietServer(ThreadingHTTPServer):
    """A threading HTTP server that does not print a client that went away (a download that
    uv stops reading, a connection the fault tests reset) as an error."""

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


@contextmanager
def serve(files: dict[str, list[Path]], address: str, tls: tuple[Path, Path]) -> Iterator[Indexes]:
    """Serve `files` as indexes (e.g. {"cpu": [...], "mirror/cu124": [...]}) over HTTPS on
    `address` at a free port while the block runs, and stop however the block ends."""
    indexes: Indexes

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = unquote(self.path.split("?")[0])
            indexes.requests.append(path)
            parts = path.strip("/").split("/")
            for index in sorted(indexes.files, key=len, reverse=True):
                depth = index.count("/") + 1
                if parts[:depth] != index.split("/"):
                    continue
                rest = parts[depth:]
                if len(rest) == 2 and rest[0] == "files":
                    match = [f for f in indexes.files[index] if f.name == rest[1]]
                    if match and indexes.hold.wants(self.command, path):
                        kind = {"Content-Type": "application/octet-stream"}
                        return indexes.hold.stall(self, kind, match[0].read_bytes())
                    if match:
                        indexes.downloads += [path] if self.command == "GET" else []
                        return self.reply(200, "application/octet-stream", match[0].read_bytes())
                elif len(rest) == 1:
                    as_json = JSON in self.headers.get("Accept", "")
                    page = indexes.project_page(index, rest[0].lower(), as_json)
                    if page:
                        return self.reply(200, *page)
            return self.reply(404, "text/plain", b"not found\n")

        def do_HEAD(self) -> None:  # uv asks before a download whether ranges are served
            self.do_GET()

        def reply(self, status: int, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # quiet: the requests list keeps them
            pass

    server = QuietServer((address, 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, tls))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    indexes = Indexes(f"https://{address}:{server.server_address[1]}", files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield indexes
    finally:
        indexes.hold.cut()  # a held download ends now
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
