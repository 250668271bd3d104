"""A real S3 + SQS API on loopback for the tests: moto's server, started and stopped by the
tests themselves. ``moto_server`` (session) yields the endpoint and points the standard AWS
settings at it; ``bucket`` gives each test a fresh bucket.

moto (5.2.5) honours S3's conditional requests (``If-None-Match: *`` and ``If-Match`` on
PutObject, ``If-Match`` on DeleteObject) but checks the condition and then writes without a
lock, so two racing requests can both pass (seen: 2 rounds in 200 of 8 processes racing one
``If-None-Match: *`` PUT had two winners). S3 applies them atomically, and the output lock
(``therapy_claims.lock``) depends on that, so the server here runs conditional writes one at a
time."""

from __future__ import annotations

import os
import socket
import threading
import uuid

import pytest

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _atomic_conditional_writes(app):
    """``app`` with conditional PUTs and DELETEs serialised (each runs whole, response included,
    before the next starts), as S3 applies them; every other request runs concurrently."""
    lock = threading.Lock()

    def wrapped(environ, start_response):
        conditional = "HTTP_IF_MATCH" in environ or "HTTP_IF_NONE_MATCH" in environ
        if environ.get("REQUEST_METHOD") not in ("PUT", "DELETE") or not conditional:
            return app(environ, start_response)
        with lock:
            result = app(environ, start_response)
            try:
                return [b"".join(result)]
            finally:
                getattr(result, "close", lambda: None)()

    return wrapped


def _server_class():
    from moto.server import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        ThreadedMotoServer,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    class AtomicMotoServer(ThreadedMotoServer):
        """moto's threaded server (its own ``_server_entry``, moto 5.2.5) with the app wrapped."""

        def _server_entry(self) -> None:
            app = DomainDispatcherApplication(create_backend_app)
            self._server = make_server(
                self._ip_address,
                self._port,
                _atomic_conditional_writes(app),
                True,
                request_handler=MotoRequestHandler,
            )
            self._server_ready_event.set()
            self._server.serve_forever()

    return AtomicMotoServer


@pytest.fixture(scope="session")
def moto_server():
    port = free_port()
    server = _server_class()(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in [*AWS_ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update(AWS_ENV, AWS_ENDPOINT_URL=endpoint)
    try:
        yield endpoint
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def bucket(moto_server, tmp_path_factory, monkeypatch) -> str:
    import boto3

    name = f"tc-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    # an s3:// output names its ledger database (SQLite cannot live on S3): one per bucket
    ledger = tmp_path_factory.mktemp("ledger") / "ledger.sqlite"
    monkeypatch.setenv("THERAPY_CLAIMS_LEDGER", str(ledger))
    return name
