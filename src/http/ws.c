/* ws.c -- the WebSocket codec (see ws.h). SHA-1 and base64 from OpenSSL 3's libcrypto. */
#include "http/ws.h"

#include <string.h>

#include <openssl/evp.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" /* RFC 6455 section 1.3 */

int ws_accept_key(http_str_t key, char out[WS_ACCEPT_LEN + 1])
{
    /* 16 bytes in base64: 22 characters and "==". */
    uint8_t raw[18];
    if (key.n != 24 || key.p[22] != '=' || key.p[23] != '=' ||
        EVP_DecodeBlock(raw, (const unsigned char *)key.p, 24) != 18)
        return -1;
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned int dn = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) && EVP_DigestUpdate(ctx, key.p, key.n) &&
             EVP_DigestUpdate(ctx, WS_GUID, sizeof(WS_GUID) - 1) && EVP_DigestFinal_ex(ctx, digest, &dn);
    EVP_MD_CTX_free(ctx);
    if (!ok || dn != 20)
        return -1;
    EVP_EncodeBlock((unsigned char *)out, digest, 20); /* 28 characters and a NUL */
    return 0;
}

int ws_frame_header(const uint8_t *buf, size_t len, ws_frame_t *f)
{
    if (len < 2)
        return 0;
    uint8_t b0 = buf[0], b1 = buf[1];
    if (b0 & 0x70)
        return -1; /* RSV1-3 without a negotiated extension */
    f->fin = b0 >> 7;
    f->opcode = b0 & 0x0f;
    switch (f->opcode) {
    case WS_CONT: case WS_TEXT: case WS_BINARY:
        break;
    case WS_CLOSE: case WS_PING: case WS_PONG:
        if (!f->fin || (b1 & 0x7f) > 125)
            return -1; /* control frames are whole and short (section 5.5) */
        break;
    default:
        return -1;
    }
    f->masked = b1 >> 7;
    uint64_t n = b1 & 0x7f;
    size_t h = 2;
    if (n == 126) {
        if (len < 4)
            return 0;
        n = (uint64_t)buf[2] << 8 | buf[3];
        if (n < 126)
            return -1; /* not the minimal encoding (section 5.2) */
        h = 4;
    } else if (n == 127) {
        if (len < 10)
            return 0;
        n = 0;
        for (int i = 0; i < 8; i++)
            n = n << 8 | buf[2 + i];
        if (n >> 63 || n <= 0xffff)
            return -1;
        h = 10;
    }
    if (f->masked) {
        if (len < h + 4)
            return 0;
        memcpy(f->mask, buf + h, 4);
        h += 4;
    } else {
        memset(f->mask, 0, 4);
    }
    f->len = n;
    f->header_len = h;
    return 1;
}

void ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset)
{
    for (size_t i = 0; i < n; i++)
        p[i] ^= mask[(offset + i) & 3];
}

size_t ws_frame_header_encode(uint8_t out[WS_SERVER_HEADER_MAX], uint8_t opcode, bool fin, uint64_t len)
{
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

bool ws_is_upgrade(const http_request_t *req)
{
    const http_str_t *v = http_header(req, "Sec-WebSocket-Version");
    return http_str_ieq(req->method, "GET") && req->minor == 1 && http_header_has_token(req, "Upgrade", "websocket") &&
           http_header_has_token(req, "Connection", "upgrade") && v && http_str_ieq(*v, "13") &&
           http_header(req, "Sec-WebSocket-Key") != NULL;
}

int ws_read(ws_reader_t *r, uint8_t *buf, size_t n, size_t *inp, size_t *outp)
{
    size_t in = *inp, out = *outp;
    int ret = WS_READ_MORE;
    while (in < n) {
        if (!r->in_frame) {
            ws_frame_t *f = &r->f;
            int h;
            if (r->hlen == 0 && (h = ws_frame_header(buf + in, n - in, f)) == 1) {
                in += f->header_len;
            } else {
                size_t room = WS_HEADER_MAX - (size_t)r->hlen;
                size_t take = n - in < room ? n - in : room;
                memcpy(r->hdr + r->hlen, buf + in, take);
                h = ws_frame_header(r->hdr, r->hlen + take, f);
                if (h == 0) {
                    r->hlen = (uint8_t)(r->hlen + take);
                    in += take;
                    break;
                }
                if (h < 0) {
                    r->why = "bad frame header";
                    ret = -WS_CLOSE_PROTOCOL_ERROR;
                    break;
                }
                in += f->header_len - r->hlen;
                r->hlen = 0;
            }
            if (!f->masked != r->from_server) {
                r->why = r->from_server ? "masked frame from a server" : "frame not masked";
                ret = -WS_CLOSE_PROTOCOL_ERROR;
                break;
            }
            if (f->opcode == WS_TEXT) {
                r->why = "text frame (MQTT needs binary frames)";
                ret = -WS_CLOSE_UNSUPPORTED;
                break;
            }
            if ((f->opcode == WS_CONT && !r->in_message) || (f->opcode == WS_BINARY && r->in_message)) {
                r->why = "bad fragmentation";
                ret = -WS_CLOSE_PROTOCOL_ERROR;
                break;
            }
            if (r->max_frame && f->len > r->max_frame) {
                r->why = "frame too large";
                ret = -WS_CLOSE_TOO_BIG;
                break;
            }
            if (!(f->opcode & 0x8))
                r->in_message = !f->fin;
            r->in_frame = 1;
            r->left = f->len;
            r->off = 0;
            r->ctl_len = 0;
        }
        size_t take = n - in < r->left ? n - in : (size_t)r->left;
        if (r->f.opcode & 0x8) {
            memcpy(r->ctl + r->ctl_len, buf + in, take);
            if (r->f.masked)
                ws_unmask(r->ctl + r->ctl_len, take, r->f.mask, r->off);
            r->ctl_len = (uint8_t)(r->ctl_len + take);
        } else if (take > 0) {
            if (r->f.masked)
                ws_unmask(buf + in, take, r->f.mask, r->off);
            if (out != in)
                memmove(buf + out, buf + in, take);
            out += take;
        }
        in += take;
        r->off += take;
        r->left -= take;
        if (r->left == 0) {
            r->in_frame = 0;
            if (r->f.opcode & 0x8) {
                ret = WS_READ_CONTROL;
                break;
            }
        }
    }
    *inp = in;
    *outp = out;
    return ret;
}
