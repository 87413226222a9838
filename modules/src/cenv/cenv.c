// cenv: prints "cenv environment:" and every environment variable, one KEY=VALUE a line,
// then the request body it read from stdin, if any. Built with wasi-libc:
//   clang --target=wasm32-wasi -O2 cenv.c -o cenv.wasm
#include <stdio.h>

extern char **environ;

int main(void) {
    puts("cenv environment:");
    for (char **e = environ; *e; e++) {
        puts(*e);
    }
    char buf[4096];
    size_t n, total = 0;
    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) {
        if (total == 0) {
            puts("body:");
        }
        fwrite(buf, 1, n, stdout);
        total += n;
    }
    return 0;
}
