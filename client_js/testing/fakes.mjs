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

/**
 * A fresh fake SockJS class (sockjs-client's API) with its own list of
 * instances: `new SockJS(url, null, {transports})`, `onopen`,
 * `onmessage({data})`, `onclose({code, reason, wasClean})`, `send`, `close`,
 * and `transport` (the SockJS transport in use) once open.
 * The test plays the server: `sock.open('xhr-polling')`, `sock.receive([...])`,
 * `sock.drop(code, reason)`.
 * @returns {typeof Object & {instances: Object[], last: Object}}
 */
export function makeFakeSockJS() {
  class FakeSockJS {
    constructor(url, reserved, options) {
      this.url = url;
      this.reserved = reserved;
      this.options = options;
      this.readyState = 0;
      this.transport = undefined;
      this.sent = [];
      this.closeCalls = [];
      this.onopen = null;
      this.onmessage = null;
      this.onclose = null;
      FakeSockJS.instances.push(this);
    }

    static get last() {
      return FakeSockJS.instances[FakeSockJS.instances.length - 1];
    }

    send(data) {
      if (this.readyState !== 1) {
        throw new Error('InvalidStateError: The connection has not been established yet');
      }
      this.sent.push(data);
    }

    /** Like sockjs-client: only 1000 and 3000–4999; the close event comes later. */
    close(code, reason) {
      if (code && !(code === 1000 || (code >= 3000 && code <= 4999))) {
        throw new Error('InvalidAccessError: Invalid code');
      }
      this.closeCalls.push([code, reason]);
      if (this.readyState >= 2) return;
      this.readyState = 2;
      Promise.resolve().then(() => this._closed({ code: code || 1000, reason: reason || 'Normal closure', wasClean: true }));
    }

    // ---- server side ----

    open(transport = 'websocket') {
      this.readyState = 1;
      this.transport = transport;
      this.onopen({ type: 'open' });
    }

    receive(message) {
      this.onmessage({ type: 'message', data: JSON.stringify(message) });
    }

    receiveRaw(data) {
      this.onmessage({ type: 'message', data });
    }

    /** The session ends from the server's side, or SockJS gives up (2000: all transports failed). */
    drop(code = 1006, reason = 'Connection lost') {
      this._closed({ code, reason, wasClean: false });
    }

    /** Parsed WAMP arrays the client sent. */
    get messages() {
      return this.sent.map((text) => JSON.parse(text));
    }

    messagesOfType(type) {
      return this.messages.filter((message) => message[0] === type);
    }

    _closed(event) {
      if (this.readyState === 3) return;
      this.readyState = 3;
      if (this.onclose) this.onclose(Object.assign({ type: 'close' }, event));
    }
  }
  FakeSockJS.instances = [];
  return FakeSockJS;
}

/**
 * A fake `document` that records injected <script> elements; the test
 * decides when one loads (`script.onload()`) or fails (`script.onerror()`).
 * @returns {{createElement: Function, head: Object, scripts: Object[]}}
 */
export function makeFakeDocument() {
  const head = {
    children: [],
    appendChild(node) {
      node.parentNode = head;
      head.children.push(node);
      return node;
    },
    removeChild(node) {
      head.children.splice(head.children.indexOf(node), 1);
      node.parentNode = null;
      return node;
    },
  };
  const document = {
    head,
    scripts: [],
    createElement(tag) {
      const element = { tagName: tag.toUpperCase(), src: '', async: false, onload: null, onerror: null, parentNode: null };
      if (tag === 'script') document.scripts.push(element);
      return element;
    },
  };
  return document;
}
