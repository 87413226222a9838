// {{name}}: a wasmgate function in AssemblyScript (a WASI preview1 command, served
// CGI-style, through @assemblyscript/wasi-shim).
//
//     GET  /{{name}}?name=Ada            200 {"greeting": "hello, Ada"}
//     POST /{{name}}  {"name": "Ada"}    201 {"greeting": "hello, Ada"}
//     POST /{{name}}  not JSON           400 {"error": "..."}
//
// The request comes in as CGI environment variables (REQUEST_METHOD, QUERY_STRING, ...)
// and the body on stdin; the response goes out on stdout: a header block (Status:,
// Content-Type:, any header), an empty line, then the body. stderr goes to the gateway's
// log. AssemblyScript has no JSON in its library: jsonName() reads the one field this
// function needs; for more, add a package such as json-as.

const MAX_BODY = 65536;

/** Decodes a %XX / + encoded query value. */
function urlDecode(text: string): string {
  const bytes = new Uint8Array(text.length);
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c == 0x2b) {
      bytes[n++] = 0x20;
    } else if (c == 0x25 && i + 2 < text.length) {
      bytes[n++] = <u8>I32.parseInt(text.substr(i + 1, 2), 16);
      i += 2;
    } else {
      bytes[n++] = <u8>c;
    }
  }
  return String.UTF8.decode(bytes.slice(0, n).buffer);
}

/** The name query parameter, or "world". */
function queryName(): string {
  const query = process.env.has("QUERY_STRING") ? process.env.get("QUERY_STRING") : "";
  const pairs = query.split("&");
  for (let i = 0; i < pairs.length; i++) {
    if (pairs[i].startsWith("name=") && pairs[i].length > 5) {
      return urlDecode(pairs[i].substr(5));
    }
  }
  return "world";
}

/** The whole body, from stdin. */
function readBody(): string {
  const buffer = new ArrayBuffer(MAX_BODY);
  let len = 0;
  while (len < MAX_BODY) {
    const n = process.stdin.read(buffer, len);
    if (n <= 0) break;
    len += n;
  }
  return String.UTF8.decode(buffer.slice(0, len));
}

/** The string value of "name" in a JSON object such as {"name": "Ada"}, or null. */
function jsonName(body: string): string | null {
  const text = body.trim();
  if (!text.startsWith("{")) return null;
  let i = text.indexOf('"name"');
  if (i < 0) return null;
  i += 6;
  while (i < text.length && text.charAt(i) == " ") i++;
  if (text.charAt(i++) != ":") return null;
  while (i < text.length && text.charAt(i) == " ") i++;
  if (text.charAt(i++) != '"') return null;
  let name = "";
  while (i < text.length && text.charAt(i) != '"') {
    let c = text.charAt(i++);
    if (c == "\\") {
      if (i >= text.length) return null;
      c = text.charAt(i++);
      if (c == "n") c = "\n";
      else if (c == "t") c = "\t";
      else if (c != '"' && c != "\\" && c != "/") return null;
    }
    name += c;
  }
  return i < text.length ? name : null;
}

/** text as a JSON string. */
function jsonString(text: string): string {
  let out = '"';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c == 0x22 || c == 0x5c) out += "\\" + String.fromCharCode(c);
    else if (c < 0x20) out += "\\u" + c.toString(16).padStart(4, "0");
    else out += String.fromCharCode(c);
  }
  return out + '"';
}

/** Writes the CGI header block, the empty line that ends it, and {"key": value}. */
function respond(status: i32, key: string, value: string): void {
  process.stdout.write(
    "Status: " + status.toString() + "\nContent-Type: application/json\nCache-Control: no-store\n\n",
  );
  process.stdout.write('{"' + key + '":' + jsonString(value) + "}\n");
}

function greet(status: i32, name: string): void {
  process.stderr.write("greeted " + name + "\n");
  respond(status, "greeting", "hello, " + name);
}

const method = process.env.has("REQUEST_METHOD") ? process.env.get("REQUEST_METHOD") : "GET";
if (method == "GET" || method == "HEAD") {
  greet(200, queryName());
} else if (method == "POST") {
  const name = jsonName(readBody());
  if (name === null) {
    respond(400, "error", 'the body is not {"name": "..."}');
  } else {
    greet(201, name);
  }
} else {
  respond(405, "error", "method " + method + " not allowed");
}
