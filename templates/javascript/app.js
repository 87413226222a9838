// {{name}}: a wasmgate function in JavaScript, as a wasi:http 0.2 component
// (componentize-js, the `wasi:http/proxy` world, with the web's fetch-event API).
//
//     GET  /{{name}}?name=Ada            200 {"greeting": "hello, Ada"}
//     POST /{{name}}  {"name": "Ada"}    201 {"greeting": "hello, Ada"}
//     POST /{{name}}  not JSON           400 {"error": "..."}
//
// The request is a web `Request` (`await request.json()` reads the body), the answer a web
// `Response` with a status and headers. `console.error` goes to the gateway's log.

function respond(status, value) {
  return new Response(JSON.stringify(value) + "\n", {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store" },
  });
}

function greet(status, name) {
  console.error(`greeted ${name}`);
  return respond(status, { greeting: `hello, ${name}` });
}

async function handle(request) {
  if (request.method === "GET" || request.method === "HEAD") {
    return greet(200, new URL(request.url).searchParams.get("name") || "world");
  }
  if (request.method !== "POST") {
    return respond(405, { error: "method not allowed" });
  }
  let body;
  try {
    body = await request.json();
  } catch (e) {
    return respond(400, { error: `the body is not {"name": "..."}: ${e}` });
  }
  if (typeof body?.name !== "string") {
    return respond(400, { error: 'the body is not {"name": "..."}' });
  }
  return greet(201, body.name);
}

addEventListener("fetch", (event) => event.respondWith(handle(event.request)));
