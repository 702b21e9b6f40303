/* will.c -- wills: the decision, when a connection closes, to publish its session's will now,
 * after its delay, or not at all, and the publishing itself.
 *
 * The will message is kept on the session (set by CONNECT, replaced or cancelled by the next
 * CONNECT under the session lock, see session_attach); this module only reads and takes it through
 * session functions. A delayed will is fired by a BT_WILL broker timer (timers.c), which calls
 * will_publish_now. */
#include "broker/will.h"

#include "broker/auth.h"
#include "broker/broker.h"
#include "broker/route.h"
#include "broker/timers.h"
#include "broker/worker.h"

void will_publish_now(worker_t *w, session_t *s)
{
    msg_t *will = session_take_will(s);
    if (!will)
        return;
    if (session_acl_write(s, will->topic.p, will->topic.len,
                          &(auth_msg_t){will->payload.p, will->payload.len, will->qos, will->retain != 0}))
        route_publish_will(w, will, s);
    msg_release(will);
}

void will_on_disconnect(worker_t *w, session_t *s, bool mine, bool discard, bool session_ends)
{
    if (!mine)
        return; /* taken over: the new connection owns the session's will now */
    uint32_t delay;
    if (!session_will_pending(s, discard, &delay))
        return;
    if (delay == 0 || session_ends) {
        will_publish_now(w, s);
        return;
    }
    int64_t at = w->now + (int64_t)delay * 1000;
    session_will_schedule(s, at);
    broker_timer_add(w->b, at, BT_WILL, s);
}
