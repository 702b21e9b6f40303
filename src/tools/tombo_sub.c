/* tombo-sub -- subscribe to topics and print the messages, with mosquitto_sub's flags and output
 * (-v, -N, -F format strings), so scripts written for mosquitto_sub work after a rename. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "client_setup.h"
#include "options_file.h"
#include "sub_output.h"
#include "mqtt/topic.h"

typedef struct sub_cfg {
    tool_cfg_t base;
    sub_output_t out;
    bool no_retained, retained_only, exit_after_sub, remove_retained;
    long long msg_count;
    long long timeout;
    long random_filter;   /* --random-filter: messages printed per 10000 (10000: all) */
    const char **filter_out;
    int nfilter_out;
    const char **unsub;
    int nunsub;
    bool retain_as_published, no_local;
    int retain_handling;
} sub_cfg_t;

static sub_cfg_t cfg;
static long long received;
static int exit_code;
static bool done;
static int subacks_wanted;

static void usage(void)
{
    printf("tombo-sub is a simple MQTT client that subscribes to topics and prints the messages it receives.\n"
           "tombo-sub version %s running on libtombo %s.\n\n"
           "Usage: tombo-sub {[-h host] [--unix path] [-p port] [-u username] [-P password] -t topic ...\n"
           "                  | -L URL [-t topic]}\n"
           "                 [-c] [-k keepalive] [-q qos] [-x session-expiry-interval]\n"
           "                 [-C msg_count] [-E] [-R] [--retained-only] [-T filter_out ...] [-U topic ...]\n"
           "                 [-F format] [--pretty] [--random-filter chance] [-W timeout_secs]\n"
           "                 [-A bind_address] [--nodelay]\n"
           "                 [-i id] [-I id_prefix] [-d] [-N] [--quiet] [-v] [-V protocol-version]\n"
           "                 [--will-topic [--will-payload payload] [--will-qos qos] [--will-retain]]\n"
           "                 [--retain-as-published] [--retain-handling always|new|never] [--no-local]\n"
           "                 [-D command identifier value]\n"
           "                 [{--cafile file | --capath dir | --tls-use-os-certs} [--cert file] [--key file]\n"
           "                   [--ciphers ciphers] [--insecure] [--tls-alpn protocol] [--tls-version version]]\n"
           "                 [--psk hex-key --psk-identity identity [--ciphers ciphers]]\n"
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
           "      %%P user properties, %%R response topic, %%S subscription identifier (the first),\n"
           "      %%A topic alias, %%j the message as JSON, %%J the same with a JSON payload\n"
           "      parsed (an error when it is not JSON), %%%%;\n"
           "      %%-10t left-aligns in 10 columns, %%05m pads with zeros, %%.3t cuts to 3 characters;\n"
           "      @ followed by a strftime character for the time; \\n \\t \\\\ ... escapes.\n"
           " -h : mqtt host to connect to. Defaults to localhost.\n"
           " -i : id to use for this client.\n"
           " -I : define the client id as id_prefix appended with the process id.\n"
           " -k : keep alive in seconds for this client. Defaults to 60.\n"
           " -L : specify user, password, hostname, port and topic as a URL in the form:\n"
           "      mqtt(s)://[username[:password]@]host[:port]/topic (mqtts://: TLS, port 8883).\n"
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
           " --auth-method : MQTT 5 enhanced authentication, SCRAM-SHA-256: -u and -P are its user\n"
           "                 and password, and the password is not sent (needs -V 5).\n"
           " --help : display this message.\n"
           " --pretty : print %%j/%%J JSON indented rather than on one line.\n"
           " --quiet : don't print error messages.\n"
           " --random-filter : only print this percentage of received messages (100: all, 50.0: half\n"
           "                   on average; -C still counts every message).\n"
           " --remove-retained : clear each retained message received (publish an empty retained\n"
           "                     message on its topic). Use -T for those to keep.\n"
           " --retained-only : only handle messages with the retained flag set, and exit when the\n"
           "                   first non-retained message is received.\n"
           " --unix : connect to a broker through a unix domain socket instead of a TCP socket,\n"
           "          e.g. /tmp/mosquitto.sock\n"
           " --will-payload, --will-qos, --will-retain, --will-topic : the client's Will.\n"
           "%s"
           "\nOptions are read first from $XDG_CONFIG_HOME/tombo_sub (or ~/.config/tombo_sub; else\n"
           "mosquitto_sub's file there), one flag and its argument per line.\n",
           TOMBO_VERSION, tombo_lib_version(), tool_tls_usage);
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
    if (cfg.random_filter < 10000 && (long)(random() % 10000) >= cfg.random_filter) {
        /* --random-filter: not printed, but counted for -C as mosquitto_sub does */
    } else {
        sub_print_message(&cfg.out, &cfg.base, m);
    }
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
    if (tool_tls_failed(&cfg.base, c, err)) { /* no point in trying again: mosquitto_sub stops too */
        done = true;
        exit_code = 1;
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

/* The flags in argv[1..argc) (the command line, or one line of the options file). */
static int parse_args(int argc, char **argv)
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
            cfg.out.verbose = true;
        } else if (!strcmp(a, "-N")) {
            cfg.out.eol = false;
        } else if (!strcmp(a, "--pretty")) {
            cfg.out.pretty = true;
        } else if (!strcmp(a, "--random-filter")) {
            if (i + 1 >= argc) {
                tool_usage_error(&cfg.base, "--random-filter argument given but no chance specified.\n");
                return -1;
            }
            /* A percentage to one decimal. mosquitto_sub 2.0.11 accepts the same range (0.1 up to
             * 1000) but prints a tenth of what its help promises; tombo-sub does what it says. */
            int tenths = (int)(10.0 * atof(argv[++i]));
            if (tenths > 10000 || tenths < 1) {
                tool_usage_error(&cfg.base, "--random-filter chance must be between 0.1-100.0\n");
                return -1;
            }
            cfg.random_filter = tenths >= 1000 ? 10000 : tenths * 10;
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
            cfg.out.format = argv[++i];
            const char *err = sub_format_error(cfg.out.format);
            if (err) {
                tool_usage_error(&cfg.base, "%s\n", err);
                return -1;
            }
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
    return 0;
}

static int parse(int argc, char **argv)
{
    if (tool_options_file(&cfg.base, parse_args) < 0 || parse_args(argc, argv) < 0)
        return -1;
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
    cfg.out.eol = true;
    cfg.random_filter = 10000;
    int rc = 1;
    tombo_client_t *c = NULL;
    if (parse(argc, argv) < 0)
        goto out;
    if (!(c = tool_client_new(&cfg.base)))
        goto out;
    struct timespec seed;
    clock_gettime(CLOCK_REALTIME, &seed);
    srandom((unsigned)seed.tv_nsec);
    tombo_set_on_connect(c, on_connect);
    tombo_set_on_message(c, on_message);
    tombo_set_on_subscribe(c, on_subscribe);
    tombo_set_on_disconnect(c, on_disconnect);
    if ((rc = tool_connect(&cfg.base, c)) != 0)
        goto out;
    rc = tool_run(&cfg.base, c, cfg.timeout, &done) ? 27 : exit_code;
out:
    tombo_client_destroy(c);
    free(cfg.filter_out);
    free(cfg.unsub);
    tool_cfg_free(&cfg.base);
    return rc;
}
