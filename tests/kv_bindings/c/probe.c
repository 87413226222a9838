/* Calls every function of the C header once, printing what each answered, in the order
 * and words every language's probe uses (tests/kv_bindings/README.md). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../../modules/src/kv/c/wasmgate_kv.h"

static unsigned char buf[4096];

/* Appends `s` to `out` at `*at` as a uint32 LE length and its bytes. */
static void put(unsigned char *out, size_t *at, const char *s) {
    uint32_t n = (uint32_t)strlen(s);
    memcpy(out + *at, &n, 4);
    memcpy(out + *at + 4, s, n);
    *at += 4 + n;
}

static void check(int64_t code, const char *what) {
    if (code < 0) {
        printf("%s failed %lld\n", what, (long long)code);
        exit(1);
    }
}

static void keys(int32_t store) {
    int64_t next = 0;
    printf("keys ");
    int first = 1;
    while (next != -1) {
        int32_t n = kv_list(store, next, buf, sizeof buf, &next);
        check(n, "kv_list");
        size_t at = 0;
        for (int32_t i = 0; i < n; i++) {
            uint32_t len;
            memcpy(&len, buf + at, 4);
            printf("%s%.*s", first ? "" : ",", (int)len, buf + at + 4);
            first = 0;
            at += 4 + len;
        }
    }
    printf("\n");
}

int main(void) {
    int32_t store = kv_open("s", 1);
    check(store, "kv_open");
    check(kv_set(store, "a", 1, "1", 1), "kv_set");
    printf("set ok\n");
    int64_t len = kv_get(store, "a", 1, buf, sizeof buf);
    check(len, "kv_get");
    printf("get %.*s\n", (int)len, buf);
    int64_t n;
    check(kv_increment(store, "n", 1, 5, &n), "kv_increment");
    printf("inc %lld\n", (long long)n);
    unsigned char entries[64];
    size_t at = 0;
    put(entries, &at, "b");
    put(entries, &at, "2");
    put(entries, &at, "c");
    put(entries, &at, "3");
    check(kv_set_many(store, entries, at), "kv_set_many");
    printf("set_many ok\n");
    unsigned char wanted[64];
    at = 0;
    put(wanted, &at, "a");
    put(wanted, &at, "zz");
    put(wanted, &at, "c");
    int64_t total = kv_get_many(store, wanted, at, buf, sizeof buf);
    check(total, "kv_get_many");
    printf("get_many ");
    for (size_t i = 0; i < (size_t)total;) {
        const char *separator = i == 0 ? "" : ",";
        int32_t l;
        memcpy(&l, buf + i, 4);
        i += 4;
        if (l < 0) {
            printf("%s-", separator);
        } else {
            printf("%s%.*s", separator, (int)l, buf + i);
            i += (size_t)l;
        }
    }
    printf("\n");
    keys(store);
    check(kv_delete(store, "a", 1), "kv_delete");
    printf("delete ok\n");
    at = 0;
    put(wanted, &at, "b");
    put(wanted, &at, "c");
    check(kv_delete_many(store, wanted, at), "kv_delete_many");
    printf("delete_many ok\n");
    keys(store);
    if (kv_get(store, "a", 1, buf, sizeof buf) == KV_NOT_FOUND) printf("get_missing none\n");
    if (kv_open("elsewhere", 9) == KV_DENIED) printf("denied ok\n");
    return 0;
}
