/* test_mqtt_topic.c -- topic names, filters, matching (MQTT 5.0 section 4.7) and $share parsing
 * (section 4.8.2), as tables. */
#include <string.h>

#include "mqtt/topic.h"
#include "unit.h"

#define U(s) (const uint8_t *)(s), strlen(s)

static const struct {
    const char *filter, *name;
    bool match;
    const char *why;
} match_tab[] = {
    {"sport/tennis/player1", "sport/tennis/player1", true, "exact"},
    {"sport/tennis/player1", "sport/tennis/player2", false, "exact, differs"},
    {"sport/tennis/player1", "sport/tennis/player1/x", false, "name longer"},
    {"sport/tennis/player1/x", "sport/tennis/player1", false, "filter longer"},
    {"sport/tennis/player1/#", "sport/tennis/player1", true, "4.7.1.2 # also matches the parent level"},
    {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true, "# one level"},
    {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true, "# many levels"},
    {"sport/#", "sport", true, "sport/# matches sport"},
    {"sport/#", "sports", false, "sport/# vs sports"},
    {"sport/#", "sport/", true, "# matches empty level"},
    {"#", "sport/tennis", true, "# everything"},
    {"#", "/", true, "# matches /"},
    {"sport/tennis/+", "sport/tennis/player1", true, "+ one level"},
    {"sport/tennis/+", "sport/tennis/player1/ranking", false, "+ only one level"},
    {"sport/+", "sport", false, "sport/+ vs sport"},
    {"sport/+", "sport/", true, "+ matches an empty level"},
    {"+/+", "/finance", true, "+/+ vs /finance"},
    {"/+", "/finance", true, "/+ vs /finance"},
    {"+", "/finance", false, "+ vs /finance"},
    {"+", "finance", true, "+ vs finance"},
    {"+/tennis/#", "sport/tennis", true, "+ then #"},
    {"+/tennis/#", "sport/tennis/a/b", true, "+ then # deep"},
    {"+/tennis/#", "sport/golf", false, "+ then # mismatch"},
    {"a/+/c", "a//c", true, "+ empty middle level"},
    {"a/+/c", "a/b/d", false, "+ middle mismatch"},
    {"a//b", "a//b", true, "empty level exact"},
    {"a/b", "a//b", false, "empty level mismatch"},
    {"test/+", "test/0", true, "tutorial"},
    {"#", "$SYS/broker/uptime", false, "[MQTT-4.7.2-1] # vs $"},
    {"+/monitor/Clients", "$SYS/monitor/Clients", false, "[MQTT-4.7.2-1] + vs $"},
    {"$SYS/#", "$SYS/monitor/Clients", true, "$SYS/#"},
    {"$SYS/monitor/+", "$SYS/monitor/Clients", true, "$SYS/monitor/+"},
    {"$SYS", "$SYS", true, "$SYS exact"},
    {"/#", "$SYS/x", false, "/# vs $SYS"},
    {"+/#", "a", true, "+/# matches one level"},
    {"a/#", "a", true, "a/# vs a"},
    {"a/b/#", "a", false, "a/b/# vs a"},
    {"A", "a", false, "case sensitive"},
};

static const struct {
    const char *s;
    bool valid;
    const char *why;
} filter_tab[] = {
    {"sport/tennis/#", true, "# last"},
    {"#", true, "# alone"},
    {"sport/tennis#", false, "[MQTT-4.7.1-1] # not alone in level"},
    {"sport/tennis/#/ranking", false, "[MQTT-4.7.1-1] # not last"},
    {"+", true, "+ alone"},
    {"+/tennis/#", true, "+ and #"},
    {"sport+", false, "[MQTT-4.7.1-2] + not alone in level"},
    {"sport/+/player1", true, "+ middle"},
    {"/", true, "just /"},
    {"//", true, "empty levels"},
    {"", false, "[MQTT-4.7.3-1] empty"},
    {"a/b+c", false, "+ inside level"},
    {"+a", false, "+ prefix"},
    {"#/", false, "# then /"},
    {"$share/g/a/+", true, "[MQTT-4.8.2-2] shared"},
    {"$share/g/#", true, "shared #"},
    {"$share//a", false, "[MQTT-4.8.2-1] empty share name"},
    {"$share/g", false, "[MQTT-4.8.2-2] no filter"},
    {"$share/g/", false, "empty filter"},
    {"$share/g+/a", false, "[MQTT-4.8.2-1] + in share name"},
    {"$share/g#/a", false, "[MQTT-4.8.2-1] # in share name"},
    {"$share/g/a#", false, "bad filter in share"},
    {"$share", false, "$share alone"},
    {"$shared/a", true, "$shared is an ordinary topic"},
    {"$SYS/#", true, "$SYS"},
    {"a\x01" "b", false, "control character"},
};

int main(void)
{
    for (size_t i = 0; i < sizeof match_tab / sizeof match_tab[0]; i++) {
        CASE(match_tab[i].why);
        CHECK_EQ(mqtt_topic_match(U(match_tab[i].filter), U(match_tab[i].name)), match_tab[i].match);
    }
    for (size_t i = 0; i < sizeof filter_tab / sizeof filter_tab[0]; i++) {
        CASE(filter_tab[i].why);
        CHECK_EQ(mqtt_topic_filter_valid(U(filter_tab[i].s)), filter_tab[i].valid);
    }

    CASE("[MQTT-3.3.2-2] topic names");
    CHECK(mqtt_topic_name_valid(U("sport/tennis")));
    CHECK(mqtt_topic_name_valid(U("/")));
    CHECK(mqtt_topic_name_valid(U("$SYS/x")));
    CHECK(!mqtt_topic_name_valid(U("sport/+")));
    CHECK(!mqtt_topic_name_valid(U("sport/#")));
    CHECK(!mqtt_topic_name_valid(U("")));
    CHECK(!mqtt_topic_name_valid((const uint8_t *)"a\xC3", 2));

    CASE("[MQTT-3.3.2-2] a wildcard at any position of a long name (8-byte scan)");
    for (size_t len = 1; len <= 40; len++) {
        for (size_t pos = 0; pos < len; pos++) {
            uint8_t t[40];
            memset(t, 'a', len);
            t[pos] = '+';
            CHECK(!mqtt_topic_name_valid(t, len));
            t[pos] = '#';
            CHECK(!mqtt_topic_name_valid(t, len));
            t[pos] = 0x7F;
            CHECK(!mqtt_topic_name_valid(t, len));
            t[pos] = '/';
            CHECK(mqtt_topic_name_valid(t, len));
        }
    }

    CASE("[MQTT-4.8.2] mqtt_share_split");
    const uint8_t *g, *f;
    size_t gn, fn;
    CHECK(mqtt_share_split(U("$share/grp/a/b/#"), &g, &gn, &f, &fn));
    CHECK_MEM(g, gn, "grp", 3);
    CHECK_MEM(f, fn, "a/b/#", 5);
    CHECK(!mqtt_share_split(U("$sharegrp/a"), &g, &gn, &f, &fn));
    CHECK(!mqtt_share_split(U("a/$share/g/b"), &g, &gn, &f, &fn));
    CHECK(!mqtt_share_split(U("$share/grp"), &g, &gn, &f, &fn));

    UNIT_DONE();
}
