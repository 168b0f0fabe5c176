"""Bookinfo `ratings`: the stars each reviewer gave a book (`GET /ratings/<id>`)."""

from __future__ import annotations

from bookinfo_http import Handler, serve

RATINGS = {"Reviewer1": 5, "Reviewer2": 4}


class RatingsHandler(Handler):
    def do_GET(self) -> None:
        self.serve_book_api(
            "Ratings",
            "/ratings/",
            lambda book_id: self.send_json(200, {"id": book_id, "ratings": dict(RATINGS)}),
        )

    do_HEAD = do_GET


if __name__ == "__main__":
    serve(RatingsHandler, "ratings")
