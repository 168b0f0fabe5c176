"""Bookinfo `reviews`: two reviews of a book; v2 and v3 add the ratings (black / red stars).

The version comes from `SERVICE_VERSION` (v1, v2 or v3). v2 and v3 call
`http://ratings:9080/ratings/<id>`, forwarding the end-user and tracing headers.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from bookinfo_http import BackendError, Handler, call_json, propagated, serve

VERSION = os.environ.get("SERVICE_VERSION", "v1")
RATINGS_URL = os.environ.get("RATINGS_URL", "http://ratings:9080")
STAR_COLORS = {"v2": "black", "v3": "red"}
RATINGS_TIMEOUT_S = {"v2": 10.0, "v3": 2.5}
"""v3 gives up on ratings sooner, as Istio's does (it shows in the fault-injection task)."""

REVIEWS = (
    (
        "Reviewer1",
        "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!",
    ),
    (
        "Reviewer2",
        "Absolutely fun and entertaining. The play lacks thematic depth when compared "
        "to other plays by Shakespeare.",
    ),
)


def pod_name() -> str:
    """The instance name (`reviews-v2-0`) the runner gives the app, else the host name."""
    return (
        os.environ.get("POD_NAME")
        or os.environ.get("RATLINE_INSTANCE")
        or os.environ.get("HOSTNAME")
        or socket.gethostname()
    )


def build_reviews(book_id: int, ratings: dict[str, int] | None, ratings_error: str | None) -> Any:
    """The JSON answer: reviews, and for v2/v3 each one's rating or the ratings error."""
    color = STAR_COLORS.get(VERSION)
    reviews = []
    for reviewer, text in REVIEWS:
        review: dict[str, Any] = {"reviewer": reviewer, "text": text}
        if color is not None:
            if ratings_error is not None:
                review["rating"] = {"error": ratings_error}
            elif ratings is not None and reviewer in ratings:
                review["rating"] = {"stars": ratings[reviewer], "color": color}
        reviews.append(review)
    return {
        "id": str(book_id),
        "podname": pod_name(),
        "clustername": "null",
        "version": VERSION,
        "reviews": reviews,
    }


class ReviewsHandler(Handler):
    def do_GET(self) -> None:
        self.serve_book_api("Reviews", "/reviews/", self._reviews)

    def _reviews(self, book_id: int) -> None:
        ratings: dict[str, int] | None = None
        error: str | None = None
        if VERSION in STAR_COLORS:
            try:
                answer = call_json(
                    f"{RATINGS_URL}/ratings/{book_id}",
                    propagated(self.headers.items()),
                    RATINGS_TIMEOUT_S[VERSION],
                )
                ratings = dict(answer.get("ratings") or {})
            except (BackendError, AttributeError):
                error = "Ratings service is currently unavailable"
        self.send_json(200, build_reviews(book_id, ratings, error))

    do_HEAD = do_GET


if __name__ == "__main__":
    serve(ReviewsHandler, f"reviews-{VERSION}")
