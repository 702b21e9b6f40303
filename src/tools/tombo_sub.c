/* tombo-sub -- subscribe to topics and print the messages, with mosquitto_sub's flags and output
 * (-v, -N, -F format strings), so scripts written for mosquitto_sub work after a rename. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "mqtt/topic.h"

typedef struct sub_cfg {
    tool_cfg_t base;
    bool verbose, no_eol, no_retained, retained_only, exit_after_sub, remove_retained;
    long long msg_count;
    long long timeout;
    const char *format;
    const char **filter_out;
    int nfilter_out;
    const char **unsub;
    int nunsub;
    bool retain_as_published, no_local;
    int retain_handling;
} sub_cfg_t;

static sub_cfg_t cfg;
static volatile sig_atomic_t stop_signal;
static long long received;
static int exit_code;
static bool done;
static int subacks_wanted;

static void usage(void)
{
    printf("tombo-sub is a simple MQTT client that subscribes to topics and prints the messages it receives.\n"
           "tombo-sub version %s running on libtombo %s.\n\n"
           "Usage: tombo-sub {[-h host] [-p port] [-u username] [-P password] -t topic ...}\n"
           "                 [-c] [-k keepalive] [-q qos] [-x session-expiry-interval]\n"
           "                 [-C msg_count] [-E] [-R] [--retained-only] [-T filter_out ...] [-U topic ...]\n"
           "                 [-F format] [-W timeout_secs] [-A bind_address] [--nodelay]\n"
           "                 [-i id] [-I id_prefix] [-d] [-N] [--quiet] [-v] [-V protocol-version]\n"
           "                 [--will-topic [--will-payload payload] [--will-qos qos] [--will-retain]]\n"
           "                 [--retain-as-published] [--retain-handling always|new|never] [--no-local]\n"
           "                 [-D command identifier value]\n"
           "       tombo-sub --help\n\n"
           " -A : bind the outgoing socket to this host/ip address.\n"
           " -c : disable clean session/enable persistent client mode.\n"
           " -C : disconnect and exit after receiving the 'msg_count' messages.\n"
           " -d : enable debug messages.\n"
           " -D : define MQTT v5 properties: -D command identifier value, e.g.\n"
           "      -D connect user-property key value, -D subscribe subscription-identifier 1.\n"
           " -E : exit once all subscriptions have been acknowledged by the broker.\n"
           " -F : output format: %%t topic, %%p payload, %%q qos, %%r retain, %%l payload length,\n"
           "      %%m message id, %%x/%%X payload in hex, %%I ISO 8601 time, %%U Unix time,\n"
           "      %%C content type, %%D correlation data, %%E message expiry, %%F payload format,\n"
           "      %%P user properties, %%R response topic, %%S subscription identifiers,\n"
           "      %%j the message as JSON, %%%%;\n"
           "      @ followed by a strftime character for the time; \\n \\t \\\\ ... escapes.\n"
           " -h : mqtt host to connect to. Defaults to localhost.\n"
           " -i : id to use for this client.\n"
           " -I : define the client id as id_prefix appended with the process id.\n"
           " -k : keep alive in seconds for this client. Defaults to 60.\n"
           " -N : do not add an end of line character when printing the payload.\n"
           " -p : network port to connect to. Defaults to 1883.\n"
           " -P : provide a password\n"
           " -q : quality of service level to use for the subscription. Defaults to 0.\n"
           " -R : do not print stale messages (those with retain set).\n"
           " -t : mqtt topic to subscribe to. May be repeated multiple times.\n"
           " -T : topic string to filter out of results. May be repeated.\n"
           " -u : provide a username\n"
           " -U : unsubscribe from a topic. May be repeated.\n"
           " -v : print published messages verbosely.\n"
           " -V : specify the version of the MQTT protocol to use when connecting.\n"
           "      Can be mqttv5, mqttv311 or mqttv31. Defaults to mqttv311.\n"
           " -W : Specifies a timeout in seconds how long to process incoming MQTT messages.\n"
           " -x : Set the session-expiry-interval property on the CONNECT packet (MQTT v5).\n"
           " --help : display this message.\n"
           " --quiet : don't print error messages.\n"
           " --retained-only : only handle messages with the retained flag set, and exit when the\n"
           "                   first non-retained message is received.\n"
           " --will-payload, --will-qos, --will-retain, --will-topic : the client's Will.\n",
           TOMBO_VERSION, tombo_lib_version());
}

static bool push(const char ***list, int *n, const char *v)
{
    const char **l = realloc(*list, (size_t)(*n + 1) * sizeof(*l));
    if (!l)
        return false;
    l[(*n)++] = v;
    *list = l;
    return true;
}

/* Validate a -F format the way mosquitto_sub does, so a bad one fails before connecting. */
static bool format_valid(const char *f)
{
    for (const char *p = f; *p; p++) {
        if (*p == '%') {
            p++;
            while (*p == '-' || *p == '0' || (*p >= '0' && *p <= '9') || *p == '.')
                p++;
            if (!*p) {
                tool_usage_error(&cfg.base, "Incomplete format specifier.\n");
                return false;
            }
            if (!strchr("%ACDEFIjlmpPqrRStUxX", *p)) {
                tool_usage_error(&cfg.base, "Invalid format specifier '%c'.\n", *p);
                return false;
            }
        } else if (*p == '\\') {
            p++;
            if (!*p) {
                tool_usage_error(&cfg.base, "Incomplete escape specifier.\n");
                return false;
            }
            if (!strchr("\\0aenrtv", *p)) {
                tool_usage_error(&cfg.base, "Invalid escape specifier '%c'.\n", *p);
                return false;
            }
        } else if (*p == '@') {
            p++;
            if (!*p) {
                tool_usage_error(&cfg.base, "Incomplete format specifier.\n");
                return false;
            }
        }
    }
    return true;
}

static void print_padded(const char *s, size_t n, int width, bool left)
{
    int pad = width > (int)n ? width - (int)n : 0;
    if (!left)
        for (int i = 0; i < pad; i++)
            putchar(' ');
    fwrite(s, 1, n, stdout);
    if (left)
        for (int i = 0; i < pad; i++)
            putchar(' ');
}

static void print_num(long long v, int width, bool left, bool zero)
{
    if (left)
        printf("%-*lld", width, v);
    else if (zero)
        printf("%0*lld", width, v);
    else
        printf("%*lld", width, v);
}

static void print_prop_string(const tombo_props_t *p, int id)
{
    const char *s;
    size_t n;
    if (tombo_props_get_string(p, id, &s, &n))
        fwrite(s, 1, n, stdout);
}

/* A JSON string, escaped as mosquitto_sub's %j does (cJSON's rules). */
static void json_string(const char *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        switch (ch) {
        case '"': fputs("\\\"", stdout); break;
        case '\\': fputs("\\\\", stdout); break;
        case '\b': fputs("\\b", stdout); break;
        case '\f': fputs("\\f", stdout); break;
        case '\n': fputs("\\n", stdout); break;
        case '\r': fputs("\\r", stdout); break;
        case '\t': fputs("\\t", stdout); break;
        default:
            if (ch < 0x20)
                printf("\\u%04x", ch);
            else
                putchar(ch);
        }
    }
    putchar('"');
}

static void json_prop_string(const tombo_props_t *p, int id, const char *name, bool *first)
{
    const char *v;
    size_t n;
    if (!tombo_props_get_string(p, id, &v, &n))
        return;
    printf("%s\"%s\":", *first ? "" : ",", name);
    json_string(v, n);
    *first = false;
}

static void json_prop_int(const tombo_props_t *p, int id, const char *name, bool *first)
{
    uint32_t v;
    if (!tombo_props_get_int(p, id, &v))
        return;
    printf("%s\"%s\":%u", *first ? "" : ",", name, v);
    *first = false;
}

/* %j: the message as one JSON object, in mosquitto_sub's layout. */
static void print_json(const tombo_message_t *m, const struct timespec *now, const struct tm *tm)
{
    char ts[64], zone[16];
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", tm);
    strftime(zone, sizeof(zone), "%z", tm);
    printf("{\"tst\":\"%s.%06ldZ%s\",\"topic\":", ts, now->tv_nsec / 1000, zone);
    json_string(m->topic, strlen(m->topic));
    printf(",\"qos\":%d,\"retain\":%d,\"payloadlen\":%zu", m->qos, m->retain ? 1 : 0, m->payload_len);
    if (cfg.base.version == TOMBO_MQTT_V5 && m->props) {
        /* In the order the broker sent them, as mosquitto_sub; user properties grouped in one
         * object where the first one was. */
        const tombo_props_t *p = m->props;
        size_t n = tombo_props_count(p), sub_ids = 0;
        bool first = true, users_done = false, any = false;
        for (size_t i = 0; i < n; i++) {
            int id = tombo_props_id_at(p, i);
            const char *name = id == TOMBO_PROP_CONTENT_TYPE         ? "content-type"
                               : id == TOMBO_PROP_RESPONSE_TOPIC     ? "response-topic"
                               : id == TOMBO_PROP_CORRELATION_DATA   ? "correlation-data"
                               : id == TOMBO_PROP_PAYLOAD_FORMAT     ? "payload-format-indicator"
                               : id == TOMBO_PROP_MESSAGE_EXPIRY     ? "message-expiry-interval"
                               : id == TOMBO_PROP_SUBSCRIPTION_ID    ? "subscription-identifier"
                               : id == TOMBO_PROP_USER_PROPERTY      ? "user-properties"
                                                                     : NULL;
            if (!name || (id == TOMBO_PROP_USER_PROPERTY && users_done))
                continue;
            if (!any)
                fputs(",\"properties\":{", stdout);
            any = true;
            if (id == TOMBO_PROP_USER_PROPERTY) {
                printf("%s\"user-properties\":{", first ? "" : ",");
                size_t nu = tombo_props_user_count(p);
                for (size_t u = 0; u < nu; u++) {
                    const char *k, *val;
                    size_t kl, vl;
                    if (!tombo_props_get_user(p, u, &k, &kl, &val, &vl))
                        continue;
                    if (u)
                        putchar(',');
                    json_string(k, kl);
                    putchar(':');
                    json_string(val, vl);
                }
                putchar('}');
                users_done = true;
                first = false;
            } else if (id == TOMBO_PROP_SUBSCRIPTION_ID) {
                uint32_t v;
                if (tombo_props_get_sub_id(p, sub_ids++, &v)) {
                    printf("%s\"%s\":%u", first ? "" : ",", name, v);
                    first = false;
                }
            } else if (id == TOMBO_PROP_PAYLOAD_FORMAT || id == TOMBO_PROP_MESSAGE_EXPIRY) {
                json_prop_int(p, id, name, &first);
            } else {
                json_prop_string(p, id, name, &first);
            }
        }
        if (any)
            putchar('}');
    }
    fputs(",\"payload\":", stdout);
    if (m->payload_len)
        json_string(m->payload, m->payload_len);
    else
        fputs("null", stdout);
    putchar('}');
}

static void print_formatted(const tombo_message_t *m)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    localtime_r(&now.tv_sec, &tm);
    const unsigned char *pl = m->payload;
    for (const char *f = cfg.format; *f; f++) {
        if (*f == '\\') {
            f++;
            static const char from[] = "\\0aenrtv", to[] = "\\\0\a\033\n\r\t\v";
            const char *k = strchr(from, *f);
            putchar(to[k - from]);
        } else if (*f == '@') {
            f++;
            if (*f == '@') {
                putchar('@');
            } else if (*f == 'N') {
                printf("%09ld", now.tv_nsec);
            } else {
                char spec[3] = {'%', *f, 0}, out[128];
                size_t n = strftime(out, sizeof(out), spec, &tm);
                fwrite(out, 1, n, stdout);
            }
        } else if (*f == '%') {
            f++;
            bool left = false, zero = false;
            int width = 0;
            while (*f == '-' || *f == '0') {
                if (*f == '-')
                    left = true;
                else
                    zero = true;
                f++;
            }
            while (*f >= '0' && *f <= '9')
                width = width * 10 + (*f++ - '0');
            if (*f == '.') /* precision: accepted and ignored */
                for (f++; *f >= '0' && *f <= '9'; f++) {
                }
            uint32_t v;
            switch (*f) {
            case '%': putchar('%'); break;
            case 't': print_padded(m->topic, strlen(m->topic), width, left); break;
            case 'p': print_padded((const char *)pl, m->payload_len, width, left); break;
            case 'q': putchar('0' + m->qos); break;
            case 'r': putchar(m->retain ? '1' : '0'); break;
            case 'l': print_num((long long)m->payload_len, width, left, zero); break;
            case 'm': print_num(m->mid, width, left, zero); break;
            case 'x':
            case 'X':
                for (size_t i = 0; i < m->payload_len; i++)
                    printf(*f == 'x' ? "%02x" : "%02X", pl[i]);
                break;
            case 'I': {
                char out[64];
                size_t n = strftime(out, sizeof(out), "%Y-%m-%dT%H:%M:%S%z", &tm);
                fwrite(out, 1, n, stdout);
                break;
            }
            case 'U': printf("%lld.%09ld", (long long)now.tv_sec, now.tv_nsec); break;
            case 'j': print_json(m, &now, &tm); break;
            case 'C': print_prop_string(m->props, TOMBO_PROP_CONTENT_TYPE); break;
            case 'D': print_prop_string(m->props, TOMBO_PROP_CORRELATION_DATA); break;
            case 'R': print_prop_string(m->props, TOMBO_PROP_RESPONSE_TOPIC); break;
            case 'E':
                if (tombo_props_get_int(m->props, TOMBO_PROP_MESSAGE_EXPIRY, &v))
                    print_num(v, width, left, zero);
                break;
            case 'F':
                if (tombo_props_get_int(m->props, TOMBO_PROP_PAYLOAD_FORMAT, &v))
                    print_num(v, width, left, zero);
                break;
            case 'A': /* topic aliases are resolved by libtombo: never printed */ break;
            case 'S': {
                size_t n = tombo_props_sub_id_count(m->props);
                for (size_t i = 0; i < n; i++)
                    if (tombo_props_get_sub_id(m->props, i, &v))
                        printf(i ? ",%u" : "%u", v);
                break;
            }
            case 'P': {
                size_t n = tombo_props_user_count(m->props);
                for (size_t i = 0; i < n; i++) {
                    const char *k, *val;
                    size_t kl, vl;
                    if (!tombo_props_get_user(m->props, i, &k, &kl, &val, &vl))
                        continue;
                    if (i)
                        putchar(' ');
                    fwrite(k, 1, kl, stdout);
                    putchar(':');
                    fwrite(val, 1, vl, stdout);
                }
                break;
            }
            }
        } else {
            putchar(*f);
        }
    }
    if (!cfg.no_eol)
        putchar('\n');
}

static void on_message(tombo_client_t *c, void *user, const tombo_message_t *m)
{
    (void)user;
    if (done)
        return;
    if (cfg.retained_only && !m->retain) {
        done = true;
        tombo_disconnect(c, 0, cfg.base.p_disconnect);
        return;
    }
    for (int i = 0; i < cfg.nfilter_out; i++)
        if (mqtt_topic_match((const uint8_t *)cfg.filter_out[i], strlen(cfg.filter_out[i]),
                             (const uint8_t *)m->topic, strlen(m->topic)))
            return;
    if (cfg.remove_retained && m->retain)
        tombo_publish(c, NULL, m->topic, NULL, 0, 1, true, NULL);
    if (cfg.no_retained && m->retain)
        return;
    if (cfg.format) {
        print_formatted(m);
    } else if (cfg.verbose) {
        if (m->payload_len) {
            printf("%s ", m->topic);
            fwrite(m->payload, 1, m->payload_len, stdout);
            if (!cfg.no_eol)
                putchar('\n');
        } else if (!cfg.no_eol) { /* as mosquitto_sub: -v -N prints nothing for an empty payload */
            printf("%s (null)\n", m->topic);
        }
    } else if (m->payload_len) { /* as mosquitto_sub: an empty payload prints nothing */
        fwrite(m->payload, 1, m->payload_len, stdout);
        if (!cfg.no_eol)
            putchar('\n');
    }
    fflush(stdout);
    received++;
    if (cfg.msg_count > 0 && received >= cfg.msg_count) {
        done = true;
        tombo_disconnect(c, 0, cfg.base.p_disconnect);
    }
}

static void on_connect(tombo_client_t *c, void *user, int reason, bool session_present, const tombo_props_t *props)
{
    (void)user;
    (void)session_present;
    (void)props;
    if (reason) {
        tool_connack_error(&cfg.base, reason);
        exit_code = reason;
        done = true;
        return;
    }
    if (cfg.base.ntopics) {
        tombo_sub_opts_t *o = calloc((size_t)cfg.base.ntopics, sizeof(*o));
        if (!o) {
            exit_code = 1;
            done = true;
            tombo_disconnect(c, 0, NULL);
            return;
        }
        for (int i = 0; i < cfg.base.ntopics; i++) {
            o[i].qos = cfg.base.qos;
            o[i].no_local = cfg.no_local;
            o[i].retain_as_published = cfg.retain_as_published;
            o[i].retain_handling = cfg.retain_handling;
        }
        tombo_err_t e = tombo_subscribe_many(c, NULL, cfg.base.ntopics, cfg.base.topics, o, cfg.base.p_subscribe);
        free(o);
        if (e != TOMBO_OK) {
            tool_err(&cfg.base, "Error: %s\n", tombo_strerror(e));
            exit_code = 1;
            done = true;
            tombo_disconnect(c, 0, NULL);
            return;
        }
        subacks_wanted++;
    }
    for (int i = 0; i < cfg.nunsub; i++)
        tombo_unsubscribe(c, NULL, cfg.unsub[i], cfg.base.p_unsubscribe);
}

static void on_subscribe(tombo_client_t *c, void *user, int mid, int count, const uint8_t *codes,
                         const tombo_props_t *props)
{
    (void)user;
    (void)mid;
    (void)props;
    bool all_failed = count > 0;
    for (int i = 0; i < count; i++)
        if (codes[i] < 0x80)
            all_failed = false;
    if (all_failed) {
        tool_err(&cfg.base, "All subscription requests were denied.\n");
        if (!cfg.exit_after_sub) {
            exit_code = 1;
        }
    }
    if (--subacks_wanted <= 0 && cfg.exit_after_sub) {
        done = true;
        tombo_disconnect(c, 0, cfg.base.p_disconnect);
    }
}

static void on_disconnect(tombo_client_t *c, void *user, tombo_err_t err, int reason, const tombo_props_t *props)
{
    (void)c;
    (void)user;
    (void)props;
    if (err == TOMBO_OK || err == TOMBO_ERR_CONN_REFUSED) {
        done = true;
        return;
    }
    /* Lost: as mosquitto_sub, carry on; libtombo reconnects and on_connect subscribes again. */
    if (cfg.base.debug) {
        if (err == TOMBO_ERR_SERVER_DISCONNECT)
            printf("Disconnected by the broker: %s\n", tombo_reason_string(cfg.base.version, false, reason));
        else
            printf("Connection lost: %s\n", tombo_strerror(err));
    }
}

static void on_signal(int sig)
{
    stop_signal = sig;
}

static int parse(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        int r = tool_parse_common(&cfg.base, argc, argv, &i);
        if (r < 0)
            return -1;
        if (r > 0)
            continue;
        const char *a = argv[i];
        long long n;
        char *end;
        if (!strcmp(a, "--help")) {
            usage();
            exit(1); /* as mosquitto_sub */
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            cfg.verbose = true;
        } else if (!strcmp(a, "-N")) {
            cfg.no_eol = true;
        } else if (!strcmp(a, "-R")) {
            cfg.no_retained = true;
        } else if (!strcmp(a, "--retained-only")) {
            cfg.retained_only = true;
        } else if (!strcmp(a, "--remove-retained")) {
            cfg.remove_retained = true;
        } else if (!strcmp(a, "-E")) {
            cfg.exit_after_sub = true;
        } else if (!strcmp(a, "--retain-as-published")) {
            cfg.retain_as_published = true;
        } else if (!strcmp(a, "--no-local")) {
            cfg.no_local = true;
        } else if (!strcmp(a, "--retain-handling") && i + 1 < argc) {
            const char *v = argv[++i];
            cfg.retain_handling = !strcmp(v, "always") ? 0 : !strcmp(v, "new") ? 1 : !strcmp(v, "never") ? 2 : -1;
            if (cfg.retain_handling < 0) {
                tool_usage_error(&cfg.base, "Invalid retain-handling value '%s'.\n", v);
                return -1;
            }
        } else if ((!strcmp(a, "-C") || !strcmp(a, "-W")) && i + 1 < argc) {
            n = strtoll(argv[++i], &end, 10);
            if (*end || n < 1 || (a[1] == 'W' && n > 3600)) {
                tool_usage_error(&cfg.base, a[1] == 'C' ? "Invalid message count \"%s\".\n"
                                                        : "Invalid timeout \"%s\".\n", argv[i]);
                return -1;
            }
            if (a[1] == 'C')
                cfg.msg_count = n;
            else
                cfg.timeout = n;
        } else if (!strcmp(a, "-F") && i + 1 < argc) {
            cfg.format = argv[++i];
            if (!format_valid(cfg.format))
                return -1;
        } else if ((!strcmp(a, "-T") || !strcmp(a, "--filter-out")) && i + 1 < argc) {
            const char *v = argv[++i];
            if (!mqtt_topic_filter_valid((const uint8_t *)v, strlen(v))) {
                tool_usage_error(&cfg.base, "Invalid filter topic '%s', are all '+' and '#' wildcards correct?\n", v);
                return -1;
            }
            if (!push(&cfg.filter_out, &cfg.nfilter_out, v))
                return -1;
        } else if ((!strcmp(a, "-U") || !strcmp(a, "--unsubscribe")) && i + 1 < argc) {
            const char *v = argv[++i];
            if (!mqtt_topic_filter_valid((const uint8_t *)v, strlen(v))) {
                tool_usage_error(&cfg.base, "Invalid unsubscribe topic '%s', are all '+' and '#' wildcards correct?\n",
                                 v);
                return -1;
            }
            if (!push(&cfg.unsub, &cfg.nunsub, v))
                return -1;
        } else {
            tool_usage_error(&cfg.base, "Unknown option '%s'.\n", a);
            return -1;
        }
    }
    if (cfg.base.ntopics == 0 && cfg.nunsub == 0) {
        tool_usage_error(&cfg.base, "You must specify a topic to subscribe to.\n");
        return -1;
    }
    for (int i = 0; i < cfg.base.ntopics; i++) {
        const char *t = cfg.base.topics[i];
        if (!mqtt_topic_filter_valid((const uint8_t *)t, strlen(t))) {
            tool_usage_error(&cfg.base, "Invalid subscription topic '%s', are all '+' and '#' wildcards correct?\n", t);
            return -1;
        }
    }
    if (cfg.no_retained && cfg.retained_only) {
        tool_usage_error(&cfg.base, "Setting both -R and --retained-only makes no sense.\n");
        return -1;
    }
    return tool_cfg_finish(&cfg.base);
}

int main(int argc, char **argv)
{
    tool_cfg_init(&cfg.base, TOOL_SUB);
    cfg.base.reconnect = true;
    int rc = 1;
    tombo_client_t *c = NULL;
    if (parse(argc, argv) < 0)
        goto out;
    if (!(c = tool_client_new(&cfg.base)))
        goto out;
    tombo_set_on_connect(c, on_connect);
    tombo_set_on_message(c, on_message);
    tombo_set_on_subscribe(c, on_subscribe);
    tombo_set_on_disconnect(c, on_disconnect);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (tool_connect(&cfg.base, c))
        goto out;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    bool timed_out = false;
    while (!done) {
        if (stop_signal) {
            done = true;
            tombo_disconnect(c, 0, cfg.base.p_disconnect);
            break;
        }
        if (cfg.timeout) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec - start.tv_sec >= cfg.timeout) {
                timed_out = true;
                done = true;
                tombo_disconnect(c, 0, cfg.base.p_disconnect);
                break;
            }
        }
        tombo_err_t e = tombo_loop(c, 100);
        if (e == TOMBO_ERR_NO_CONN)
            break;
    }
    if (timed_out) {
        tool_err(&cfg.base, "Timed out\n");
        rc = 27;
    } else {
        rc = exit_code;
    }
out:
    tombo_client_destroy(c);
    free(cfg.filter_out);
    free(cfg.unsub);
    tool_cfg_free(&cfg.base);
    return rc;
}
