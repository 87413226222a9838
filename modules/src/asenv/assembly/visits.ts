// asvisits: counts its visits in the key-value store "counts", remembers who came last and
// every name seen (setMany, keys): /asvisits?NAME answers
// "visit N; before you: PREVIOUS; M names seen". The module's section must list
// the store: [modules.asvisits] kv_stores = ["counts"]. AssemblyScript with
// @assemblyscript/wasi-shim and the bindings in modules/src/kv/assemblyscript.

import { KV_DENIED, KV_NOT_FOUND, Store } from "../../kv/assemblyscript/kv";

function respond(status: i32, text: string): void {
  process.stdout.write("Status: " + status.toString() + "\r\nContent-Type: text/plain\r\n\r\n" + text + "\n");
}

let name = process.env.has("QUERY_STRING") ? process.env.get("QUERY_STRING") : "";
if (name.length == 0) name = "someone";
const store = Store.open("counts");
if (store.error == KV_DENIED) {
  respond(503, 'the store \'counts\' must be listed: [modules.asvisits] kv_stores = ["counts"]');
} else {
  const visits = store.increment("visits:as", 1);
  if (store.error != 0) {
    respond(503, "cannot count the visit (" + store.error.toString() + ")");
  } else {
    const last = store.get("last:as");
    let previous = "nobody";
    if (last != null) previous = String.UTF8.decode(last);
    else if (store.error != KV_NOT_FOUND) previous = "unknown";
    store.setMany(["last:as", "seen:" + name], [String.UTF8.encode(name), String.UTF8.encode("1")]);
    let seen = 0;
    const keys = store.keys();
    for (let i = 0; i < keys.length; i++) if (keys[i].startsWith("seen:")) seen++;
    respond(200, "visit " + visits.toString() + "; before you: " + previous + "; " + seen.toString() + " names seen");
  }
}
