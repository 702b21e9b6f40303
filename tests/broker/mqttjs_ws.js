// mqttjs_ws.js -- MQTT.js (npm package `mqtt`) over WebSockets against a broker, for
// tests/broker/test_websockets.py: node mqttjs_ws.js URL [CAFILE]
// URL is ws://127.0.0.1:PORT/mqtt or wss://localhost:PORT/mqtt (CAFILE: the CA that signed the
// broker's certificate). Runs QoS 0/1/2 both ways, a retained message, a will, MQTT 5 properties
// and an MQTT 3.1.1 client, then prints one JSON object of named checks (true/false or values) and
// exits 0; it never hangs: every step has a deadline and the whole run stops after 30 s.
'use strict';
const fs = require('fs');
const path = require('path');
const mqtt = require(path.join(__dirname, '..', 'node_modules', 'mqtt'));

const url = process.argv[2];
const caFile = process.argv[3];
const tag = 'js' + process.pid + '-';
const checks = {};
setTimeout(() => { checks.timeout = true; done(); }, 30000).unref();

function opts(extra) {
  const o = Object.assign({ reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 5 }, extra);
  if (caFile) o.ca = fs.readFileSync(caFile);
  return o;
}

function connect(extra) {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, opts(extra));
    c.once('connect', (ack) => resolve(c));
    c.once('error', reject);
    c.once('close', () => reject(new Error('closed before CONNACK')));
  });
}

function waitMessages(c, n, ms) {
  return new Promise((resolve) => {
    const got = [];
    const t = setTimeout(() => resolve(got), ms);
    c.on('message', (topic, payload, packet) => {
      got.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain, properties: packet.properties });
      if (got.length >= n) { clearTimeout(t); resolve(got); }
    });
  });
}

let finished = false;
function done() {
  if (finished) return;
  finished = true;
  process.stdout.write(JSON.stringify(checks) + '\n');
  process.exit(0);
}

async function main() {
  // QoS 0/1/2 and MQTT 5 properties
  const sub = await connect({ clientId: tag + 'sub' });
  checks.connect_v5 = true;
  const granted = await sub.subscribeAsync(tag + 't/#', { qos: 2 });
  checks.suback_qos = granted.map((g) => g.qos);
  const pub = await connect({ clientId: tag + 'pub' });
  const wait = waitMessages(sub, 3, 5000);
  const props = { userProperties: { k: 'v' }, contentType: 'text/plain', responseTopic: 'reply/x',
                  correlationData: Buffer.from('cd'), messageExpiryInterval: 60 };
  await pub.publishAsync(tag + 't/q0', 'zero', { qos: 0 });
  await pub.publishAsync(tag + 't/q1', 'one', { qos: 1 });
  await pub.publishAsync(tag + 't/q2', 'two', { qos: 2, properties: props });
  const msgs = await wait;
  checks.received = msgs.map((m) => [m.topic.slice(tag.length), m.payload, m.qos]).sort();
  const p2 = (msgs.find((m) => m.payload === 'two') || {}).properties || {};
  checks.v5_props = {
    userProperties: p2.userProperties, contentType: p2.contentType, responseTopic: p2.responseTopic,
    correlationData: p2.correlationData ? p2.correlationData.toString() : null,
    expiry_ok: typeof p2.messageExpiryInterval === 'number' && p2.messageExpiryInterval <= 60 && p2.messageExpiryInterval > 0,
  };

  // A big message (several WebSocket frames' worth) round trip
  const big = 'b'.repeat(100000);
  const waitBig = waitMessages(sub, 1, 10000); // Mosquitto 2.0.11 needs ~2.5 s for 100 KB over ws
  await pub.publishAsync(tag + 't/big', big, { qos: 1 });
  const bigGot = await waitBig;
  checks.big_ok = bigGot.length === 1 && bigGot[0].payload === big;

  // Retained
  await pub.publishAsync(tag + 'r/1', 'kept', { qos: 1, retain: true });
  const late = await connect({ clientId: tag + 'late' });
  const waitRet = waitMessages(late, 1, 3000);
  await late.subscribeAsync(tag + 'r/#', { qos: 1 });
  const ret = await waitRet;
  checks.retained = ret.map((m) => [m.payload, m.retain]);
  await pub.publishAsync(tag + 'r/1', '', { qos: 1, retain: true }); // clear it
  await late.endAsync();

  // Will: the client's WebSocket goes away without DISCONNECT
  const waitWill = waitMessages(sub, 1, 5000);
  const willer = await connect({ clientId: tag + 'willer', will: { topic: tag + 't/will', payload: Buffer.from('gone'), qos: 1 } });
  willer.stream.destroy();
  const will = await waitWill;
  checks.will = will.map((m) => [m.topic.slice(tag.length), m.payload]);
  willer.end(true);

  // MQTT 3.1.1 over WebSockets
  const old = await connect({ clientId: tag + 'v311', protocolVersion: 4 });
  const waitOld = waitMessages(old, 1, 3000);
  await old.subscribeAsync(tag + 'o/x', { qos: 1 });
  await pub.publishAsync(tag + 'o/x', 'v4', { qos: 1 });
  checks.v311 = (await waitOld).map((m) => [m.payload, m.qos]);
  await old.endAsync();

  await pub.endAsync();
  await sub.endAsync();
  checks.clean_end = true;
}

main().then(done, (e) => { checks.error = String(e && e.message || e); done(); });
