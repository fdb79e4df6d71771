"""The app served by uvicorn over real HTTP, for clients that are not ours."""

import socket
import threading

import uvicorn

from app.clock import Clock
from app.config import Settings
from app.main import create_app


class LiveServer:
    """The app in uvicorn on a free local port, in a thread with its own event loop (and its
    own connections to the test database)."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        config = uvicorn.Config(
            create_app(settings, clock=clock), log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )
        self.thread.start()
        started = threading.Event()
        while not self.server.started and self.thread.is_alive():
            started.wait(0.01)
        assert self.server.started, "uvicorn did not start"

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
