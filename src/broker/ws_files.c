/* ws_files.c -- static files on WebSocket listeners (`http_dir`, ws_files.h): a request target
 * becomes a path under the listener's directory, checked twice against leaving it (no `..` segment
 * after percent-decoding; realpath under the root, which also catches symlinks that point out),
 * and the file is read whole (at most WS_FILE_MAX bytes) into the answer transport_ws.c sends. */
#include "broker/ws_files.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/mem.h"

static const struct {
    const char *ext, *type;
} types[] = {
    {"html", "text/html; charset=utf-8"}, {"htm", "text/html; charset=utf-8"}, {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"}, {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"}, {"map", "application/json"}, {"txt", "text/plain; charset=utf-8"},
    {"xml", "application/xml"}, {"svg", "image/svg+xml"}, {"png", "image/png"}, {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"}, {"gif", "image/gif"}, {"webp", "image/webp"}, {"ico", "image/x-icon"},
    {"wasm", "application/wasm"}, {"woff", "font/woff"}, {"woff2", "font/woff2"}, {"pdf", "application/pdf"},
};

static const char *content_type(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (dot)
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
            if (!strcasecmp(dot + 1, types[i].ext))
                return types[i].type;
    return "application/octet-stream";
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* The target's path (before ? or #), percent-decoded into out[0..cap). 0, or the status that
 * refuses it: 400 (not an absolute path, a bad or NUL escape, too long), 403 (a `..` segment). */
static int decode_path(http_str_t t, char *out, size_t cap)
{
    size_t o = 0;
    if (t.n == 0 || t.p[0] != '/')
        return 400;
    for (size_t i = 0; i < t.n && t.p[i] != '?' && t.p[i] != '#'; i++) {
        char ch = t.p[i];
        if (ch == '%') {
            int hi = i + 2 < t.n ? hexval(t.p[i + 1]) : -1, lo = hi >= 0 ? hexval(t.p[i + 2]) : -1;
            if (lo < 0 || (hi == 0 && lo == 0))
                return 400;
            ch = (char)(hi << 4 | lo);
            i += 2;
        }
        if (o + 1 >= cap)
            return 400;
        out[o++] = ch;
    }
    out[o] = '\0';
    for (const char *s = out; (s = strstr(s, "/..")) != NULL; s += 3) /* any `..` segment, even harmless */
        if (s[3] == '/' || s[3] == '\0')
            return 403;
    return 0;
}

static char *answer_status(int status, const char *extra, size_t *len)
{
    char *buf = xmalloc(512);
    int n = snprintf(buf, 512, "HTTP/1.1 %d %s\r\n%sConnection: close\r\nContent-Length: 0\r\n\r\n", status,
                     http_reason(status), extra ? extra : "");
    *len = (size_t)n < 512 ? (size_t)n : 511;
    return buf;
}

/* Read the regular file at the canonical path real (under the root): the 200 answer, or NULL and
 * the status that refuses it. */
static char *answer_file(const char *real, bool head_only, size_t *len, int *status)
{
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        *status = errno == ENOENT ? 404 : 403;
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > WS_FILE_MAX) {
        *status = 403;
        close(fd);
        return NULL;
    }
    size_t size = (size_t)st.st_size;
    char head[256];
    int h = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                                         "Connection: close\r\n\r\n", content_type(real), size);
    char *buf = xmalloc((size_t)h + (head_only ? 0 : size) + 1);
    memcpy(buf, head, (size_t)h);
    size_t got = 0;
    while (!head_only && got < size) {
        ssize_t n = pread(fd, buf + h + got, size - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) { /* shrank or broke while being read: no answer that would lie about its length */
            free(buf);
            close(fd);
            *status = 500;
            return NULL;
        }
        got += (size_t)n;
    }
    close(fd);
    *status = 200;
    *len = (size_t)h + (head_only ? 0 : size);
    return buf;
}

char *ws_files_answer(const char *root, const http_request_t *req, size_t *len, int *status)
{
    bool head_only = req->method.n == 4 && !memcmp(req->method.p, "HEAD", 4); /* methods are case-sensitive */
    bool get = req->method.n == 3 && !memcmp(req->method.p, "GET", 3);
    if (!get && !head_only)
        return answer_status(*status = 405, "Allow: GET, HEAD\r\n", len);
    char path[PATH_MAX];
    int bad = decode_path(req->target, path, sizeof(path));
    if (bad)
        return answer_status(*status = bad, NULL, len);
    size_t plen = strlen(path);
    char full[PATH_MAX * 2];
    snprintf(full, sizeof(full), "%s%s%s", root, path, path[plen - 1] == '/' ? "index.html" : "");
    char real[PATH_MAX];
    if (!realpath(full, real))
        return answer_status(*status = errno == ENOENT || errno == ENOTDIR ? 404 : 403, NULL, len);
    size_t rl = strlen(root);
    if (strncmp(real, root, rl) || (real[rl] != '/' && real[rl] != '\0'))
        return answer_status(*status = 403, NULL, len); /* a symlink leading out of the directory */
    struct stat st;
    if (stat(real, &st) == 0 && S_ISDIR(st.st_mode)) {
        if (path[plen - 1] == '/')
            return answer_status(*status = 403, NULL, len); /* index.html is a directory */
        char loc[PATH_MAX + 32];
        /* the target as sent (its path part), with a slash: relative links in index.html then work */
        size_t tn = 0;
        while (tn < req->target.n && req->target.p[tn] != '?' && req->target.p[tn] != '#')
            tn++;
        snprintf(loc, sizeof(loc), "Location: %.*s/\r\n", (int)(tn < PATH_MAX ? tn : PATH_MAX), req->target.p);
        return answer_status(*status = 302, loc, len);
    }
    char *buf = answer_file(real, head_only, len, status);
    return buf ? buf : answer_status(*status, NULL, len);
}
