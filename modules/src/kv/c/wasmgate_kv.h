/*
 * wasmgate_kv.h: key-value stores for a wasmgate CGI function in C (clang
 * --target=wasm32-wasi): the gateway's `wasmgate` host functions, declared as imports,
 * and their error codes (README "Key-value stores, in brief").
 *
 *     int32_t store = kv_open("counts", 6);
 *     int64_t visits;
 *     if (store >= 0 && kv_increment(store, "visits", 6, 1, &visits) == KV_OK) ...
 *
 * A store is open for the request that opened it; the module's [modules.NAME] kv_stores
 * lists the stores it may open. Every call waits for the store within the request's
 * deadline, and fails with KV_UNAVAILABLE rather than waiting past it. A pointer and
 * length outside the module's memory trap the module.
 */
#ifndef WASMGATE_KV_H
#define WASMGATE_KV_H

#include <stddef.h>
#include <stdint.h>

#define KV_OK 0
#define KV_NOT_FOUND (-1)     /* no such key (kv_get) */
#define KV_DENIED (-2)        /* the store is not in the module's kv_stores */
#define KV_TOO_LARGE (-3)     /* a key or value over its limit, or a batch over 1000 keys */
#define KV_UNAVAILABLE (-4)   /* the backend is down or did not answer in time */
#define KV_INVALID (-5)       /* a bad store name or handle, or a malformed batch */
#define KV_QUOTA (-6)         /* the store would grow past max_store_bytes */
#define KV_NOT_A_NUMBER (-7)  /* kv_increment of a value that is not a decimal int64 */

#define KV_IMPORT(name) __attribute__((import_module("wasmgate"), import_name(name)))

/* A handle (>= 0) for store `name`, or an error. */
KV_IMPORT("kv_open") int32_t kv_open(const char *name, size_t name_len);

/* The value's whole length (its first buf_len bytes are copied to buf; call again with
 * a larger buffer for the rest), KV_NOT_FOUND, or an error. */
KV_IMPORT("kv_get")
int64_t kv_get(int32_t store, const void *key, size_t key_len, void *buf, size_t buf_len);

/* KV_OK or an error. */
KV_IMPORT("kv_set")
int32_t kv_set(int32_t store, const void *key, size_t key_len, const void *value,
               size_t value_len);

/* KV_OK whether or not the key existed, or an error. */
KV_IMPORT("kv_delete") int32_t kv_delete(int32_t store, const void *key, size_t key_len);

/* Adds delta to the counter at key (absent: 0), atomically; KV_OK with the new value at
 * *result, or an error. The counter is stored as decimal text. */
KV_IMPORT("kv_increment")
int32_t kv_increment(int32_t store, const void *key, size_t key_len, int64_t delta,
                     int64_t *result);

/* Keys from the cursor-th (0 to start), each a uint32 LE length and its bytes, as many
 * whole keys as buf holds (at most 1000): how many were written, or an error
 * (KV_TOO_LARGE: buf cannot hold the first). *next is the cursor to pass next, -1 when
 * there are no more. */
KV_IMPORT("kv_list")
int32_t kv_list(int32_t store, int64_t cursor, void *buf, size_t buf_len, int64_t *next);

/* keys: length-prefixed keys. The answer (for each key an int32 LE length, -1 when
 * absent, and the value's bytes) is copied to buf as with kv_get: its whole length, or
 * an error. */
KV_IMPORT("kv_get_many")
int64_t kv_get_many(int32_t store, const void *keys, size_t keys_len, void *buf,
                    size_t buf_len);

/* entries: length-prefixed key, value, key, value...; all set or none. KV_OK or an error. */
KV_IMPORT("kv_set_many")
int32_t kv_set_many(int32_t store, const void *entries, size_t entries_len);

/* keys: length-prefixed keys. KV_OK or an error. */
KV_IMPORT("kv_delete_many")
int32_t kv_delete_many(int32_t store, const void *keys, size_t keys_len);

#undef KV_IMPORT

#endif
