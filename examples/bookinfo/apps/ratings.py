"""Bookinfo `ratings`: the stars each reviewer gave a book (`GET /ratings/<id>`)."""

from __future__ import annotations

from bookinfo_http import Handler, serve

RATINGS = {"Reviewer1": 5, "Reviewer2": 4}


class RatingsHandler(Handler):
    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/health":
            self.send_json(200, {"status": "Ratings is healthy"})
            return
        prefix = "/ratings/"
        if path.startswith(prefix):
            try:
                book_id = int(path[len(prefix) :])
            except ValueError:
                self.send_json(400, {"error": "please provide numeric product ID"})
                return
            self.send_json(200, {"id": book_id, "ratings": dict(RATINGS)})
            return
        self.send_not_found()

    do_HEAD = do_GET


if __name__ == "__main__":
    serve(RatingsHandler, "ratings")
