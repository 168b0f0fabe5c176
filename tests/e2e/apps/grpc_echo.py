"""A gRPC server for tests, without generated code: raw-bytes unary methods over h2c.

`grpc_echo.py PREFIX` serves on `PORT`:
- `/echo.Echo/Say`: answers `PREFIX request`;
- `/echo.Echo/Flaky`: the first call with a given request (a key) fails UNAVAILABLE,
  the next answers `PREFIX attempt N`, so a retry shows in the answer.
"""

from __future__ import annotations

import os
import sys
import threading
from concurrent import futures

import grpc


def main(prefix: str) -> None:
    attempts: dict[bytes, int] = {}
    lock = threading.Lock()

    def say(request: bytes, _context: grpc.ServicerContext) -> bytes:
        return prefix.encode() + b" " + request

    def flaky(request: bytes, context: grpc.ServicerContext) -> bytes:
        with lock:
            attempts[request] = attempts.get(request, 0) + 1
            count = attempts[request]
        if count == 1:
            context.abort(grpc.StatusCode.UNAVAILABLE, "first attempt fails")
        return f"{prefix} attempt {count}".encode()

    handlers = {
        "Say": grpc.unary_unary_rpc_method_handler(say),
        "Flaky": grpc.unary_unary_rpc_method_handler(flaky),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("echo.Echo", handlers),))
    server.add_insecure_port(f"127.0.0.1:{os.environ['PORT']}")
    server.start()
    server.wait_for_termination()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "hello")
