/* tombo-rr -- one MQTT 5 request/response exchange, with mosquitto_rr's flags: subscribe to the
 * response topic (-e), publish the request (-t, -m/-f/-n/-s) carrying that Response Topic and a
 * Correlation Data, print the first response (-v, -N, -F as tombo-sub) and exit 0; -W bounds the
 * wait (exit 27, "Timed out", as mosquitto_rr). Unlike mosquitto_rr, which sends no correlation
 * data and takes whatever arrives first, a response that carries a different Correlation Data is
 * ignored; one without any (a responder that does not copy it) is taken, as mosquitto_rr does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "client_setup.h"
#include "options_file.h"
#include "payload.h"
#include "sub_output.h"
#include "mqtt/topic.h"

static tool_cfg_t cfg;
static sub_output_t out = {.eol = true};
static tool_payload_t payload;
static const char *response_topic;
static bool no_retained;
static long long timeout;
static char corr_buf[32];
static const char *corr = corr_buf; /* the request's Correlation Data (-D publish correlation-data wins) */
static size_t corr_len;
static int exit_code = 1;
static bool done;

static void usage(void)
{
    printf("tombo-rr is an mqtt client that can be used to publish a request message and wait for a response.\n"
           "Defaults to MQTT v5, where the Request-Response feature will be used, but v3.1.1 can also be used\n"
           "with v3.1.1 brokers.\n"
           "tombo-rr version %s running on libtombo %s.\n\n"
           "Usage: tombo-rr {[-h host] [--unix path] [-p port] [-u username] [-P password] -t topic | -L URL}\n"
           "                -e response-topic {-f file | -m message | -n | -s}\n"
           "                [-c] [-k keepalive] [-q qos] [-R] [-x session-expiry-interval]\n"
           "                [-F format] [--pretty] [-W timeout_secs] [-A bind_address] [--nodelay]\n"
           "                [-i id] [-I id_prefix] [-d] [-N] [--quiet] [-v] [-V protocol-version]\n"
           "                [--will-topic [--will-payload payload] [--will-qos qos] [--will-retain]]\n"
           "                [-D command identifier value]\n"
           "                [{--cafile file | --capath dir | --tls-use-os-certs} [--cert file] [--key file]\n"
           "                  [--ciphers ciphers] [--insecure] [--tls-alpn protocol] [--tls-version version]]\n"
           "                [--psk hex-key --psk-identity identity [--ciphers ciphers]]\n"
           "       tombo-rr --help\n\n"
           " -A : bind the outgoing socket to this host/ip address.\n"
           " -c : disable clean session/enable persistent client mode.\n"
           " -d : enable debug messages.\n"
           " -D : define MQTT v5 properties: -D command identifier value, e.g.\n"
           "      -D publish correlation-data abc (else tombo-rr makes one), -D publish user-property k v.\n"
           " -e : response topic. The client subscribes to it and waits there for the response.\n"
           " -f : send the contents of a file as the request.\n"
           " -F : output format, as tombo-sub's (see tombo-sub --help).\n"
           " -h : mqtt host to connect to. Defaults to localhost.\n"
           " -i : id to use for this client.\n"
           " -I : define the client id as id_prefix appended with the process id.\n"
           " -k : keep alive in seconds for this client. Defaults to 60.\n"
           " -L : specify user, password, hostname, port and topic as a URL in the form:\n"
           "      mqtt(s)://[username[:password]@]host[:port]/topic (mqtts://: TLS, port 8883).\n"
           " -m : request payload to send.\n"
           " -n : send a null (zero length) request.\n"
           " -N : do not add an end of line character when printing the payload.\n"
           " -p : network port to connect to. Defaults to 1883.\n"
           " -P : provide a password\n"
           " -q : quality of service level of the request and the subscription. Defaults to 0.\n"
           " -R : do not print stale messages (those with retain set).\n"
           " -s : read the request from stdin, the entire input as one message.\n"
           " -t : topic where the request message will be sent.\n"
           " -u : provide a username\n"
           " -v : print the response verbosely (its topic, then the payload).\n"
           " -V : specify the version of the MQTT protocol to use when connecting.\n"
           "      Can be mqttv5, mqttv311 or mqttv31. Defaults to 5.\n"
           " -W : Specifies a timeout in seconds how long to wait for a response.\n"
           " -x : Set the session-expiry-interval property on the CONNECT packet (MQTT v5).\n"
           " --auth-method : MQTT 5 enhanced authentication, SCRAM-SHA-256: -u and -P are its user\n"
           "                 and password, and the password is not sent.\n"
           " --help : display this message.\n"
           " --pretty : print %%j/%%J JSON indented rather than on one line.\n"
           " --quiet : don't print error messages.\n"
           " --unix : connect to a broker through a unix domain socket instead of a TCP socket,\n"
           "          e.g. /tmp/mosquitto.sock\n"
           " --will-payload, --will-qos, --will-retain, --will-topic : the client's Will.\n"
           "%s"
           "\nOptions are read first from $XDG_CONFIG_HOME/tombo_rr (or ~/.config/tombo_rr; else\n"
           "mosquitto_rr's file there), one flag and its argument per line.\n",
           TOMBO_VERSION, tombo_lib_version(), tool_tls_usage);
}

/* The request goes out once the response topic's subscription is in place, so the response
 * cannot arrive before it. */
static void send_request(tombo_client_t *c)
{
    tombo_props_t *p = cfg.p_publish;
    if (cfg.version == TOMBO_MQTT_V5) {
        if (!p && !(p = cfg.p_publish = tombo_props_new()))
            goto fail;
        if (tombo_props_set_response_topic(p, response_topic) != TOMBO_OK)
            goto fail;
        if (corr == corr_buf && tombo_props_set_correlation_data(p, corr, corr_len) != TOMBO_OK)
            goto fail;
    }
    tombo_err_t e = tombo_publish(c, NULL, cfg.topics[0], payload.data, payload.len, cfg.qos, false, p);
    if (e == TOMBO_OK)
        return;
    tool_err(&cfg, "Error: %s\n", tombo_strerror(e));
    goto stop;
fail:
    tool_err(&cfg, "Error: Out of memory.\n");
stop:
    done = true;
    tombo_disconnect(c, 0, NULL);
}

static void on_connect(tombo_client_t *c, void *user, int reason, bool session_present, const tombo_props_t *props)
{
    (void)user;
    (void)session_present;
    (void)props;
    if (reason) {
        tool_connack_error(&cfg, reason);
        exit_code = reason;
        done = true;
        return;
    }
    tombo_err_t e = tombo_subscribe(c, NULL, response_topic, cfg.qos, NULL, cfg.p_subscribe);
    if (e != TOMBO_OK) {
        tool_err(&cfg, "Error: %s\n", tombo_strerror(e));
        done = true;
        tombo_disconnect(c, 0, NULL);
    }
}

static void on_subscribe(tombo_client_t *c, void *user, int mid, int count, const uint8_t *codes,
                         const tombo_props_t *props)
{
    (void)user;
    (void)mid;
    (void)props;
    if (count < 1 || codes[0] >= 0x80) {
        tool_err(&cfg, "Error: the subscription to the response topic was refused.\n");
        done = true;
        tombo_disconnect(c, 0, cfg.p_disconnect);
        return;
    }
    send_request(c);
}

static void on_message(tombo_client_t *c, void *user, const tombo_message_t *m)
{
    (void)user;
    if (done || (no_retained && m->retain))
        return;
    const char *d;
    size_t n;
    if (m->props && tombo_props_get_string(m->props, TOMBO_PROP_CORRELATION_DATA, &d, &n) &&
        (n != corr_len || memcmp(d, corr, n))) {
        if (cfg.debug)
            printf("Ignoring a message on %s with another request's correlation data.\n", m->topic);
        return;
    }
    sub_print_message(&out, &cfg, m);
    exit_code = 0;
    done = true;
    tombo_disconnect(c, 0, cfg.p_disconnect);
}

static void on_disconnect(tombo_client_t *c, void *user, tombo_err_t err, int reason, const tombo_props_t *props)
{
    (void)user;
    (void)props;
    if (err == TOMBO_OK || err == TOMBO_ERR_CONN_REFUSED || tool_tls_failed(&cfg, c, err)) {
        done = true;
        return;
    }
    /* Lost before the response: the request may be lost too, so stop rather than wait. */
    if (err == TOMBO_ERR_SERVER_DISCONNECT)
        tool_err(&cfg, "Disconnected by the broker: %s\n", tombo_reason_string(cfg.version, false, reason));
    else
        tool_err(&cfg, "Error: %s\n", tombo_strerror(err));
    done = true;
}

/* The flags in argv[1..argc) (the command line, or one line of the options file). */
static int parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        int r = tool_parse_common(&cfg, argc, argv, &i);
        if (r == 0)
            r = tool_payload_parse(&cfg, &payload, argc, argv, &i);
        if (r < 0)
            return -1;
        if (r > 0)
            continue;
        const char *a = argv[i];
        if (!strcmp(a, "--help")) {
            usage();
            exit(1); /* as mosquitto_rr */
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            out.verbose = true;
        } else if (!strcmp(a, "-N")) {
            out.eol = false;
        } else if (!strcmp(a, "--pretty")) {
            out.pretty = true;
        } else if (!strcmp(a, "-R")) {
            no_retained = true;
        } else if ((!strcmp(a, "-e") || !strcmp(a, "--response-topic")) && i + 1 < argc) {
            response_topic = argv[++i];
            if (!mqtt_topic_name_valid((const uint8_t *)response_topic, strlen(response_topic))) {
                tool_usage_error(&cfg, "Invalid response topic '%s', does it contain '+' or '#'?\n", response_topic);
                return -1;
            }
        } else if (!strcmp(a, "-W") && i + 1 < argc) {
            if (!tool_parse_int(argv[++i], 1, 3600, &timeout)) {
                tool_usage_error(&cfg, "Invalid timeout \"%s\".\n", argv[i]);
                return -1;
            }
        } else if (!strcmp(a, "-F") && i + 1 < argc) {
            out.format = argv[++i];
            const char *err = sub_format_error(out.format);
            if (err) {
                tool_usage_error(&cfg, "%s\n", err);
                return -1;
            }
        } else {
            tool_usage_error(&cfg, "Unknown option '%s'.\n", a);
            return -1;
        }
    }
    return 0;
}

static int parse(int argc, char **argv)
{
    if (tool_options_file(&cfg, parse_args) < 0 || parse_args(argc, argv) < 0)
        return -1;
    if (!cfg.ntopics || !response_topic || payload.mode == PAYLOAD_NONE) {
        tool_usage_error(&cfg, "All of topic, message, and response topic must be supplied.\n");
        return -1;
    }
    if (!mqtt_topic_name_valid((const uint8_t *)cfg.topics[0], strlen(cfg.topics[0]))) {
        tool_usage_error(&cfg, "Invalid publish topic '%s', does it contain '+' or '#'?\n", cfg.topics[0]);
        return -1;
    }
    if (tool_cfg_finish(&cfg) < 0)
        return -1;
    const char *d;
    if (cfg.p_publish && tombo_props_get_string(cfg.p_publish, TOMBO_PROP_CORRELATION_DATA, &d, &corr_len)) {
        corr = d;
    } else {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        corr_len = (size_t)snprintf(corr_buf, sizeof(corr_buf), "%lx-%d-%lx", (unsigned long)now.tv_sec,
                                    (int)getpid(), (unsigned long)now.tv_nsec);
    }
    return tool_payload_load(&cfg, &payload);
}

int main(int argc, char **argv)
{
    tool_cfg_init(&cfg, TOOL_RR);
    int rc = 1;
    tombo_client_t *c = NULL;
    if (parse(argc, argv) < 0)
        goto out;
    if (!(c = tool_client_new(&cfg)))
        goto out;
    tombo_set_on_connect(c, on_connect);
    tombo_set_on_subscribe(c, on_subscribe);
    tombo_set_on_message(c, on_message);
    tombo_set_on_disconnect(c, on_disconnect);
    if ((rc = tool_connect(&cfg, c)) != 0)
        goto out;
    rc = tool_run(&cfg, c, timeout, &done) ? 27 : exit_code;
out:
    tombo_client_destroy(c);
    free(payload.data);
    tool_cfg_free(&cfg);
    return rc;
}
