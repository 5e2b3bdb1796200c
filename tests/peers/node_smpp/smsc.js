'use strict';
// An SMS centre we did not write, for the notifier's peer test: node-smpp's
// own server (npm `smpp`), reading our PDUs with its own decoder. It accepts
// one ESME account, answers submit_sm, joins concatenated parts by their UDH
// as a handset would, and pushes a delivery receipt (deliver_sm) per part.
// It reports on stdout, one JSON object per line:
//   {"event":"listening","port"}  {"event":"bound","system_id"}
//   {"event":"part", ...the submit_sm as node-smpp decoded it}
//   {"event":"message","source","dest","text","segments"}
//   {"event":"receipt_acked","message_id","command_status"}
// Usage: node smsc.js (env SMSC_PORT (0 = any free port), SMSC_SYSTEM_ID, SMSC_PASSWORD)

const smpp = require('smpp');

const systemId = process.env.SMSC_SYSTEM_ID || 'yztc';
const password = process.env.SMSC_PASSWORD || 'secret';
let nextId = 1;
const partial = new Map();

function emit(event) {
  process.stdout.write(JSON.stringify(event) + '\n');
}

function concatenation(udhList) {
  for (const ie of udhList || []) {
    if (ie[0] === 0x00 && ie[1] === 3) return {ref: ie[2], total: ie[3], seq: ie[4]};
    if (ie[0] === 0x08 && ie[1] === 4) return {ref: ie.readUInt16BE(2), total: ie[4], seq: ie[5]};
  }
  return null;
}

function stamp(date) {
  const p = (n) => String(n).padStart(2, '0');
  return `${p(date.getUTCFullYear() % 100)}${p(date.getUTCMonth() + 1)}${p(date.getUTCDate())}` +
    `${p(date.getUTCHours())}${p(date.getUTCMinutes())}`;
}

const server = smpp.createServer({debug: false}, (session) => {
  session.on('error', () => {});
  session.on('bind_transceiver', (pdu) => {
    if (pdu.system_id !== systemId || pdu.password !== password) {
      session.send(pdu.response({command_status: smpp.ESME_RINVPASWD}));
      session.close();
      return;
    }
    session.send(pdu.response({system_id: 'NODESMSC'}));
    emit({event: 'bound', system_id: pdu.system_id});
  });
  session.on('enquire_link', (pdu) => session.send(pdu.response()));
  session.on('unbind', (pdu) => {
    session.send(pdu.response());
    session.close();
  });
  session.on('submit_sm', (pdu) => {
    const messageId = `node-${nextId++}`;
    session.send(pdu.response({message_id: messageId}));
    const sm = pdu.short_message;  // {udh: [IE buffers], message: decoded text} when UDHI is set
    const text = typeof sm.message === 'string' ? sm.message : String(sm.message);
    const concat = concatenation(sm.udh);
    emit({
      event: 'part', message_id: messageId, source_addr: pdu.source_addr,
      source_addr_ton: pdu.source_addr_ton, source_addr_npi: pdu.source_addr_npi,
      destination_addr: pdu.destination_addr, esm_class: pdu.esm_class, data_coding: pdu.data_coding,
      registered_delivery: pdu.registered_delivery, udh: (sm.udh || []).map((ie) => ie.toString('hex')),
      text,
    });
    if (!concat) {
      emit({event: 'message', source: pdu.source_addr, dest: pdu.destination_addr, text, segments: 1});
    } else {
      const key = `${pdu.source_addr}|${pdu.destination_addr}|${concat.ref}|${concat.total}`;
      const parts = partial.get(key) || new Map();
      parts.set(concat.seq, text);
      partial.set(key, parts);
      if (parts.size === concat.total) {
        partial.delete(key);
        const whole = Array.from({length: concat.total}, (_, i) => parts.get(i + 1)).join('');
        emit({event: 'message', source: pdu.source_addr, dest: pdu.destination_addr, text: whole, segments: concat.total});
      }
    }
    if (pdu.registered_delivery & 0x03) {
      const now = new Date();
      session.deliver_sm({
        source_addr: pdu.destination_addr,
        destination_addr: pdu.source_addr,
        esm_class: smpp.ESM_CLASS.MC_DELIVERY_RECEIPT,
        short_message: `id:${messageId} sub:001 dlvrd:001 submit date:${stamp(now)} done date:${stamp(now)} stat:DELIVRD err:000 text:`,
        receipted_message_id: messageId,
        message_state: smpp.MESSAGE_STATE.DELIVERED,
      }, (resp) => emit({event: 'receipt_acked', message_id: messageId, command_status: resp.command_status}));
    }
  });
});

server.listen(Number(process.env.SMSC_PORT || 0), '127.0.0.1', () => {
  emit({event: 'listening', port: server.address().port});
});

process.on('SIGTERM', () => {
  for (const session of server.sessions.slice()) session.destroy();
  server.close(() => process.exit(0));
});
