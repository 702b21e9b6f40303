/* tombo-pub -- publish one message (-m, -f, -n, -s) or one per line of stdin (-l), with
 * mosquitto_pub's flags and messages. The network runs on libtombo's loop thread while main()
 * publishes, so -l streams lines as they arrive. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "client_setup.h"
#include "options_file.h"
#include "payload.h"
#include "mqtt/topic.h"

static tool_cfg_t cfg;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static bool connected, gone, tls_failed;
static int connack_rc;
static long published, completed;

static void usage(void)
{
    printf("tombo-pub is a simple MQTT client that will publish a message on a single topic and exit.\n"
           "tombo-pub version %s running on libtombo %s.\n\n"
           "Usage: tombo-pub {[-h host] [--unix path] [-p port] [-u username] [-P password] -t topic\n"
           "                  | -L URL}\n"
           "                 {-f file | -l | -n | -m message | -s}\n"
           "                 [-c] [-k keepalive] [-q qos] [-r] [--repeat N] [--repeat-delay time]\n"
           "                 [-x session-expiry] [-A bind_address] [--nodelay] [-i id] [-I id_prefix]\n"
           "                 [-d] [--quiet] [-M max_inflight] [-V protocol-version]\n"
           "                 [--will-topic [--will-payload payload] [--will-qos qos] [--will-retain]]\n"
           "                 [-D command identifier value]\n"
           "                 [{--cafile file | --capath dir | --tls-use-os-certs} [--cert file] [--key file]\n"
           "                   [--ciphers ciphers] [--insecure] [--tls-alpn protocol] [--tls-version version]]\n"
           "                 [--psk hex-key --psk-identity identity [--ciphers ciphers]]\n"
           "       tombo-pub --help\n\n"
           " -A : bind the outgoing socket to this host/ip address.\n"
           " -c : disable clean session/enable persistent client mode.\n"
           " -d : enable debug messages.\n"
           " -D : define MQTT v5 properties: -D command identifier value, e.g.\n"
           "      -D publish content-type text/plain, -D publish user-property key value.\n"
           " -f : send the contents of a file as the message.\n"
           " -h : mqtt host to connect to. Defaults to localhost.\n"
           " -i : id to use for this client.\n"
           " -I : define the client id as id_prefix appended with the process id.\n"
           " -k : keep alive in seconds for this client. Defaults to 60.\n"
           " -L : specify user, password, hostname, port and topic as a URL in the form:\n"
           "      mqtt(s)://[username[:password]@]host[:port]/topic (mqtts://: TLS, port 8883).\n"
           " -l : read messages from stdin, sending a separate message for each line.\n"
           " -m : message payload to send.\n"
           " -M : the maximum inflight messages for QoS 1/2.\n"
           " -n : send a null (zero length) message.\n"
           " -p : network port to connect to. Defaults to 1883.\n"
           " -P : provide a password\n"
           " -q : quality of service level to use for all messages. Defaults to 0.\n"
           " -r : message should be retained.\n"
           " -s : read message from stdin, sending the entire input as a message.\n"
           " -t : mqtt topic to publish to.\n"
           " -u : provide a username\n"
           " -V : specify the version of the MQTT protocol to use when connecting.\n"
           "      Can be mqttv5, mqttv311 or mqttv31. Defaults to mqttv311.\n"
           " -x : Set the session-expiry-interval property on the CONNECT packet (MQTT v5).\n"
           " --auth-method : MQTT 5 enhanced authentication, SCRAM-SHA-256: -u and -P are its user\n"
           "                 and password, and the password is not sent (needs -V 5).\n"
           " --help : display this message.\n"
           " --quiet : don't print error messages.\n"
           " --repeat : if publish mode is -f, -m, or -s, then repeat the publish N times.\n"
           " --repeat-delay : if using --repeat, wait time seconds between publishes. Defaults to 0.\n"
           " --unix : connect to a broker through a unix domain socket instead of a TCP socket,\n"
           "          e.g. /tmp/mosquitto.sock\n"
           " --will-payload, --will-qos, --will-retain, --will-topic : the client's Will.\n"
           "%s"
           "\nOptions are read first from $XDG_CONFIG_HOME/tombo_pub (or ~/.config/tombo_pub; else\n"
           "mosquitto_pub's file there), one flag and its argument per line.\n",
           TOMBO_VERSION, tombo_lib_version(), tool_tls_usage);
}

static void on_connect(tombo_client_t *c, void *user, int reason, bool sp, const tombo_props_t *props)
{
    (void)c;
    (void)user;
    (void)sp;
    (void)props;
    pthread_mutex_lock(&mu);
    if (reason)
        connack_rc = reason;
    else
        connected = true;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&mu);
}

static void on_publish(tombo_client_t *c, void *user, int mid, int reason, const tombo_props_t *props)
{
    (void)c;
    (void)user;
    (void)mid;
    (void)props;
    if (reason >= 0x80)
        tool_err(&cfg, "Warning: Publish %d failed: %s.\n", mid, tombo_reason_string(cfg.version, false, reason));
    pthread_mutex_lock(&mu);
    completed++;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&mu);
}

static void on_disconnect(tombo_client_t *c, void *user, tombo_err_t err, int reason, const tombo_props_t *props)
{
    (void)c;
    (void)user;
    (void)props;
    (void)reason;
    pthread_mutex_lock(&mu);
    if (!gone && tool_tls_failed(&cfg, c, err))
        tls_failed = true;
    else if (err != TOMBO_OK && err != TOMBO_ERR_CONN_REFUSED && connected && !gone)
        tool_err(&cfg, "Error: %s\n", tombo_strerror(err));
    gone = true;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&mu);
}

/* Publish, then wait (bounded by the connection) until at most max_inflight are outstanding. */
static int publish_one(tombo_client_t *c, const void *payload, size_t len)
{
    tombo_err_t e = tombo_publish(c, NULL, cfg.topics[0], payload, len, cfg.qos, cfg.retain, cfg.p_publish);
    if (e != TOMBO_OK) {
        tool_err(&cfg, "Error: %s\n", tombo_strerror(e));
        return 1;
    }
    pthread_mutex_lock(&mu);
    published++;
    while (!gone && published - completed >= cfg.max_inflight)
        pthread_cond_wait(&cond, &mu);
    pthread_mutex_unlock(&mu);
    return 0;
}

static tool_payload_t payload;
static long long repeat = 1;
static double repeat_delay;

/* The flags in argv[1..argc) (the command line, or one line of the options file). Returns 0, -1
 * after an error, -2 after --help. */
static int parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        int r = tool_parse_common(&cfg, argc, argv, &i);
        if (r < 0)
            return -1;
        if (r > 0)
            continue;
        if ((r = tool_payload_parse(&cfg, &payload, argc, argv, &i)) < 0)
            return -1;
        if (r > 0)
            continue;
        const char *a = argv[i];
        if (!strcmp(a, "--help")) {
            usage();
            return -2;
        } else if (!strcmp(a, "--repeat") && i + 1 < argc) {
            char *end;
            repeat = strtoll(argv[++i], &end, 10);
            if (*end || repeat < 1) {
                tool_usage_error(&cfg, "Invalid repeat count \"%s\".\n", argv[i]);
                return -1;
            }
        } else if (!strcmp(a, "--repeat-delay") && i + 1 < argc) {
            char *end;
            repeat_delay = strtod(argv[++i], &end);
            if (*end || repeat_delay < 0) {
                tool_usage_error(&cfg, "Invalid repeat delay \"%s\".\n", argv[i]);
                return -1;
            }
        } else {
            tool_usage_error(&cfg, "Unknown option '%s'.\n", a);
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    tool_cfg_init(&cfg, TOOL_PUB);
    int rc = 1; /* also after --help, as mosquitto_pub */
    tombo_client_t *c = NULL;
    if (tool_options_file(&cfg, parse_args) < 0 || parse_args(argc, argv) < 0)
        goto out;
    if (!cfg.ntopics || payload.mode == PAYLOAD_NONE) {
        tool_err(&cfg, "Error: Both topic and message must be supplied.\n");
        usage();
        goto out;
    }
    if (!mqtt_topic_name_valid((const uint8_t *)cfg.topics[0], strlen(cfg.topics[0]))) {
        tool_usage_error(&cfg, "Invalid publish topic '%s', does it contain '+' or '#'?\n", cfg.topics[0]);
        goto out;
    }
    if (tool_cfg_finish(&cfg) < 0)
        goto out;
    if (tool_payload_load(&cfg, &payload) < 0)
        goto out;
    if (!(c = tool_client_new(&cfg)))
        goto out;
    tombo_set_on_connect(c, on_connect);
    tombo_set_on_publish(c, on_publish);
    tombo_set_on_disconnect(c, on_disconnect);
    if ((rc = tool_connect(&cfg, c)) != 0)
        goto out;
    rc = 1;
    if (tombo_loop_start(c) != TOMBO_OK) {
        tool_err(&cfg, "Error: unable to start the network thread.\n");
        goto out;
    }
    pthread_mutex_lock(&mu);
    while (!connected && !gone && !connack_rc)
        pthread_cond_wait(&cond, &mu);
    bool ok = connected;
    pthread_mutex_unlock(&mu);
    if (!ok) {
        if (connack_rc) {
            tool_connack_error(&cfg, connack_rc);
            tool_err(&cfg, cfg.version == TOMBO_MQTT_V5
                               ? "Error: A network protocol error occurred when communicating with the broker.\n"
                               : "Error: The connection was refused.\n");
            rc = connack_rc;
        } else if (!tls_failed) {
            tool_err(&cfg, "Error: the connection was lost before the broker accepted it.\n");
        }
        goto stop;
    }
    rc = 0;
    if (payload.mode == PAYLOAD_LINES) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        while (!rc && (n = getline(&line, &cap, stdin)) >= 0) {
            if (n > 0 && line[n - 1] == '\n')
                line[--n] = 0;
            rc = publish_one(c, line, (size_t)n);
        }
        free(line);
    } else {
        for (long long k = 0; !rc && k < repeat; k++) {
            if (k && repeat_delay > 0) {
                struct timespec ts = {(time_t)repeat_delay, (long)((repeat_delay - (time_t)repeat_delay) * 1e9)};
                nanosleep(&ts, NULL);
            }
            rc = publish_one(c, payload.data, payload.len);
        }
    }
    /* Wait until every message completed (QoS 0: written), or the connection is gone. */
    pthread_mutex_lock(&mu);
    while (!gone && completed < published)
        pthread_cond_wait(&cond, &mu);
    if (completed < published && !rc)
        rc = 1;
    pthread_mutex_unlock(&mu);
    tombo_disconnect(c, 0, cfg.p_disconnect);
stop:
    tombo_loop_stop(c);
out:
    tombo_client_destroy(c);
    free(payload.data);
    tool_cfg_free(&cfg);
    return rc;
}
