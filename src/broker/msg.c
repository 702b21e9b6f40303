/* msg.c -- reference-counted application messages.
 *
 * A message and its encodings come from the slab of the thread that builds them (slab.h): on a
 * worker, a free-list pop, no malloc and no lock in the steady state; the last msg_release, on
 * whichever thread, gives each block back to the pool it came from. */
#include "broker/msg.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"
#include "broker/msg_hook.h"
#include "base/slab.h"

static msg_stats_t shared_stats;
static _Thread_local msg_stats_t *my_stats;

void msg_stats_attach(msg_stats_t *s) { my_stats = s; }
const msg_stats_t *msg_stats_shared(void) { return &shared_stats; }

static void count(atomic_ulong *own, atomic_ulong *shared, unsigned long n)
{
    if (own) /* only this thread writes it */
        atomic_store_explicit(own, atomic_load_explicit(own, memory_order_relaxed) + n, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(shared, n, memory_order_relaxed);
}

/* Re-point a view from the decoded packet's property block into our copy of it. */
static mqtt_bytes_t rebase(mqtt_bytes_t v, const uint8_t *old, uint8_t *copy)
{
    if (v.len == 0 || v.p == NULL)
        return (mqtt_bytes_t){copy, 0};
    return (mqtt_bytes_t){copy + (v.p - old), v.len};
}

msg_t *msg_new(mqtt_bytes_t topic, mqtt_bytes_t payload, uint8_t qos, uint8_t retain, const mqtt_props_t *props,
               int64_t now)
{
    uint32_t rawlen = props ? props->raw.len : 0;
    msg_t *m = slab_alloc(sizeof(*m) + topic.len + payload.len + rawlen + 1);
    atomic_init(&m->refs, 1);
    count(my_stats ? &my_stats->made : NULL, &shared_stats.made, 1);
    count(my_stats ? &my_stats->bytes_made : NULL, &shared_stats.bytes_made, payload.len);
    for (int i = 0; i < MSG_ENC_CLASSES; i++)
        atomic_init(&m->enc[i], NULL);
    m->qos = qos;
    m->retain = retain;
    m->has_expiry = 0;
    m->from_cluster = 0;
    m->expiry_at = 0;
    m->cluster_to = 0;
    m->cluster_origin = 0;
    m->cluster_seq = 0;
    m->store_id = 0;
    m->store_inline = 0;
    m->store = NULL;
    uint8_t *p = m->data;
    memcpy(p, topic.p, topic.len);
    m->topic = (mqtt_bytes_t){p, topic.len};
    p += topic.len;
    if (payload.len)
        memcpy(p, payload.p, payload.len);
    m->payload = (mqtt_bytes_t){p, payload.len};
    p += payload.len;
    m->props_has = 0;
    m->user_n = 0;
    if (props) {
        if (rawlen)
            memcpy(p, props->raw.p, rawlen);
        const uint8_t *old = props->raw.p;
        m->props_has = props->has & MSG_FORWARD_PROPS;
        m->payload_format = props->payload_format;
        m->content_type = m->props_has & MQTT_HAS(MQTT_PROP_CONTENT_TYPE) ? rebase(props->content_type, old, p)
                                                                          : (mqtt_bytes_t){NULL, 0};
        m->response_topic = m->props_has & MQTT_HAS(MQTT_PROP_RESPONSE_TOPIC)
                                ? rebase(props->response_topic, old, p)
                                : (mqtt_bytes_t){NULL, 0};
        m->correlation_data = m->props_has & MQTT_HAS(MQTT_PROP_CORRELATION_DATA)
                                  ? rebase(props->correlation_data, old, p)
                                  : (mqtt_bytes_t){NULL, 0};
        if (props->user_n) {
            m->user_n = props->user_n;
            m->user_src = (mqtt_bytes_t){p, rawlen};
        }
        if (props->has & MQTT_HAS(MQTT_PROP_MESSAGE_EXPIRY)) {
            m->has_expiry = 1;
            m->expiry_at = now + (int64_t)props->message_expiry * 1000;
        }
    }
    return m;
}

void msg_props(const msg_t *m, mqtt_props_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!m->props_has && !m->user_n)
        return;
    out->has = m->props_has;
    out->payload_format = m->payload_format;
    if (m->props_has & MQTT_HAS(MQTT_PROP_CONTENT_TYPE))
        out->content_type = m->content_type;
    if (m->props_has & MQTT_HAS(MQTT_PROP_RESPONSE_TOPIC))
        out->response_topic = m->response_topic;
    if (m->props_has & MQTT_HAS(MQTT_PROP_CORRELATION_DATA))
        out->correlation_data = m->correlation_data;
    if (m->user_n) {
        out->user_n = m->user_n;
        out->user_src = m->user_src;
    }
}

/* Who hears of a stored message's end (msg_hook.h): written before the workers start. */
static msg_gone_fn *gone_hook;

void msg_set_gone_hook(msg_gone_fn *fn) { gone_hook = fn; }


void msg_release(msg_t *m)
{
    if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1) {
        if (m->store_id && gone_hook)
            gone_hook(m->store, m->store_id);
        count(my_stats ? &my_stats->freed : NULL, &shared_stats.freed, 1);
        count(my_stats ? &my_stats->bytes_freed : NULL, &shared_stats.bytes_freed, m->payload.len);
        for (int i = 0; i < MSG_ENC_CLASSES; i++) {
            msg_enc_t *e = atomic_load_explicit(&m->enc[i], memory_order_relaxed);
            if (e)
                slab_free(e);
        }
        slab_free(m);
    }
}

const msg_enc_t *msg_encoded(msg_t *m, uint8_t version, uint8_t qos, uint8_t retain)
{
    int cls = (version == MQTT_V5 ? 6 : 0) + qos * 2 + (retain ? 1 : 0);
    msg_enc_t *e = atomic_load_explicit(&m->enc[cls], memory_order_acquire);
    if (e)
        return e;
    mqtt_packet_t p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_PUBLISH;
    p.publish.qos = qos;
    p.publish.retain = retain;
    p.publish.topic = m->topic;
    p.publish.payload = m->payload;
    p.id = qos ? 1 : 0; /* any non-zero id: patched per receiver */
    if (version == MQTT_V5)
        msg_props(m, &p.props);
    size_t n = mqtt_encoded_len(&p, version);
    e = slab_alloc(sizeof(*e) + n);
    e->len = (uint32_t)mqtt_encode(&p, version, e->bytes);
    e->id_off = qos ? (uint32_t)mqtt_publish_id_offset(&p, version) : 0;
    msg_enc_t *expected = NULL;
    if (!atomic_compare_exchange_strong_explicit(&m->enc[cls], &expected, e, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        slab_free(e); /* another worker encoded it first */
        return expected;
    }
    return e;
}

uint32_t msg_expiry_left(const msg_t *m, int64_t now)
{
    if (now >= m->expiry_at)
        return 0;
    return (uint32_t)((m->expiry_at - now + 999) / 1000);
}
