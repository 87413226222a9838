"""{{name}}: a wasmgate function in Python, as a wasi:http 0.2 component (componentize-py,
the `wasi:http/proxy` world).

    GET  /{{name}}?name=Ada            200 {"greeting": "hello, Ada"}
    POST /{{name}}  {"name": "Ada"}    201 {"greeting": "hello, Ada"}
    POST /{{name}}  not JSON           400 {"error": "..."}

The request is an `IncomingRequest`: its method, its path and query, its headers, and a
body read from a stream. The response is an `OutgoingResponse` with a status and headers,
handed to the `ResponseOutparam`, then its body written. `print(..., file=sys.stderr)` goes
to the gateway's log. The bindings (`wit_world`) are generated from `wit/` at build time;
`componentize-py -d wit -w wasi:http/proxy@0.2.12 bindings bindings` writes them out to
read.
"""

import json
import sys
from urllib.parse import parse_qs

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports.streams import StreamError_Closed
from wit_world.imports.types import (
    Fields,
    IncomingBody,
    IncomingRequest,
    Method_Get,
    Method_Head,
    Method_Post,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

# The largest request body read.
MAX_BODY = 64 * 1024
# What one `blocking_read` or `blocking_write_and_flush` takes at most.
CHUNK = 4096


def query_name(request: IncomingRequest) -> str:
    """The `name` query parameter, or "world"."""
    query = (request.path_with_query() or "").partition("?")[2]
    return parse_qs(query).get("name", ["world"])[0]


def read_body(request: IncomingRequest) -> bytes:
    """The whole request body: read from its stream until it is closed."""
    body = request.consume()
    data = b""
    with body.stream() as stream:
        while len(data) <= MAX_BODY:
            try:
                data += stream.blocking_read(CHUNK)
            except Err as e:
                if isinstance(e.value, StreamError_Closed):
                    break
                raise
    IncomingBody.finish(body)
    if len(data) > MAX_BODY:
        raise ValueError(f"the body is larger than {MAX_BODY} bytes")
    return data


def read_name(request: IncomingRequest) -> str:
    """The `name` of a JSON body such as {"name": "Ada"}."""
    try:
        name = json.loads(read_body(request))["name"]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f'the body is not {{"name": "..."}}: {e}') from e
    if not isinstance(name, str):
        raise ValueError('the body is not {"name": "..."}: name is not a string')
    return name


def greet(name: str) -> dict:
    print(f"greeted {name}", file=sys.stderr)
    return {"greeting": f"hello, {name}"}


def respond(response_out: ResponseOutparam, status: int, value: dict) -> None:
    """Sets the status and headers, hands the response over, then writes its body."""
    body = (json.dumps(value) + "\n").encode()
    headers = Fields.from_list([
        ("content-type", b"application/json"),
        ("cache-control", b"no-store"),
    ])
    response = OutgoingResponse(headers)
    response.set_status_code(status)
    outgoing = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    with outgoing.write() as stream:
        for start in range(0, len(body), CHUNK):
            stream.blocking_write_and_flush(body[start:start + CHUNK])
    OutgoingBody.finish(outgoing, None)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        method = request.method()
        if isinstance(method, (Method_Get, Method_Head)):
            status, value = 200, greet(query_name(request))
        elif isinstance(method, Method_Post):
            try:
                status, value = 201, greet(read_name(request))
            except ValueError as e:
                status, value = 400, {"error": str(e)}
        else:
            status, value = 405, {"error": "method not allowed"}
        respond(response_out, status, value)
