"""What every fake shares: an HTTP server on 127.0.0.1 (port 0), served from a daemon thread."""

import threading
from http.server import ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    """A thread per connection, so requests overlap (latency, in-flight limits); a deep accept backlog,
    so many client processes connecting at once are not left waiting on SYN retries (the default is 5)."""

    daemon_threads = True
    request_queue_size = 128


class LoopbackServer:
    """Subclasses name their request handler; the handler reaches the fake as `self.server.fake`."""

    handler_class = None
    thread_name = "fake"

    _server = None
    _thread = None

    def start(self):
        self._server = _Server(("127.0.0.1", 0), self.handler_class)
        self._server.fake = self
        # A short poll interval makes stop() quick: shutdown() waits for the loop's next poll.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, name=self.thread_name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = self._thread = None

    def __enter__(self):
        return self.start() if self._server is None else self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"
