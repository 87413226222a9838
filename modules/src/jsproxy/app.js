// jsproxy: a proxy that calls an allowed upstream, as a wasi:http component (JavaScript,
// componentize-js).
//
//     GET /jsproxy?url=http://127.0.0.1:8080/hello
//
// fetches the URL through wasi:http/outgoing-handler and answers with JSON: the upstream's
// status, content type and (the first 4 KiB of) its body. The gateway lets the request out
// only when the module's `allowed_outbound_hosts` lists the destination; otherwise it fails
// inside the component, which answers 502 with the error.

const MAX_BODY_CHARS = 4096;

function json(status, value) {
  return new Response(JSON.stringify(value, null, 2) + "\n", {
    status,
    headers: { "content-type": "application/json" },
  });
}

async function proxy(request) {
  const target = new URL(request.url).searchParams.get("url");
  if (!target) {
    return json(400, { error: "give ?url=http://HOST:PORT/PATH" });
  }
  try {
    const upstream = await fetch(target);
    const text = await upstream.text();
    return json(200, {
      url: target,
      status: upstream.status,
      contentType: upstream.headers.get("content-type"),
      body: text.slice(0, MAX_BODY_CHARS),
    });
  } catch (e) {
    return json(502, { url: target, error: String(e) });
  }
}

addEventListener("fetch", (event) => event.respondWith(proxy(event.request)));
