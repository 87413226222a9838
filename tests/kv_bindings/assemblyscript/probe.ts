// Calls every function of the AssemblyScript bindings once, printing what each answered,
// in the order and words every language's probe uses (tests/kv_bindings/README.md).

import { KV_DENIED, KV_NOT_FOUND, Store } from "../../../modules/src/kv/assemblyscript/kv";

function say(line: string): void {
  process.stdout.write(line + "\n");
}

function check(store: Store, what: string): void {
  if (store.error != 0) {
    say(what + " failed " + store.error.toString());
    process.exit(1);
  }
}

function text(buf: ArrayBuffer | null): string {
  return buf == null ? "-" : String.UTF8.decode(buf);
}

const s = Store.open("s");
check(s, "open");
s.set("a", String.UTF8.encode("1"));
check(s, "set");
say("set ok");
say("get " + text(s.get("a")));
say("inc " + s.increment("n", 5).toString());
s.setMany(["b", "c"], [String.UTF8.encode("2"), String.UTF8.encode("3")]);
check(s, "setMany");
say("set_many ok");
const many = s.getMany(["a", "zz", "c"]);
check(s, "getMany");
const shown: string[] = [];
for (let i = 0; i < many.length; i++) shown.push(text(many[i]));
say("get_many " + shown.join(","));
say("keys " + s.keys().join(","));
s.delete("a");
check(s, "delete");
say("delete ok");
s.deleteMany(["b", "c"]);
check(s, "deleteMany");
say("delete_many ok");
say("keys " + s.keys().join(","));
if (s.get("a") == null && s.error == KV_NOT_FOUND) say("get_missing none");
if (Store.open("elsewhere").error == KV_DENIED) say("denied ok");
