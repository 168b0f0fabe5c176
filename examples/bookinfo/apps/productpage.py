"""Bookinfo `productpage`: the HTML page that shows a book's details and reviews.

It calls `details` and `reviews` (through the sidecar, via `HTTP_PROXY`), forwarding the
tracing headers and an `end-user` header naming the signed-in user (`?user=jason`, or the
`user` cookie that `/login` sets). The page says which reviews version answered
(`<div class="reviews" data-version="v2">`) and draws the stars in that version's colour.
"""

from __future__ import annotations

import html
import os
import urllib.parse
from http.cookies import SimpleCookie
from typing import Any

from bookinfo_http import BackendError, Handler, call_json, propagated, serve

DETAILS_URL = os.environ.get("DETAILS_URL", "http://details:9080")
REVIEWS_URL = os.environ.get("REVIEWS_URL", "http://reviews:9080")
RATINGS_URL = os.environ.get("RATINGS_URL", "http://ratings:9080")
"""Only for `/api/v1/products/<id>/ratings`; the page gets ratings through reviews."""
BACKEND_TIMEOUT_S = 3.0
REVIEWS_ATTEMPTS = 2
"""productpage tries reviews twice with a 3 s timeout each, as Istio's does."""

DETAILS_UNAVAILABLE = "Sorry, product details are currently unavailable for this book."
REVIEWS_UNAVAILABLE = "Sorry, product reviews are currently unavailable for this book."
MAX_STARS = 5

PRODUCTS: list[dict[str, Any]] = [
    {
        "id": 0,
        "title": "The Comedy of Errors",
        "descriptionHtml": (
            '<a href="https://en.wikipedia.org/wiki/The_Comedy_of_Errors">Wikipedia Summary</a>'
            ": The Comedy of Errors is one of William Shakespeare's early plays. It is his "
            "shortest and one of his most farcical comedies, with a major part of the humour "
            "coming from slapstick and mistaken identity, in addition to puns and word play."
        ),
    }
]

STYLE = """body { font-family: sans-serif; margin: 2em; }
.details, .reviews { display: inline-block; vertical-align: top; width: 45%; margin: 1em; }
.review { border-left: 3px solid #ccc; padding-left: 1em; margin-bottom: 1em; }
.error { color: #a00; }
"""


def fetch_details(book_id: int, headers: dict[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = call_json(f"{DETAILS_URL}/details/{book_id}", headers, BACKEND_TIMEOUT_S)
    return data


def fetch_reviews(book_id: int, headers: dict[str, str]) -> dict[str, Any]:
    last: BackendError | None = None
    for _ in range(REVIEWS_ATTEMPTS):
        try:
            data: dict[str, Any] = call_json(
                f"{REVIEWS_URL}/reviews/{book_id}", headers, BACKEND_TIMEOUT_S
            )
            return data
        except BackendError as exc:
            last = exc
    assert last is not None
    raise last


def fetch_ratings(book_id: int, headers: dict[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = call_json(f"{RATINGS_URL}/ratings/{book_id}", headers, BACKEND_TIMEOUT_S)
    return data


def render_stars(rating: dict[str, Any]) -> str:
    if "error" in rating:
        return f'<p class="error">{html.escape(str(rating["error"]))}</p>'
    stars = int(rating.get("stars", 0))
    color = html.escape(str(rating.get("color", "black")))
    full = f'<font color="{color}">★</font>' * stars
    empty = f'<font color="{color}">☆</font>' * max(0, MAX_STARS - stars)
    return f'<p class="stars" data-stars="{stars}" data-color="{color}">{full}{empty}</p>'


def render_details(details: dict[str, Any] | None) -> str:
    if details is None:
        return (
            '<div class="details"><h4>Error fetching product details!</h4>'
            f'<p class="error">{DETAILS_UNAVAILABLE}</p></div>'
        )
    rows = "".join(
        f"<dt>{html.escape(key)}</dt><dd>{html.escape(str(details[key]))}</dd>"
        for key in ("type", "pages", "publisher", "language", "ISBN-10", "ISBN-13")
        if key in details
    )
    return f'<div class="details"><h4>Book Details</h4><dl>{rows}</dl></div>'


def render_reviews(reviews: dict[str, Any] | None) -> str:
    if reviews is None:
        return (
            '<div class="reviews"><h4>Error fetching product reviews!</h4>'
            f'<p class="error">{REVIEWS_UNAVAILABLE}</p></div>'
        )
    version = html.escape(str(reviews.get("version", "")))
    parts = []
    for review in reviews.get("reviews", []):
        text = html.escape(str(review.get("text", "")))
        reviewer = html.escape(str(review.get("reviewer", "")))
        stars = render_stars(review["rating"]) if review.get("rating") else ""
        parts.append(
            f'<blockquote class="review"><p>{text}</p><small>{reviewer}</small>{stars}</blockquote>'
        )
    pod = html.escape(str(reviews.get("podname", "")))
    return (
        f'<div class="reviews" data-version="{version}"><h4>Book Reviews</h4>'
        f"{''.join(parts)}"
        f'<p class="served-by">Reviews served by: <span class="podname">{pod}</span> '
        f'(<span class="version">{version}</span>)</p></div>'
    )


def render_page(product: dict[str, Any], details: Any, reviews: Any, user: str | None) -> str:
    title = html.escape(product["title"])
    if user:
        who = (
            f'<p class="user">Signed in as <b>{html.escape(user)}</b> — '
            f'<a href="/logout">sign out</a></p>'
        )
    else:
        who = (
            '<form class="login" method="post" action="/login">'
            '<input name="username" placeholder="user name"> '
            '<button type="submit">Sign in</button></form>'
        )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f'<title>Simple Bookstore App</title><link rel="stylesheet" href="/static/style.css">'
        f"</head><body><h2>BookInfo Sample</h2>{who}"
        f'<h3 class="title">{title}</h3><p>{product["descriptionHtml"]}</p>'
        f"{render_details(details)}{render_reviews(reviews)}</body></html>\n"
    )


INDEX = (
    '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Simple Bookstore App</title>'
    "</head><body><h2>Hello! This is a simple bookstore application.</h2>"
    "<p>It consists of productpage, details, reviews (v1, v2, v3) and ratings.</p>"
    '<p><a href="/productpage?u=normal">Normal user</a> | '
    '<a href="/productpage?user=jason">Test user (jason)</a></p></body></html>\n'
)


class ProductPageHandler(Handler):
    def _query(self) -> dict[str, str]:
        query = urllib.parse.urlsplit(self.path).query
        return {k: v[-1] for k, v in urllib.parse.parse_qs(query).items()}

    def _user(self) -> str | None:
        user = self._query().get("user")
        if user:
            return user
        cookie = SimpleCookie(self.headers.get("Cookie") or "")
        morsel = cookie.get("user")
        return morsel.value if morsel is not None and morsel.value else None

    def _downstream_headers(self) -> dict[str, str]:
        headers = propagated(self.headers.items())
        headers.pop("end-user", None)
        user = self._user()
        if user:
            headers["end-user"] = user
        return headers

    def _redirect(self, location: str, cookie: str) -> None:
        self.send_body(302, b"", "text/plain", {"Location": location, "Set-Cookie": cookie})

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        headers = self._downstream_headers()
        if path == "/health":
            self.send_json(200, {"status": "Product page is healthy"})
        elif path == "/":
            self.send_body(200, INDEX.encode(), "text/html; charset=utf-8")
        elif path.startswith("/static/"):
            self.send_body(200, STYLE.encode(), "text/css")
        elif path == "/productpage":
            self._productpage(headers)
        elif path == "/login":
            self._login(self._query().get("user") or self._query().get("username"))
        elif path == "/logout":
            self._redirect("/productpage", "user=; Path=/; Max-Age=0")
        elif path.startswith("/api/v1/products"):
            self._api(path, headers)
        else:
            self.send_not_found()

    do_HEAD = do_GET

    def do_POST(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path != "/login":
            self.send_not_found()
            return
        form = urllib.parse.parse_qs(self.read_body().decode("utf-8", "replace"))
        self._login((form.get("username") or [""])[-1])

    def _login(self, user: str | None) -> None:
        if not user:
            self.send_json(400, {"error": "a user name is needed"})
            return
        cookie = SimpleCookie()
        cookie["user"] = user
        cookie["user"]["path"] = "/"
        self._redirect("/productpage", cookie["user"].OutputString())

    def _productpage(self, headers: dict[str, str]) -> None:
        product = PRODUCTS[0]
        details: dict[str, Any] | None
        reviews: dict[str, Any] | None
        try:
            details = fetch_details(product["id"], headers)
        except BackendError:
            details = None
        try:
            reviews = fetch_reviews(product["id"], headers)
        except BackendError:
            reviews = None
        page = render_page(product, details, reviews, headers.get("end-user"))
        self.send_body(200, page.encode("utf-8"), "text/html; charset=utf-8")

    def _api(self, path: str, headers: dict[str, str]) -> None:
        parts = [p for p in path.split("/") if p][3:]  # after api/v1/products
        if not parts:
            self.send_json(200, PRODUCTS)
            return
        book_id = self.book_id(parts[0])
        if book_id is None:
            return
        fetchers = {"": fetch_details, "reviews": fetch_reviews, "ratings": fetch_ratings}
        what = parts[1] if len(parts) > 1 else ""
        fetch = fetchers.get(what)
        if fetch is None or len(parts) > 2:
            self.send_not_found()
            return
        try:
            self.send_json(200, fetch(book_id, headers))
        except BackendError as exc:
            self.send_json(503, {"error": f"{what or 'details'} unavailable: {exc}"})


if __name__ == "__main__":
    serve(ProductPageHandler, "productpage")
