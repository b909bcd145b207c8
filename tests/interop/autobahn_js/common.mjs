// Shared helpers for the Autobahn|JS interop scripts (driven by tests/interop/test_autobahn_js.py).
//
// Every script takes one JSON argument (its configuration), prints one JSON
// object per line on stdout, and exits by itself; a watchdog ends it with
// status 2 after `timeout_ms` (8 s by default) so a hang never outlives the test.
import autobahn from 'autobahn';

export { autobahn };

export const config = JSON.parse(process.argv[2] || '{}');

export function emit(obj) {
   process.stdout.write(JSON.stringify(obj) + '\n');
}

const watchdog = setTimeout(() => {
   emit({ error: `timed out after ${config.timeout_ms || 8000} ms` });
   process.exit(2);
}, config.timeout_ms || 8000);

export function done(code = 0) {
   clearTimeout(watchdog);
   // Let stdout drain before leaving.
   process.stdout.write('', () => process.exit(code));
}

export function fail(err) {
   emit({ error: String(err && err.stack ? err.stack : (err && err.error) || err), detail: err && err.args });
   done(1);
}

const EVENT = 36;

// Autobahn|JS hands subscribers an Event object without the EVENT.Details
// keys it does not know (the gateway's `offset` and `epoch`); this wrapper
// serializer keeps the raw Details of each EVENT, by publication id.
export function tapSerializer(name) {
   const inner = name === 'msgpack' ? new autobahn.serializer.MsgpackSerializer() : new autobahn.serializer.JSONSerializer();
   return {
      SERIALIZER_ID: inner.SERIALIZER_ID,
      BINARY: inner.BINARY,
      eventDetails: new Map(),
      serialize(obj) {
         return inner.serialize(obj);
      },
      unserialize(payload) {
         const msg = inner.unserialize(payload);
         if (Array.isArray(msg) && msg[0] === EVENT) {
            this.eventDetails.set(msg[2], msg[3]);
         }
         return msg;
      },
   };
}

// Open one WAMP session. Resolves {session, details, connection, serializer};
// rejects with {reason, details} when the connection closes before a session
// opens (an ABORT, for instance). Never retries.
export function open({ url = config.url, realm = config.realm || 'telegraphy', serializer = config.serializer || 'json', authmethods, authid, onchallenge } = {}) {
   const ser = tapSerializer(serializer);
   return new Promise((resolve, reject) => {
      const connection = new autobahn.Connection({
         url,
         realm,
         serializers: [ser],
         authmethods,
         authid,
         onchallenge,
         max_retries: 0,
         retry_if_unreachable: false,
      });
      let opened = false;
      connection.onopen = (session, details) => {
         opened = true;
         resolve({ session, details, connection, serializer: ser });
      };
      connection.onclose = (reason, details) => {
         if (!opened) {
            reject({ reason, details });
         }
         return true; // never reconnect
      };
      connection.open();
   });
}

// Close a connection and wait until its transport is gone.
export function close(connection) {
   return new Promise((resolve) => {
      if (!connection.isOpen) {
         resolve();
         return;
      }
      const previous = connection.onclose;
      connection.onclose = (reason, details) => {
         if (previous) previous(reason, details);
         resolve();
         return true;
      };
      connection.close();
   });
}

export function sleep(ms) {
   return new Promise((resolve) => setTimeout(resolve, ms));
}

// onchallenge for ticket (`config.ticket`) and WAMP-CRA (`config.wampcra_key`).
export function answer(ticket, key) {
   return (session, method, extra) => {
      if (method === 'ticket') return ticket;
      if (method === 'wampcra') return autobahn.auth_cra.sign(key, extra.challenge);
      throw new Error(`unexpected challenge ${method}`);
   };
}

// The Event / Invocation objects Autobahn|JS builds, as plain JSON.
export function plain(obj) {
   return JSON.parse(JSON.stringify(obj === undefined ? null : obj));
}
