"""A plain-HTTP relay with a Hold, for the fault tests: a download or an upload stopped half-way.

As the HTTP proxy of a second engine's builds (the Docker config's `proxies`, which buildx hands
to build steps as `http_proxy`: apt's downloads from Debian's mirror), it forwards each request
to the server it names, and can keep the answers, so that later builds do not go out again. In
front of a registry, it forwards everything to that registry, and stopping it stops "the
registry" as a dying server would: the port closes and every open connection is reset. Either
way its Hold can stop one request in the middle.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from scripts.package_index import Hold, QuietServer, reset

# Headers that belong to one connection, never relayed.
HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade"}


@dataclass
class Relay:
    """Where the relay listens; each request it relayed ("METHOD URL"), in order; its Hold."""

    address: str
    port: int
    requests: list[str] = field(default_factory=list)
    hold: Hold = field(default_factory=Hold)

    @property
    def host(self) -> str:
        return f"{self.address}:{self.port}"


@contextmanager
def serve(address: str, upstream: str = "", port: int = 0, keep: bool = False) -> Iterator[Relay]:
    """Relay HTTP on `address` at `port` (else a free one) while the block runs: to `upstream`
    (host:port) when given, else to the server each request names, as a proxy; with `keep`,
    each GET answered 200 is kept and given again without going out."""
    relay: Relay
    open_connections: set = set()
    kept_answers: dict[str, tuple[dict[str, str], bytes]] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # clients keep connections open and pipeline requests
        # A TLS hello is answered "HTTP/1.1 400", as Go's servers do: what makes Docker fall
        # back to plain HTTP for a registry on 127.0.0.1.
        default_request_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            open_connections.add(self.connection)

        def finish(self) -> None:
            open_connections.discard(self.connection)
            super().finish()

        def request_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                    pass
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def forward(self) -> None:
            url = urlsplit(self.path)  # a proxy's request names the server: http://host/path
            target = upstream or url.netloc or self.headers.get("Host", "")
            path = url.path + (f"?{url.query}" if url.query else "")
            relay.requests.append(f"{self.command} http://{target}{path}")
            body = self.request_body()
            if self.command != "GET" and relay.hold.wants(self.command, path):
                return relay.hold.stall(self)  # an upload: received, never answered
            key = f"http://{target}{path}"
            if key in kept_answers and self.command == "GET":
                status, (headers, content) = 200, kept_answers[key]
            else:
                status, headers, content = self.ask(target, path, body)
                if keep and status == 200 and self.command == "GET":
                    kept_answers[key] = (headers, content)
            if status == 200 and relay.hold.wants(self.command, path):
                headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
                return relay.hold.stall(self, headers, content)  # a download: half of it
            self.reply(status, headers, content)

        def ask(self, target: str, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
            """The answer of the server at `target`; a 502 when it cannot be reached."""
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
            headers.pop("Content-Length", None)
            connection = http.client.HTTPConnection(target, timeout=120)
            try:
                connection.request(self.command, path, body=body or None, headers=headers)
                answer = connection.getresponse()
                content = answer.read()
            except OSError as error:
                return 502, {}, f"relay: {error}\n".encode()
            finally:
                connection.close()
            kept = {k: v for k, v in answer.getheaders() if k.lower() not in HOP}
            return answer.status, kept, content

        do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = forward

        def reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            if self.command != "HEAD":  # a HEAD answer keeps the length of what GET would send
                headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
                headers["Content-Length"] = str(len(body))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # quiet: relay.requests keeps them
            pass

    server = QuietServer((address, port), Handler)
    relay = Relay(address, server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield relay
    finally:
        server.shutdown()  # no new connection is accepted from here on
        server.server_close()
        for connection in list(open_connections):  # and every open one is reset
            reset(connection, wake=True)
        relay.hold.cut()
        thread.join(timeout=10)
