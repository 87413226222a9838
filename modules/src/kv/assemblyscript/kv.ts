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
}
