"""The app served by uvicorn over real HTTP, for clients that are not ours."""

import socket
import threading
import time

import uvicorn

from app.clock import Clock
from app.config import Settings
from app.main import create_app
from tests.helpers import listen_on_the_wire


class LiveServer:
    """The app in uvicorn on a free local port, in a thread with its own event loop (and its
    own connections to the test database)."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        # Idle connections are kept longer than the clients' own 5 s: a client must never
        # reuse a connection the server is closing at that very moment (a ReadError).
        config = uvicorn.Config(
            create_app(settings, clock=clock),
            log_level="warning",
            lifespan="on",
            timeout_keep_alive=300,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)  # waiting for another thread to bind and serve
        if not self.server.started:
            self.stop()
            raise RuntimeError("uvicorn did not start within 20 s")

    def count_statements(self) -> list[int]:
        """A counter, in a one-item list, of the queries this server sends from now on."""
        counter = [0]

        def count(_: str) -> None:
            counter[0] += 1

        listen_on_the_wire(self.server.config.app.state.database.engines, count)
        return counter

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def open311(self) -> str:
        return f"{self.url}/open311/v2"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()
        if self.thread.is_alive():
            raise RuntimeError("uvicorn did not stop within 10 s")
