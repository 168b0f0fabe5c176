"""A stand-in for Bookinfo's `mongodb` (no MongoDB server is packaged here): a TCP service
on port 27017 holding the `ratings` collection Istio's sample database is seeded with.

It speaks one line each way, not MongoDB's wire protocol: `find ratings` answers the
documents as a JSON array. The mesh sees what it sees of MongoDB, a TCP service that the
client speaks first to (Istio's task measures the connections and bytes, not the queries).
"""

from __future__ import annotations

import json
import os
import socketserver

RATINGS = [{"rating": 5}, {"rating": 4}]
"""Istio's sample data (`ratings_data.json`)."""


class Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            query = line.decode().strip()
            if query == "find ratings":
                answer = json.dumps(RATINGS)
            else:
                answer = json.dumps({"error": f"unknown query {query!r}"})
            self.wfile.write(answer.encode() + b"\n")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


if __name__ == "__main__":
    with Server(("127.0.0.1", int(os.environ.get("PORT", "27017"))), Handler) as server:
        server.serve_forever()
