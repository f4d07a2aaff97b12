"""Python package indexes served over HTTPS to builds, for the tests.

Build steps reach the host on the docker0 gateway (loopback is the step's own), so the server
binds there, and speaks TLS with a CA made for it: the generated tooling takes index mirrors
over https only, and builds trust the CA through the `ca_bundle` secret. Each index answers
the Simple API as uv asks for it (PEP 691 JSON, with file sizes: PEP 700), else PEP 503 HTML.
"""

from __future__ import annotations

import hashlib
import html
import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote

JSON = "application/vnd.pypi.simple.v1+json"


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


@dataclass
class Indexes:
    """What is served: index path -> its files; and every path asked for, in order."""

    base: str
    files: dict[str, list[Path]]
    requests: list[str] = field(default_factory=list)

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
                    if match:
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

    server = ThreadingHTTPServer((address, 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, tls))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    indexes = Indexes(f"https://{address}:{server.server_address[1]}", files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield indexes
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
