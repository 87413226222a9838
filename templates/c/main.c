/*
 * {{name}}: a wasmgate function in C (a WASI preview1 command, served CGI-style).
 *
 *     GET  /{{name}}?name=Ada            200 {"greeting": "hello, Ada"}
 *     POST /{{name}}  {"name": "Ada"}    201 {"greeting": "hello, Ada"}
 *     POST /{{name}}  not JSON           400 {"error": "..."}
 *
 * The request comes in as CGI environment variables (REQUEST_METHOD, QUERY_STRING, ...)
 * and the body on stdin; the response goes out on stdout: a header block (Status:,
 * Content-Type:, any header), an empty line, then the body. stderr goes to the gateway's
 * log. C has no JSON in its library: json_name() below reads the one field this function
 * needs; for more, vendor a parser such as cJSON or jsmn.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BODY 65536
#define MAX_NAME 256

/* Decodes a %XX / + encoded query value into out (at most cap - 1 bytes). */
static void url_decode(const char *in, size_t len, char *out, size_t cap) {
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < cap; i++) {
        unsigned int byte;
        if (in[i] == '+') {
            out[n++] = ' ';
        } else if (in[i] == '%' && i + 2 < len && sscanf(in + i + 1, "%2x", &byte) == 1) {
            out[n++] = (char)byte;
            i += 2;
        } else {
            out[n++] = in[i];
        }
    }
    out[n] = '\0';
}

/* The name query parameter, or "world". */
static void query_name(char *out, size_t cap) {
    const char *query = getenv("QUERY_STRING");
    strcpy(out, "world");
    for (const char *p = query ? query : ""; *p;) {
        size_t len = strcspn(p, "&");
        if (strncmp(p, "name=", 5) == 0 && len > 5) {
            url_decode(p + 5, len - 5, out, cap);
        }
        p += len + (p[len] == '&');
    }
}

/* The string value of "name" in a JSON object such as {"name": "Ada"}, unescaped
 * (\" \\ \/ \n \t only): 0 when found, -1 otherwise. */
static int json_name(const char *body, char *out, size_t cap) {
    const char *p = body + strspn(body, " \t\r\n");
    if (*p != '{') return -1;
    p = strstr(p, "\"name\"");
    if (!p) return -1;
    p += 6;
    p += strspn(p, " \t\r\n");
    if (*p++ != ':') return -1;
    p += strspn(p, " \t\r\n");
    if (*p++ != '"') return -1;
    size_t n = 0;
    for (; *p && *p != '"'; p++) {
        char c = *p;
        if (c == '\\') {
            c = *++p;
            if (!c) return -1;
            c = c == 'n' ? '\n' : c == 't' ? '\t' : c;
            if (!strchr("\"\\/\n\t", c)) return -1;
        }
        if (n + 1 >= cap) return -1;
        out[n++] = c;
    }
    out[n] = '\0';
    return *p == '"' ? 0 : -1;
}

/* Writes s as a JSON string. */
static void json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

/* Writes the CGI header block, the empty line that ends it, and {"key": value}. */
static void respond(int status, const char *key, const char *value) {
    printf("Status: %d\nContent-Type: application/json\nCache-Control: no-store\n\n", status);
    printf("{\"%s\":", key);
    json_string(value);
    printf("}\n");
}

static void greet(int status, const char *name) {
    char greeting[MAX_NAME + 8];
    snprintf(greeting, sizeof greeting, "hello, %s", name);
    fprintf(stderr, "greeted %s\n", name);
    respond(status, "greeting", greeting);
}

int main(void) {
    const char *method = getenv("REQUEST_METHOD");
    char name[MAX_NAME];
    if (!method || !strcmp(method, "GET") || !strcmp(method, "HEAD")) {
        query_name(name, sizeof name);
        greet(200, name);
        return 0;
    }
    if (strcmp(method, "POST") != 0) {
        respond(405, "error", "method not allowed");
        return 0;
    }
    static char body[MAX_BODY + 1];
    size_t len = fread(body, 1, MAX_BODY, stdin);
    body[len] = '\0';
    if (json_name(body, name, sizeof name) != 0) {
        respond(400, "error", "the body is not {\"name\": \"...\"}");
        return 0;
    }
    greet(201, name);
    return 0;
}
