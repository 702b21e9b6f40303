/* props.c -- tombo_props_t: building MQTT 5 property lists for sending, and reading received ones.
 * A list is an mqtt_props_t (what the codec encodes and decodes) plus owned copies of the strings
 * it points to, so sending needs no conversion and a received list is a zero-copy view. */
#include "props.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/utf8.h"

const tombo_props_t props_empty = {{0}, false, {0}, NULL, 0};

tombo_props_t *tombo_props_new(void)
{
    tombo_props_t *p = calloc(1, sizeof(*p));
    if (p)
        p->owned = true;
    return p;
}

void tombo_props_free(tombo_props_t *p)
{
    if (!p || !p->owned)
        return;
    for (size_t i = 0; i < sizeof(p->strings) / sizeof(p->strings[0]); i++)
        free(p->strings[i]);
    for (uint32_t i = 0; i < p->mp.user_n; i++) {
        free((void *)p->users[i].key.p);
        free((void *)p->users[i].val.p);
    }
    free(p->users);
    free(p);
}

void props_view(tombo_props_t *view, const mqtt_props_t *mp)
{
    memset(view, 0, sizeof(*view));
    view->mp = *mp;
}

/* The numeric field of id, with its largest value; NULL for a non-numeric id. */
static void *int_field(mqtt_props_t *mp, int id, uint32_t *max, int *width)
{
    *max = 255;
    *width = 1;
    switch (id) {
    case MQTT_PROP_PAYLOAD_FORMAT: *max = 1; return &mp->payload_format;
    case MQTT_PROP_REQUEST_PROBLEM_INFO: *max = 1; return &mp->request_problem_info;
    case MQTT_PROP_REQUEST_RESPONSE_INFO: *max = 1; return &mp->request_response_info;
    case MQTT_PROP_MAX_QOS: *max = 1; return &mp->max_qos;
    case MQTT_PROP_RETAIN_AVAILABLE: *max = 1; return &mp->retain_available;
    case MQTT_PROP_WILDCARD_SUB_AVAILABLE: *max = 1; return &mp->wildcard_sub_available;
    case MQTT_PROP_SUB_ID_AVAILABLE: *max = 1; return &mp->sub_id_available;
    case MQTT_PROP_SHARED_SUB_AVAILABLE: *max = 1; return &mp->shared_sub_available;
    }
    *width = 2;
    *max = 65535;
    switch (id) {
    case MQTT_PROP_SERVER_KEEP_ALIVE: return &mp->server_keep_alive;
    case MQTT_PROP_RECEIVE_MAX: return &mp->receive_max;
    case MQTT_PROP_TOPIC_ALIAS_MAX: return &mp->topic_alias_max;
    case MQTT_PROP_TOPIC_ALIAS: return &mp->topic_alias;
    }
    *width = 4;
    *max = UINT32_MAX;
    switch (id) {
    case MQTT_PROP_MESSAGE_EXPIRY: return &mp->message_expiry;
    case MQTT_PROP_SESSION_EXPIRY: return &mp->session_expiry;
    case MQTT_PROP_WILL_DELAY: return &mp->will_delay;
    case MQTT_PROP_MAX_PACKET_SIZE: return &mp->max_packet_size;
    case MQTT_PROP_SUBSCRIPTION_ID: *max = 268435455; return &mp->sub_id;
    }
    return NULL;
}

/* The string/binary field of id and its storage slot; NULL for other ids. */
static mqtt_bytes_t *bytes_field(mqtt_props_t *mp, int id, int *slot, bool *binary)
{
    *binary = false;
    switch (id) {
    case MQTT_PROP_CONTENT_TYPE: *slot = 0; return &mp->content_type;
    case MQTT_PROP_RESPONSE_TOPIC: *slot = 1; return &mp->response_topic;
    case MQTT_PROP_CORRELATION_DATA: *slot = 2; *binary = true; return &mp->correlation_data;
    case MQTT_PROP_ASSIGNED_CLIENT_ID: *slot = 3; return &mp->assigned_client_id;
    case MQTT_PROP_AUTH_METHOD: *slot = 4; return &mp->auth_method;
    case MQTT_PROP_AUTH_DATA: *slot = 5; *binary = true; return &mp->auth_data;
    case MQTT_PROP_RESPONSE_INFO: *slot = 6; return &mp->response_info;
    case MQTT_PROP_SERVER_REFERENCE: *slot = 7; return &mp->server_reference;
    case MQTT_PROP_REASON_STRING: *slot = 8; return &mp->reason_string;
    }
    return NULL;
}

tombo_err_t tombo_props_set_int(tombo_props_t *p, int id, uint32_t value)
{
    if (!p || !p->owned || id < 1 || id > 63)
        return TOMBO_ERR_INVAL;
    uint32_t max;
    int width;
    void *f = int_field(&p->mp, id, &max, &width);
    if (!f || value > max || (id == MQTT_PROP_SUBSCRIPTION_ID && value == 0))
        return TOMBO_ERR_INVAL;
    if (width == 1)
        *(uint8_t *)f = (uint8_t)value;
    else if (width == 2)
        *(uint16_t *)f = (uint16_t)value;
    else
        *(uint32_t *)f = value;
    if (id == MQTT_PROP_SUBSCRIPTION_ID)
        p->mp.sub_id_n = 1;
    p->mp.has |= MQTT_HAS(id);
    return TOMBO_OK;
}

static tombo_err_t set_bytes(tombo_props_t *p, int id, const void *data, size_t len, bool want_binary)
{
    int slot;
    bool binary;
    if (!p || !p->owned || (!data && len))
        return TOMBO_ERR_INVAL;
    mqtt_bytes_t *f = bytes_field(&p->mp, id, &slot, &binary);
    if (!f || binary != want_binary || len > 65535)
        return TOMBO_ERR_INVAL;
    if (!binary && !mqtt_utf8_wellformed(data, len))
        return TOMBO_ERR_UTF8_INVALID;
    uint8_t *copy = malloc(len + 1);
    if (!copy)
        return TOMBO_ERR_NOMEM;
    if (len)
        memcpy(copy, data, len);
    copy[len] = 0;
    free(p->strings[slot]);
    p->strings[slot] = copy;
    f->p = copy;
    f->len = (uint32_t)len;
    p->mp.has |= MQTT_HAS(id);
    return TOMBO_OK;
}

tombo_err_t tombo_props_set_string(tombo_props_t *p, int id, const char *value)
{
    if (!value)
        return TOMBO_ERR_INVAL;
    return set_bytes(p, id, value, strlen(value), false);
}

tombo_err_t tombo_props_set_binary(tombo_props_t *p, int id, const void *data, size_t len)
{
    return set_bytes(p, id, data, len, true);
}

static uint8_t *dup_bytes(const void *s, size_t n)
{
    uint8_t *d = malloc(n + 1);
    if (d) {
        if (n)
            memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

static tombo_err_t add_user_bytes(tombo_props_t *p, const void *k, size_t kl, const void *v, size_t vl)
{
    if (kl > 65535 || vl > 65535)
        return TOMBO_ERR_INVAL;
    if (!mqtt_utf8_wellformed(k, kl) || !mqtt_utf8_wellformed(v, vl))
        return TOMBO_ERR_UTF8_INVALID;
    if (p->mp.user_n == p->users_cap) {
        uint32_t cap = p->users_cap ? p->users_cap * 2 : 4;
        mqtt_strpair_t *n = realloc(p->users, cap * sizeof(*n));
        if (!n)
            return TOMBO_ERR_NOMEM;
        p->users = n;
        p->users_cap = cap;
    }
    uint8_t *kc = dup_bytes(k, kl), *vc = dup_bytes(v, vl);
    if (!kc || !vc) {
        free(kc);
        free(vc);
        return TOMBO_ERR_NOMEM;
    }
    mqtt_strpair_t *e = &p->users[p->mp.user_n++];
    e->key.p = kc;
    e->key.len = (uint32_t)kl;
    e->val.p = vc;
    e->val.len = (uint32_t)vl;
    p->mp.user = p->users;
    p->mp.has |= MQTT_HAS(MQTT_PROP_USER_PROPERTY);
    return TOMBO_OK;
}

tombo_err_t tombo_props_add_user(tombo_props_t *p, const char *key, const char *value)
{
    if (!p || !p->owned || !key || !value)
        return TOMBO_ERR_INVAL;
    return add_user_bytes(p, key, strlen(key), value, strlen(value));
}

tombo_err_t tombo_props_set_content_type(tombo_props_t *p, const char *type)
{
    return tombo_props_set_string(p, MQTT_PROP_CONTENT_TYPE, type);
}

tombo_err_t tombo_props_set_response_topic(tombo_props_t *p, const char *topic)
{
    return tombo_props_set_string(p, MQTT_PROP_RESPONSE_TOPIC, topic);
}

tombo_err_t tombo_props_set_correlation_data(tombo_props_t *p, const void *data, size_t len)
{
    return tombo_props_set_binary(p, MQTT_PROP_CORRELATION_DATA, data, len);
}

tombo_err_t tombo_props_set_message_expiry(tombo_props_t *p, uint32_t seconds)
{
    return tombo_props_set_int(p, MQTT_PROP_MESSAGE_EXPIRY, seconds);
}

bool tombo_props_get_int(const tombo_props_t *p, int id, uint32_t *out)
{
    if (!p || id < 1 || id > 63 || !(p->mp.has & MQTT_HAS(id)))
        return false;
    mqtt_props_t mp = p->mp;
    uint32_t max;
    int width;
    void *f = int_field(&mp, id, &max, &width);
    if (!f)
        return false;
    if (out)
        *out = width == 1 ? *(uint8_t *)f : width == 2 ? *(uint16_t *)f : *(uint32_t *)f;
    return true;
}

bool tombo_props_get_string(const tombo_props_t *p, int id, const char **data, size_t *len)
{
    if (!p || id < 1 || id > 63 || !(p->mp.has & MQTT_HAS(id)))
        return false;
    mqtt_props_t mp = p->mp;
    int slot;
    bool binary;
    mqtt_bytes_t *f = bytes_field(&mp, id, &slot, &binary);
    if (!f)
        return false;
    if (data)
        *data = f->len ? (const char *)f->p : "";
    if (len)
        *len = f->len;
    return true;
}

size_t tombo_props_user_count(const tombo_props_t *p)
{
    return p ? p->mp.user_n : 0;
}

bool tombo_props_get_user(const tombo_props_t *p, size_t index, const char **key, size_t *key_len,
                          const char **value, size_t *value_len)
{
    if (!p || index >= p->mp.user_n)
        return false;
    mqtt_strpair_t e;
    if (p->mp.user) {
        e = p->mp.user[index];
    } else {
        mqtt_bytes_t cur = p->mp.user_src;
        size_t i = 0;
        bool found = false;
        while (mqtt_props_next_user(&cur, &e)) {
            if (i++ == index) {
                found = true;
                break;
            }
        }
        if (!found)
            return false;
    }
    if (key)
        *key = e.key.len ? (const char *)e.key.p : "";
    if (key_len)
        *key_len = e.key.len;
    if (value)
        *value = e.val.len ? (const char *)e.val.p : "";
    if (value_len)
        *value_len = e.val.len;
    return true;
}

size_t tombo_props_sub_id_count(const tombo_props_t *p)
{
    if (!p || !(p->mp.has & MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID)))
        return 0;
    return p->mp.sub_id_n ? p->mp.sub_id_n : 1;
}

bool tombo_props_get_sub_id(const tombo_props_t *p, size_t index, uint32_t *out)
{
    if (index >= tombo_props_sub_id_count(p))
        return false;
    if (index == 0) {
        *out = p->mp.sub_id;
        return true;
    }
    if (p->mp.sub_ids) {
        *out = p->mp.sub_ids[index];
        return true;
    }
    mqtt_bytes_t cur = p->mp.raw;
    uint32_t v;
    size_t i = 0;
    while (mqtt_props_next_sub_id(&cur, &v))
        if (i++ == index) {
            *out = v;
            return true;
        }
    return false;
}

/* An owned deep copy of any list (a view included); NULL on out-of-memory or for NULL. */
tombo_props_t *props_dup(const tombo_props_t *src)
{
    if (!src)
        return NULL;
    tombo_props_t *d = tombo_props_new();
    if (!d)
        return NULL;
    mqtt_props_t mp = src->mp;
    d->mp = mp;
    d->mp.user = NULL;
    d->mp.user_n = 0;
    d->mp.user_src.p = NULL;
    d->mp.user_src.len = 0;
    d->mp.raw.p = NULL;
    d->mp.raw.len = 0;
    d->mp.sub_ids = NULL;
    d->mp.sub_id_n = (mp.has & MQTT_HAS(MQTT_PROP_SUBSCRIPTION_ID)) ? 1 : 0;
    d->mp.has &= ~MQTT_HAS(MQTT_PROP_USER_PROPERTY);
    static const int ids[] = {MQTT_PROP_CONTENT_TYPE,     MQTT_PROP_RESPONSE_TOPIC,     MQTT_PROP_CORRELATION_DATA,
                              MQTT_PROP_ASSIGNED_CLIENT_ID, MQTT_PROP_AUTH_METHOD,      MQTT_PROP_AUTH_DATA,
                              MQTT_PROP_RESPONSE_INFO,    MQTT_PROP_SERVER_REFERENCE,   MQTT_PROP_REASON_STRING};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        int slot;
        bool binary;
        mqtt_bytes_t *f = bytes_field(&d->mp, ids[i], &slot, &binary);
        f->p = NULL;
        f->len = 0;
        if (!(mp.has & MQTT_HAS(ids[i])))
            continue;
        mqtt_bytes_t *s = bytes_field(&mp, ids[i], &slot, &binary);
        d->strings[slot] = dup_bytes(s->p, s->len);
        if (!d->strings[slot]) {
            tombo_props_free(d);
            return NULL;
        }
        f->p = d->strings[slot];
        f->len = s->len;
    }
    size_t n = tombo_props_user_count(src);
    for (size_t i = 0; i < n; i++) {
        const char *k, *v;
        size_t kl, vl;
        if (tombo_props_get_user(src, i, &k, &kl, &v, &vl) && add_user_bytes(d, k, kl, v, vl) != TOMBO_OK) {
            tombo_props_free(d);
            return NULL;
        }
    }
    return d;
}

/* The value type of property `id` (enum mqtt_prop_type), -1 for an unknown id. */
static int prop_type(uint32_t id)
{
    switch (id) {
#define PROP_TYPE(name, ident, type) \
    case ident:                      \
        return type;
        MQTT_PROP_MAP(PROP_TYPE)
#undef PROP_TYPE
    }
    return -1;
}

static size_t str_len_at(const uint8_t *v, size_t n)
{
    return n < 2 ? SIZE_MAX : 2 + ((size_t)v[0] << 8 | v[1]);
}

/* Visit the properties of a received block in order: calls fn(id) for each; stops at the end or
 * at anything that does not parse (the block was validated by mqtt_decode; this only steps over
 * values to keep their order visible). */
static size_t walk_raw(const mqtt_bytes_t *raw, size_t want, int *id_out)
{
    const uint8_t *b = raw->p;
    size_t n = raw->len, pos = 0, k = 0;
    while (b && pos < n) {
        uint32_t id, tmp;
        int used = mqtt_varint_decode(b + pos, n - pos, &id);
        if (used <= 0)
            break;
        pos += (size_t)used;
        size_t len;
        switch (prop_type(id)) {
        case MQTT_PT_BYTE: len = 1; break;
        case MQTT_PT_U16: len = 2; break;
        case MQTT_PT_U32: len = 4; break;
        case MQTT_PT_VARINT: {
            int u = mqtt_varint_decode(b + pos, n - pos, &tmp);
            len = u > 0 ? (size_t)u : SIZE_MAX;
            break;
        }
        case MQTT_PT_STR:
        case MQTT_PT_BIN: len = str_len_at(b + pos, n - pos); break;
        case MQTT_PT_PAIR: {
            size_t a = str_len_at(b + pos, n - pos);
            len = a > n - pos ? SIZE_MAX : a + str_len_at(b + pos + a, n - pos - a);
            break;
        }
        default: len = SIZE_MAX; break;
        }
        if (len == SIZE_MAX || len > n - pos)
            break;
        if (k == want && id_out) {
            *id_out = (int)id;
            return k;
        }
        k++;
        pos += len;
    }
    return k;
}

size_t tombo_props_count(const tombo_props_t *p)
{
    if (!p)
        return 0;
    if (!p->owned)
        return walk_raw(&p->mp.raw, SIZE_MAX, NULL);
    size_t n = p->mp.user_n;
    for (int id = 1; id < 64; id++)
        if (id != MQTT_PROP_USER_PROPERTY && (p->mp.has & MQTT_HAS(id)))
            n++;
    return n;
}

int tombo_props_id_at(const tombo_props_t *p, size_t index)
{
    if (!p)
        return 0;
    if (!p->owned) {
        int id = 0;
        walk_raw(&p->mp.raw, index, &id);
        return id;
    }
    size_t k = 0;
    for (int id = 1; id < 64; id++)
        if (id != MQTT_PROP_USER_PROPERTY && (p->mp.has & MQTT_HAS(id)) && k++ == index)
            return id;
    return index - k < p->mp.user_n ? MQTT_PROP_USER_PROPERTY : 0;
}
