// kv.ts: key-value stores for a wasmgate CGI function in AssemblyScript: the gateway's
// `wasmgate` host functions, and a Store class over them (README "Key-value stores, in
// brief").
//
//   import { Store } from "../../kv/assemblyscript/kv";
//   const store = Store.open("counts");
//   if (store.error == KV_DENIED) ...
//   const visits = store.increment("visits", 1);
//
// A store is open for the request that opened it; the module's [modules.NAME] kv_stores
// lists the stores it may open. Every call waits for the store within the request's
// deadline, and fails with KV_UNAVAILABLE rather than waiting past it.

@external("wasmgate", "kv_open")
declare function kv_open(name: usize, nameLen: u32): i32;
@external("wasmgate", "kv_get")
declare function kv_get(store: i32, key: usize, keyLen: u32, buf: usize, bufLen: u32): i64;
@external("wasmgate", "kv_set")
declare function kv_set(store: i32, key: usize, keyLen: u32, value: usize, valueLen: u32): i32;
@external("wasmgate", "kv_delete")
declare function kv_delete(store: i32, key: usize, keyLen: u32): i32;
@external("wasmgate", "kv_increment")
declare function kv_increment(store: i32, key: usize, keyLen: u32, delta: i64, result: usize): i32;
@external("wasmgate", "kv_list")
declare function kv_list(store: i32, cursor: i64, buf: usize, bufLen: u32, next: usize): i32;
@external("wasmgate", "kv_get_many")
declare function kv_get_many(store: i32, keys: usize, keysLen: u32, buf: usize, bufLen: u32): i64;
@external("wasmgate", "kv_set_many")
declare function kv_set_many(store: i32, entries: usize, entriesLen: u32): i32;
@external("wasmgate", "kv_delete_many")
declare function kv_delete_many(store: i32, keys: usize, keysLen: u32): i32;

export const KV_NOT_FOUND: i32 = -1;
export const KV_DENIED: i32 = -2;
export const KV_TOO_LARGE: i32 = -3;
export const KV_UNAVAILABLE: i32 = -4;
export const KV_INVALID: i32 = -5;
export const KV_QUOTA: i32 = -6;
export const KV_NOT_A_NUMBER: i32 = -7;

function len(buf: ArrayBuffer): u32 {
  return <u32>buf.byteLength;
}

/** Byte strings as the batch calls take them: each a u32 LE length and its bytes. */
function encode(strings: ArrayBuffer[]): ArrayBuffer {
  let total = 0;
  for (let i = 0; i < strings.length; i++) total += 4 + strings[i].byteLength;
  const out = new ArrayBuffer(total);
  let at = changetype<usize>(out);
  for (let i = 0; i < strings.length; i++) {
    store<u32>(at, strings[i].byteLength);
    memory.copy(at + 4, changetype<usize>(strings[i]), strings[i].byteLength);
    at += 4 + strings[i].byteLength;
  }
  return out;
}

/**
 * A store this request opened. AssemblyScript has no exceptions to catch, so each call
 * leaves its code in `error`: 0 when it succeeded, KV_NOT_FOUND for a `get` of an absent
 * key, another KV_* code when it failed.
 */
export class Store {
  error: i32 = 0;

  private constructor(private handle: i32) {}

  /** Opens store `name`, which the module's kv_stores lists; check `error` (KV_DENIED...). */
  static open(name: string): Store {
    const bytes = String.UTF8.encode(name);
    const handle = kv_open(changetype<usize>(bytes), len(bytes));
    const store = new Store(handle);
    store.error = handle < 0 ? handle : 0;
    return store;
  }

  /** The value at `key`, or null (absent: `error` is KV_NOT_FOUND; failed: another code). */
  get(key: string): ArrayBuffer | null {
    const k = String.UTF8.encode(key);
    let buf = new ArrayBuffer(4096);
    while (true) {
      const n = kv_get(this.handle, changetype<usize>(k), len(k), changetype<usize>(buf), len(buf));
      if (n < 0) {
        this.error = <i32>n;
        return null;
      }
      if (n <= buf.byteLength) {
        this.error = 0;
        return buf.slice(0, <i32>n);
      }
      buf = new ArrayBuffer(<i32>n);
    }
    return null;
  }

  /** Sets `key` to `value`; the code. */
  set(key: string, value: ArrayBuffer): i32 {
    const k = String.UTF8.encode(key);
    this.error = kv_set(this.handle, changetype<usize>(k), len(k), changetype<usize>(value), len(value));
    return this.error;
  }

  /** Deletes `key`, whether or not it exists; the code. */
  delete(key: string): i32 {
    const k = String.UTF8.encode(key);
    this.error = kv_delete(this.handle, changetype<usize>(k), len(k));
    return this.error;
  }

  /** Adds `delta` to the counter at `key` (absent: 0), atomically: the new value (0, with
   * `error` set, when it failed). */
  increment(key: string, delta: i64): i64 {
    const k = String.UTF8.encode(key);
    const result = new ArrayBuffer(8);
    this.error = kv_increment(this.handle, changetype<usize>(k), len(k), delta, changetype<usize>(result));
    return this.error == 0 ? load<i64>(changetype<usize>(result)) : 0;
  }

  /** Every key, in the store's order (pages of up to 1000 behind the scenes); `error` is
   * set when a page failed, with the keys read so far. */
  keys(): string[] {
    const keys: string[] = [];
    let buf = new ArrayBuffer(64 * 1024);
    const next = new ArrayBuffer(8);
    let cursor: i64 = 0;
    while (cursor != -1) {
      const n = kv_list(this.handle, cursor, changetype<usize>(buf), len(buf), changetype<usize>(next));
      if (n == KV_TOO_LARGE) {
        buf = new ArrayBuffer(buf.byteLength * 2);
        continue;
      }
      if (n < 0) {
        this.error = n;
        return keys;
      }
      let at = changetype<usize>(buf);
      for (let i = 0; i < n; i++) {
        const l = load<u32>(at);
        keys.push(String.UTF8.decodeUnsafe(at + 4, l));
        at += 4 + l;
      }
      cursor = load<i64>(changetype<usize>(next));
    }
    this.error = 0;
    return keys;
  }

  /** The values at `keys`, in order, each null when absent (all null, with `error` set,
   * when the call failed). */
  getMany(keys: string[]): Array<ArrayBuffer | null> {
    const strings: ArrayBuffer[] = [];
    for (let i = 0; i < keys.length; i++) strings.push(String.UTF8.encode(keys[i]));
    const request = encode(strings);
    const values = new Array<ArrayBuffer | null>();
    let buf = new ArrayBuffer(4096);
    while (true) {
      const n = kv_get_many(this.handle, changetype<usize>(request), len(request), changetype<usize>(buf), len(buf));
      if (n < 0) {
        this.error = <i32>n;
        for (let i = 0; i < keys.length; i++) values.push(null);
        return values;
      }
      if (n > buf.byteLength) {
        buf = new ArrayBuffer(<i32>n);
        continue;
      }
      let at: i32 = 0;
      while (at + 4 <= <i32>n) {
        const l = load<i32>(changetype<usize>(buf) + at);
        at += 4;
        if (l < 0) {
          values.push(null);
        } else {
          values.push(buf.slice(at, at + l));
          at += l;
        }
      }
      this.error = 0;
      return values;
    }
    return values;
  }

  /** Sets every key of `keys` to the value at the same index, in one atomic write (all or
   * none); the code. */
  setMany(keys: string[], values: ArrayBuffer[]): i32 {
    const strings: ArrayBuffer[] = [];
    for (let i = 0; i < keys.length; i++) {
      strings.push(String.UTF8.encode(keys[i]));
      strings.push(values[i]);
    }
    const entries = encode(strings);
    this.error = kv_set_many(this.handle, changetype<usize>(entries), len(entries));
    return this.error;
  }

  /** Deletes every key of `keys`; the code. */
  deleteMany(keys: string[]): i32 {
    const strings: ArrayBuffer[] = [];
    for (let i = 0; i < keys.length; i++) strings.push(String.UTF8.encode(keys[i]));
    const request = encode(strings);
    this.error = kv_delete_many(this.handle, changetype<usize>(request), len(request));
    return this.error;
  }
}
