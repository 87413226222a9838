"""pypage: a templated HTML page as a wasi:http component (Python, componentize-py).

    GET /pypage?name=Ada        a greeting page for Ada, with what the request carried

Everything from the request is HTML-escaped before it goes into the page.
"""

import html
from string import Template
from urllib.parse import parse_qs

from componentize_py_types import Ok
from wit_world import exports
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

# What `blocking-write-and-flush` takes at once.
WRITE_SIZE = 4096
# The longest name the page shows.
MAX_NAME = 80

PAGE = Template("""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Hello, $name</title>
<style>body{font-family:sans-serif;max-width:40em;margin:3em auto}code{background:#eee}</style>
</head>
<body>
<h1>Hello, $name!</h1>
<p>This page was rendered by a Python component, in a fresh instance for this request.</p>
<table>
<tr><th align="left">method</th><td><code>$method</code></td></tr>
<tr><th align="left">path</th><td><code>$path</code></td></tr>
<tr><th align="left">user agent</th><td><code>$agent</code></td></tr>
</table>
<form><input name="name" value="$name"> <button>greet</button></form>
</body>
</html>
""")


def method_name(method) -> str:
    name = type(method).__name__.removeprefix("Method_").upper()
    return method.value if name == "OTHER" else name


def header(request: IncomingRequest, wanted: str) -> str:
    for key, value in request.headers().entries():
        if key.lower() == wanted:
            return value.decode("utf-8", "replace")
    return "unknown"


def render(request: IncomingRequest) -> bytes:
    target = request.path_with_query() or "/"
    path, _, query = target.partition("?")
    name = parse_qs(query).get("name", ["world"])[0][:MAX_NAME] or "world"
    return PAGE.substitute(
        name=html.escape(name),
        method=html.escape(method_name(request.method())),
        path=html.escape(path),
        agent=html.escape(header(request, "user-agent")),
    ).encode()


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        page = render(request)
        headers = Fields.from_list([
            ("content-type", b"text/html; charset=utf-8"),
            ("content-length", str(len(page)).encode()),
        ])
        response = OutgoingResponse(headers)
        body = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        with body.write() as stream:
            for start in range(0, len(page), WRITE_SIZE):
                stream.blocking_write_and_flush(page[start:start + WRITE_SIZE])
        OutgoingBody.finish(body, None)
