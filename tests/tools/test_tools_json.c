/* test_tools_json.c -- tombo-sub's JSON printer (src/tools/json.c) against libcjson itself, the
 * library mosquitto_sub prints %j/%J with: random and mutated JSON texts, each parsed by both
 * (mosquitto_sub's acceptance rule: cJSON_ParseWithOpts(require_null_terminated) ending exactly at
 * the payload's end) and printed compact and pretty; verdicts and bytes must agree.
 * libcjson.so.1 is loaded at run time (Debian's libcjson1, which mosquitto-clients depends on);
 * without it the test is skipped (exit 77). Usage: test_tools_json [iterations] [seed] */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

typedef void *(*parse_fn)(const char *, const char **, int);
typedef char *(*print_fn)(const void *);
typedef void (*delete_fn)(void *);
typedef void (*free_fn)(void *);
static parse_fn cj_parse;
static print_fn cj_print, cj_print_unformatted;
static delete_fn cj_delete;
static free_fn cj_free;

static uint64_t rng = 88172645463325252ull;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

typedef struct text {
    char *p;
    size_t len, cap;
} text_t;

static void put(text_t *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->p = realloc(t->p, t->cap);
        if (!t->p)
            abort();
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = 0;
}
static void puts_(text_t *t, const char *s) { put(t, s, strlen(s)); }

static void ws(text_t *t)
{
    static const char *const w[] = {"", "", "", " ", "\n", "\t ", "\r\n  ", "\x01", "\x1f"};
    puts_(t, w[rnd(9)]);
}

static void gen_string(text_t *t)
{
    static const char *const parts[] = {
        "a", "hello", " ", "\\n", "\\t", "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\r", "\\u00e9", "\\u0041",
        "\\u0000", "\\u001f", "\\uD83D\\uDE00", "\\uD83D", "\\uDE00", "\\uZZZZ", "\\u12", "\\x", "\xc3\xa9",
        "\xe2\x82\xac", "\x01", "\t", "\x7f", "\xff", "\"", "\\", "\\ud800\\u0041", "\\uDBFF\\uDFFF", "~"};
    put(t, "\"", 1);
    int n = (int)rnd(5);
    for (int i = 0; i < n; i++) {
        const char *p = parts[rnd(sizeof(parts) / sizeof(parts[0]))];
        if ((p[0] == '"' || (p[0] == '\\' && !p[1])) && rnd(4))
            continue; /* mostly keep strings well formed */
        puts_(t, p);
    }
    put(t, "\"", 1);
}

static void gen_number(text_t *t)
{
    static const char *const nums[] = {
        "0", "-0", "1", "-1", "01", "1.", "-.5", "0.1", "1.50", "1e5", "1E-5", "1e400", "-1e400", "1e", "1e+",
        "3e10", "2147483647", "2147483648", "-2147483649", "123456789012345678901234567890", "0.30000000000000004",
        "1.7976931348623157e308", "5e-324", "4.9e-324", "1-2", "--1", "-", "1.2.3", "+1", "0x10", "1.5e3.2",
        "12345678901234567890123456789012345678901234567890123456789012345678901234567890", "9007199254740993",
        "0.1e1", "100", "1e-7", "123.456e-789"};
    puts_(t, nums[rnd(sizeof(nums) / sizeof(nums[0]))]);
}

static void gen_value(text_t *t, int depth)
{
    unsigned k = rnd(depth > 4 ? 6 : 9);
    switch (k) {
    case 0: puts_(t, "null"); break;
    case 1: puts_(t, rnd(2) ? "true" : "false"); break;
    case 2:
    case 3: gen_string(t); break;
    case 4:
    case 5: gen_number(t); break;
    case 6:
    case 7: {
        put(t, "[", 1);
        int n = (int)rnd(4);
        ws(t);
        for (int i = 0; i < n; i++) {
            if (i)
                put(t, ",", 1);
            ws(t);
            gen_value(t, depth + 1);
            ws(t);
        }
        put(t, "]", 1);
        break;
    }
    default: {
        put(t, "{", 1);
        int n = (int)rnd(4);
        ws(t);
        for (int i = 0; i < n; i++) {
            if (i)
                put(t, ",", 1);
            ws(t);
            if (rnd(3))
                puts_(t, rnd(2) ? "\"k\"" : "\"a\\u0000b\"");
            else
                gen_string(t);
            ws(t);
            put(t, ":", 1);
            ws(t);
            gen_value(t, depth + 1);
            ws(t);
        }
        put(t, "}", 1);
    }
    }
}

static void mutate(text_t *t)
{
    static const char alphabet[] = "{}[]\",:\\ 0-e.nu\x00";
    int n = (int)rnd(3);
    for (int i = 0; i < n && t->len; i++) {
        size_t at = rnd((unsigned)t->len);
        char c = alphabet[rnd(sizeof(alphabet) - 1)];
        switch (rnd(3)) {
        case 0: t->p[at] = c; break;
        case 1: memmove(t->p + at, t->p + at + 1, t->len - at); t->len--; break;
        default: {
            put(t, " ", 1);
            memmove(t->p + at + 1, t->p + at, t->len - at - 1);
            t->p[at] = c;
        }
        }
    }
}

static int failures;

static void compare(const char *text, size_t len)
{
    const char *end = NULL;
    void *root = cj_parse(text, &end, 1);
    int ref_ok = root && end == text + len;
    for (int pretty = 0; pretty < 2; pretty++) {
        jbuf_t b;
        jb_init(&b, pretty);
        int ok = jb_parse(&b, text, len);
        char *ref = ref_ok ? (pretty ? cj_print : cj_print_unformatted)(root) : NULL;
        if (ok != ref_ok || (ok && (!ref || strlen(ref) != b.len || memcmp(ref, b.p, b.len)))) {
            if (failures++ < 10) {
                fprintf(stderr, "MISMATCH (pretty %d) input %zu bytes: '", pretty, len);
                fwrite(text, 1, len, stderr);
                fprintf(stderr, "'\n cjson: %s %s\n tombo: %s %s\n", ref_ok ? "ok" : "invalid", ref ? ref : "",
                        ok ? "ok" : "invalid", ok ? b.p : "");
            }
        }
        if (ref)
            cj_free(ref);
        jb_free(&b);
    }
    if (root)
        cj_delete(root);
}

int main(int argc, char **argv)
{
    long iterations = argc > 1 ? atol(argv[1]) : 200000;
    if (argc > 2)
        rng = strtoull(argv[2], NULL, 10) | 1;
    void *h = dlopen("libcjson.so.1", RTLD_NOW);
    if (!h) {
        printf("SKIP: libcjson.so.1 not found (%s)\n", dlerror());
        return 77;
    }
    *(void **)&cj_parse = dlsym(h, "cJSON_ParseWithOpts");
    *(void **)&cj_print = dlsym(h, "cJSON_Print");
    *(void **)&cj_print_unformatted = dlsym(h, "cJSON_PrintUnformatted");
    *(void **)&cj_delete = dlsym(h, "cJSON_Delete");
    *(void **)&cj_free = dlsym(h, "cJSON_free");
    if (!cj_parse || !cj_print || !cj_print_unformatted || !cj_delete || !cj_free) {
        printf("SKIP: libcjson.so.1 lacks a symbol\n");
        return 77;
    }
    /* Fixed cases first: the corners the random ones may miss. */
    static const char *const fixed[] = {
        "", " ", "null", " [1, \"two\" ,true]  ", "{\"a\": 1.50, \"b\":[1,2,{\"c\":null}], \"e\":{}, \"f\":[]}",
        "\xEF\xBB\xBF{}", "\xEF\xBB\xBF", "\xEF\xBB\xBF" "1", "\xEF\xBB\xBF" "12", "[]", "{}", "[[[]]]", "\"\\u0000x\"",
        "{\"k\":1,\"k\":2}", "-0", "1e400", "[1]\x01", "\x01[1]", "nul", "truex", "\"abc", "[1,]", "{\"a\"}", "{,}"};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        compare(fixed[i], strlen(fixed[i]));
    compare("[1]\0", 4);
    compare("\"a\0b\"", 5);
    /* Nesting at cJSON's limit (1000) and one past it. */
    for (int depth = 999; depth <= 1001; depth++) {
        text_t t = {0};
        for (int i = 0; i < depth; i++)
            put(&t, rnd(2) ? "[" : "[", 1);
        for (int i = 0; i < depth; i++)
            put(&t, "]", 1);
        compare(t.p, t.len);
        free(t.p);
    }
    for (long it = 0; it < iterations; it++) {
        text_t t = {0};
        ws(&t);
        gen_value(&t, 0);
        ws(&t);
        if (rnd(3) == 0)
            mutate(&t);
        compare(t.p, t.len);
        free(t.p);
    }
    if (failures) {
        fprintf(stderr, "%d mismatches\n", failures);
        return 1;
    }
    printf("OK: %ld random texts and the fixed cases agree with libcjson\n", iterations);
    return 0;
}
