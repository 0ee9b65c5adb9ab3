"""A local web server for the demo folder: its files and nothing else.

The page does all the inference in the browser (ONNX Runtime Web); the server only hands out
files, so it is kept as small as possible to reason about. At start it lists the folder once
and builds an allow-list from URL paths to files; a request is answered only when its path
(without query string and fragment) is, character for character, one of those URL paths.
Nothing in a request is ever decoded, joined to the folder or looked up on disk, so ``/../``,
``%2e%2e``, ``%2f``, double encoding, backslashes, ``//etc/passwd`` and NUL bytes all miss the
list and get 404, and there is no directory listing. Only GET and HEAD are answered (405 for the
other methods). Hidden files (``.name``) and links leading out of the folder are left out.

MIME types come from :data:`MIME_TYPES`, not the operating system's database, because browsers
insist on ``application/wasm`` for streamed WebAssembly and on a JavaScript type for modules.
It listens on 127.0.0.1 unless the caller names another host (the CLI's ``--host``).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import shutil
import socketserver
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

from betavae.errors import BetaVAEError

MIME_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".onnx": "application/octet-stream",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}
TEXT_PLAIN = "text/plain; charset=utf-8"  # files without a suffix: LICENSE, VERSION
OTHER = "application/octet-stream"

# Characters a browser leaves unencoded in a URL's path (WHATWG URL standard, the path
# percent-encode set), so a file's URL path below is exactly what a browser sends for it.
_PATH_SAFE = "/!$&'()*+,;=:@[]^|"


def content_type(name: str) -> str:
    """The Content-Type the server sends for a file called ``name``."""
    suffix = Path(name).suffix.lower()
    if not suffix:
        return TEXT_PLAIN
    return MIME_TYPES.get(suffix, OTHER)


def url_paths(root: Path) -> dict[str, Path]:
    """The URL path of every file under ``root`` that may be served, mapped to the file.

    ``/`` stands for ``/index.html`` when there is one. Hidden files and folders are left out,
    and so are links whose target lies outside ``root``.
    """
    root = Path(root).resolve()
    files: dict[str, Path] = {}
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = [name for name in dirnames if not name.startswith(".")]
        for name in filenames:
            if name.startswith("."):
                continue
            path = Path(folder, name).resolve()
            if path.is_file() and path.is_relative_to(root):
                relative = Path(folder, name).relative_to(root).as_posix()
                files["/" + quote(relative, safe=_PATH_SAFE)] = path
    if "/index.html" in files:
        files["/"] = files["/index.html"]
    return files


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "betavae-demo"
    sys_version = ""

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def _not_allowed(self) -> None:
        self._refuse(HTTPStatus.METHOD_NOT_ALLOWED)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _not_allowed

    def _answer(self, with_body: bool) -> None:
        target = self.path.split("#", 1)[0].split("?", 1)[0]
        path = self.server.files.get(target)
        if path is None:
            self._refuse(HTTPStatus.NOT_FOUND, with_body)
            return
        try:
            file = open(path, "rb")
        except OSError:  # removed since the server started
            self._refuse(HTTPStatus.NOT_FOUND, with_body)
            return
        with file:
            self.send_response(HTTPStatus.OK)
            self._common_headers(content_type(path.name), os.fstat(file.fileno()).st_size)
            if with_body:
                try:
                    shutil.copyfileobj(file, self.wfile, 1 << 20)
                except (BrokenPipeError, ConnectionResetError):  # the browser went away
                    self.close_connection = True

    def _refuse(self, status: HTTPStatus, with_body: bool = True) -> None:
        body = f"{status.value} {status.phrase}\n".encode()
        self.send_response(status)
        if status is HTTPStatus.METHOD_NOT_ALLOWED:
            self.send_header("Allow", "GET, HEAD")
        self._common_headers(TEXT_PLAIN, len(body))
        if with_body:
            self.wfile.write(body)

    def _common_headers(self, kind: str, length: int) -> None:
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(length))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        if self.server.log_requests:
            super().log_message(format, *args)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], files: dict[str, Path], log_requests: bool) -> None:
        self.files = files
        self.log_requests = log_requests
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer's own looks the host's name up (socket.getfqdn), which can hang on a badly
        # configured resolver; nothing here uses the name.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request: object, client_address: object) -> None:
        """A browser that goes away mid-answer (a reload, a closed tab) is normal, not a fault to print;
        anything else keeps socketserver's trace-back."""
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
            return
        super().handle_error(request, client_address)


class DemoServer:
    """Serves the files of one folder over HTTP, on ``host``:``port`` (0: any free port).

    ``start()`` serves from a background thread and ``close()`` stops (also as a context
    manager); :meth:`serve_forever` blocks until Ctrl-C, for the command line. ``url`` is the
    address to open; ``warning`` is a line to print when the host is not a loopback address.
    """

    def __init__(
        self, root: Path | str, host: str = "127.0.0.1", port: int = 0, *, log_requests: bool = False
    ) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise BetaVAEError(f"{root} is not a folder; nothing to serve")
        self.files = url_paths(self.root)
        self.host = host
        try:
            self._http = _HTTPServer((host, port), self.files, log_requests)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise BetaVAEError(
                    f"port {port} on {host} is already in use; choose another with --port (0: any free port)"
                ) from None
            raise BetaVAEError(f"cannot listen on {host} port {port}: {error.strerror or error}") from None
        self.port: int = self._http.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The address to open in a browser (127.0.0.1 when listening on every interface)."""
        shown = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{shown}:{self.port}/"

    @property
    def warning(self) -> str | None:
        """A line for the user when other machines can reach the server, else None."""
        if is_loopback(self.host):
            return None
        return (f"warning: serving on {self.host or 'every interface'} port {self.port}: "
                f"other machines on the network can load the demo")

    def reload(self, root: Path | str | None = None) -> None:
        """Serve what the folder (or the folder ``root`` from now on) holds now: the command line binds
        the port before it exports the models (a taken port is said at once, not after minutes of
        exporting), then fills the folder."""
        if root is not None:
            self.root = Path(root).resolve()
        self.files = url_paths(self.root)
        self._http.files = self.files

    def start(self) -> DemoServer:
        """Serve from a background thread; returns the server, for ``with DemoServer(...).start()``."""
        if self._thread is None:
            # A short poll, so that close() (which waits for the loop to notice) takes milliseconds.
            self._thread = threading.Thread(
                target=self._http.serve_forever, args=(0.05,), name="betavae-demo", daemon=True
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve from this thread until Ctrl-C, then close and return. Not with :meth:`start`: two
        loops serving one socket race when stopped."""
        if self._thread is not None:
            raise RuntimeError("the server already serves from a background thread (start())")
        try:
            self._http.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self._http.server_close()

    def close(self) -> None:
        """Stop serving and free the port."""
        if self._thread is not None:
            self._http.shutdown()
            self._thread.join()
            self._thread = None
        self._http.server_close()

    def __enter__(self) -> DemoServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def serve(
    root: Path | str, host: str = "127.0.0.1", port: int = 0, *, log_requests: bool = False
) -> DemoServer:
    """A started :class:`DemoServer` for ``root``; close it (or use it in ``with``) when done."""
    return DemoServer(root, host, port, log_requests=log_requests).start()

