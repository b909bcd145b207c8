/**
 * Test doubles for the client: a scriptable WebSocket class, manual timers,
 * and a microtask flush. No network, no real time.
 */

/**
 * A fresh fake WebSocket class with its own list of instances.
 * The test plays the router: `ws.open()`, `ws.receive([...])`, `ws.drop()`.
 * @returns {typeof Object & {instances: Object[], last: Object}}
 */
export function makeFakeWebSocket() {
  class FakeWebSocket {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.readyState = 0;
      this.protocol = '';
      this.sent = [];
      this.closeCalls = [];
      this.onopen = null;
      this.onmessage = null;
      this.onclose = null;
      this.onerror = null;
      FakeWebSocket.instances.push(this);
    }

    static get last() {
      return FakeWebSocket.instances[FakeWebSocket.instances.length - 1];
    }

    send(text) {
      if (this.readyState !== 1) {
        throw new Error('fake socket not open');
      }
      this.sent.push(text);
    }

    /** The client closes: like a browser, the close event comes later. */
    close(code, reason) {
      this.closeCalls.push([code, reason]);
      if (this.readyState === 3) return;
      this.readyState = 2;
      Promise.resolve().then(() => this._closed({ code, reason: reason || '', wasClean: true }));
    }

    // ---- router side ----

    open(protocol = 'wamp.2.json') {
      this.readyState = 1;
      this.protocol = protocol;
      this.onopen({});
    }

    receive(message) {
      this.onmessage({ data: JSON.stringify(message) });
    }

    receiveRaw(data) {
      this.onmessage({ data });
    }

    /** The connection drops (the server went away). */
    drop(code = 1006, reason = '') {
      this.onerror && this.onerror({});
      this._closed({ code, reason, wasClean: false });
    }

    /** Parsed WAMP arrays the client sent. */
    get messages() {
      return this.sent.map((text) => JSON.parse(text));
    }

    /** Parsed messages of one type code. */
    messagesOfType(type) {
      return this.messages.filter((message) => message[0] === type);
    }

    _closed(event) {
      if (this.readyState === 3 && this._closeFired) return;
      this.readyState = 3;
      this._closeFired = true;
      if (this.onclose) this.onclose(event);
    }
  }
  FakeWebSocket.instances = [];
  return FakeWebSocket;
}

/** Manual timers: nothing runs until the test says so. */
export function makeFakeTimers() {
  let nextId = 1;
  const pending = new Map();
  return {
    setTimeout(fn, ms) {
      const id = nextId++;
      pending.set(id, { fn, ms });
      return id;
    },
    clearTimeout(id) {
      pending.delete(id);
    },
    /** Delays of the timers still waiting, in the order set. */
    get delays() {
      return Array.from(pending.values(), (timer) => timer.ms);
    },
    get size() {
      return pending.size;
    },
    /** Run the oldest waiting timer; returns its delay. */
    runNext() {
      const [id, timer] = pending.entries().next().value;
      pending.delete(id);
      timer.fn();
      return timer.ms;
    },
  };
}

/** Let pending promise callbacks and microtasks run. */
export function flush() {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Wait until `predicate()` is true, flushing between tries (no real sleeping).
 * @param {function(): boolean} predicate
 * @param {string} what shown when it never happens
 */
export async function until(predicate, what) {
  for (let i = 0; i < 50; i += 1) {
    if (predicate()) return;
    await flush();
  }
  throw new Error('timed out waiting for ' + what);
}
