"""Bookinfo `details`: the book's publication facts as JSON (`GET /details/<id>`)."""

from __future__ import annotations

from bookinfo_http import Handler, serve

BOOK = {
    "author": "William Shakespeare",
    "year": 1595,
    "type": "paperback",
    "pages": 200,
    "publisher": "PublisherA",
    "language": "English",
    "ISBN-10": "1234567890",
    "ISBN-13": "123-1234567890",
}


def book_details(book_id: int) -> dict[str, object]:
    return {"id": book_id, **BOOK}


class DetailsHandler(Handler):
    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/health":
            self.send_json(200, {"status": "Details is healthy"})
            return
        prefix = "/details/"
        if path.startswith(prefix):
            try:
                book_id = int(path[len(prefix) :])
            except ValueError:
                self.send_json(400, {"error": "please provide numeric product ID"})
                return
            self.send_json(200, book_details(book_id))
            return
        self.send_not_found()

    do_HEAD = do_GET


if __name__ == "__main__":
    serve(DetailsHandler, "details")
