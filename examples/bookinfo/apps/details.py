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
        self.serve_book_api(
            "Details", "/details/", lambda book_id: self.send_json(200, book_details(book_id))
        )

    do_HEAD = do_GET


if __name__ == "__main__":
    serve(DetailsHandler, "details")
