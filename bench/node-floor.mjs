#!/usr/bin/env node
// Not a broker: the least a Node.js MQTT server can do per connection — a plain
// net.Server that answers every read with a CONNACK. The idle-connections
// scenario runs it beside the brokers to show the floor that Node's own
// net.Socket sets for RSS per connection and connect rate on this machine.
import net from 'node:net';

const args = process.argv.slice(2);
const opt = (n, d) => (args.includes(n) ? args[args.indexOf(n) + 1] : d);
const CONNACK = Buffer.from([0x20, 2, 0, 0]);
net
  .createServer({ noDelay: true }, (s) => {
    s.on('data', () => s.write(CONNACK));
    s.on('error', () => {});
  })
  .listen(Number(opt('--port')), opt('--host', '127.0.0.1'));
