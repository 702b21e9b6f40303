/* basic.c -- HTTP Basic authentication credentials (basic.h); base64 through OpenSSL's libcrypto,
 * which the WebSocket handshake already links. */
#include "http/basic.h"

#include <stdbool.h>
#include <string.h>

#include <openssl/evp.h>

int http_basic_credentials(const http_request_t *req, char *buf, size_t cap, const char **user, const char **pass)
{
    const http_str_t *h = http_header(req, "Authorization");
    if (!h || h->n < 6 || !http_str_ieq((http_str_t){h->p, 5}, "basic") || h->p[5] != ' ')
        return -1;
    const char *b64 = h->p + 6;
    size_t n = h->n - 6;
    while (n && *b64 == ' ')
        b64++, n--;
    if (n == 0 || n % 4 || n / 4 * 3 + 1 > cap || n > 4096)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = b64[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
                  c == '/' || (c == '=' && i >= n - 2);
        if (!ok || (c != '=' && i > 0 && b64[i - 1] == '='))
            return -1;
    }
    int len = EVP_DecodeBlock((unsigned char *)buf, (const unsigned char *)b64, (int)n);
    if (len < 0)
        return -1;
    /* EVP_DecodeBlock counts the padding as zero bytes: take them off. */
    if (b64[n - 1] == '=')
        len--;
    if (b64[n - 2] == '=')
        len--;
    buf[len] = '\0';
    char *colon = memchr(buf, ':', (size_t)len);
    if (!colon || memchr(buf, '\0', (size_t)len))
        return -1;
    *colon = '\0';
    *user = buf;
    *pass = colon + 1;
    return 0;
}
