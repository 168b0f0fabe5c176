"""Bookinfo `ratings`: the stars each reviewer gave a book (`GET /ratings/<id>`).

As Istio's: with `DB_TYPE=mongodb` (ratings v2) the stars come from the database at
`MONGO_DB_URL` (`mongodb://mongodb:27017/test`), one connection per request; the app
reaches that host the way a pod does, through the Service variables
(`MONGODB_SERVICE_HOST`/`_PORT`, in local mode its sidecar's listener), else by its name.
The database is `apps/mongodb.py`'s stand-in (docs/differences.md).
"""

from __future__ import annotations

import json
import os
import socket
from urllib.parse import urlparse

from bookinfo_http import Handler, serve

RATINGS = {"Reviewer1": 5, "Reviewer2": 4}


def _database_address(url: str) -> tuple[str, int]:
    parsed = urlparse(url)
    host, port = parsed.hostname or "mongodb", parsed.port or 27017
    prefix = "".join(c if c.isalnum() else "_" for c in host.split(".")[0].upper())
    if f"{prefix}_SERVICE_HOST" in os.environ:
        return os.environ[f"{prefix}_SERVICE_HOST"], int(os.environ[f"{prefix}_SERVICE_PORT"])
    return host, port


def ratings_from_mongodb(url: str) -> dict[str, int]:
    """Reviewer1's and Reviewer2's ratings: the first two documents of `ratings`."""
    with socket.create_connection(_database_address(url), timeout=5) as conn:
        conn.sendall(b"find ratings\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = conn.recv(4096)
            if not chunk:
                break
            reply += chunk
    documents = json.loads(reply)
    return {"Reviewer1": documents[0]["rating"], "Reviewer2": documents[1]["rating"]}


class RatingsHandler(Handler):
    def do_GET(self) -> None:
        self.serve_book_api("Ratings", "/ratings/", self.answer)

    def answer(self, book_id: int) -> None:
        if os.environ.get("DB_TYPE") != "mongodb":
            self.send_json(200, {"id": book_id, "ratings": dict(RATINGS)})
            return
        try:
            url = os.environ.get("MONGO_DB_URL", "mongodb://mongodb:27017/test")
            ratings = ratings_from_mongodb(url)
        except (OSError, ValueError, LookupError, TypeError):
            self.send_json(500, {"error": "could not connect to ratings database"})
            return
        self.send_json(200, {"id": book_id, "ratings": ratings})

    do_HEAD = do_GET


if __name__ == "__main__":
    serve(RatingsHandler, "ratings")
