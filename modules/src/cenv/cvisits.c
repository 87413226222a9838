/*
 * cvisits: counts its visits in the key-value store "counts" (kv_increment) and remembers
 * who came last (kv_get, kv_set): /cvisits?NAME answers "visit N; before you: PREVIOUS".
 * The module's section must list the store: [modules.cvisits] kv_stores = ["counts"].
 * Built with clang --target=wasm32-wasi (modules/build.sh c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kv/c/wasmgate_kv.h"

static int fail(const char *why, int code) {
    printf("Status: 503\r\nContent-Type: text/plain\r\n\r\n%s (%d)\n", why, code);
    return 0;
}

int main(void) {
    const char *name = getenv("QUERY_STRING");
    if (name == NULL || *name == '\0') name = "someone";
    int32_t store = kv_open("counts", 6);
    if (store == KV_DENIED)
        return fail("the store 'counts' must be listed: [modules.cvisits] kv_stores = [\"counts\"]",
                    store);
    if (store < 0) return fail("cannot open the store 'counts'", store);
    int64_t visits = 0;
    int32_t code = kv_increment(store, "visits:c", 8, 1, &visits);
    if (code != KV_OK) return fail("cannot count the visit", code);
    char previous[64];
    int64_t len = kv_get(store, "last:c", 6, previous, sizeof previous - 1);
    if (len == KV_NOT_FOUND) {
        strcpy(previous, "nobody");
    } else if (len < 0) {
        return fail("cannot read the last visitor", (int)len);
    } else {
        previous[len < (int64_t)sizeof previous - 1 ? len : (int64_t)sizeof previous - 1] = '\0';
    }
    code = kv_set(store, "last:c", 6, name, strlen(name) < 63 ? strlen(name) : 63);
    if (code != KV_OK) return fail("cannot remember the visitor", code);
    printf("Content-Type: text/plain\r\n\r\nvisit %lld; before you: %s\n", (long long)visits,
           previous);
    return 0;
}
