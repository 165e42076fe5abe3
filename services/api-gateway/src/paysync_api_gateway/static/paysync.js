// paysync.js: live payment status in the browser, over one stream per browser shared by all tabs.
//
// An ES module with no dependencies and no build step, served by api-gateway at /paysync.js (or
// copy it into your app). Documented, with a copy-paste example, in docs/browser-helper.md.
//
//   import { connect } from "https://api.example.com/paysync.js";
//   const paysync = connect({ getToken: async () => (await fetch("/my-backend/paysync-token")).text() });
//   paysync.watchPayment(paymentId, (message) => { ... });
//
// One tab of the browser (the leader, holding a Web Lock) keeps the EventSource open and passes
// every event to the other tabs over a BroadcastChannel. When the leader tab closes, its lock is
// released and another tab takes over, resuming after the last event any tab saw.

const STATUS_EVENT = "payment.status";
const RESYNC_EVENT = "stream.resync";

/** Where the API is when no `baseUrl` is given: the origin (and path) this module was served from. */
const HERE = new URL("./", import.meta.url).href;

/**
 * A connection to the live stream of one tenant, shared by every tab of this browser that makes one
 * with the same `name`.
 *
 * options:
 *   getToken   async () => a stream token (string, or the `{token}` of POST /v1/stream-tokens).
 *              Your page's backend (or a publishable key) mints it: never put a secret key in a page.
 *   baseUrl    where the API is (default: where this module was served from)
 *   name       tabs share one stream per name (default "default"); use one per tenant/scope
 *   onStatus   ({status, role}) => void; status "connecting" | "online" | "offline",
 *              role "leader" (holds the stream) | "follower"
 *   minDelayMs, maxDelayMs   reconnect backoff (exponential, with jitter): 500 ms up to 15 s
 */
export function connect(options) {
  return new Connection(options);
}

class Connection {
  constructor({ getToken, baseUrl = HERE, name = "default", onStatus, minDelayMs = 500, maxDelayMs = 15000 }) {
    if (typeof getToken !== "function") throw new TypeError("paysync.connect needs getToken()");
    this.getToken = getToken;
    this.streamUrl = new URL("v1/stream", baseUrl.endsWith("/") ? baseUrl : `${baseUrl}/`);
    this.minDelayMs = minDelayMs;
    this.maxDelayMs = maxDelayMs;
    this.status = "connecting";
    this.role = "follower";
    this.lastEventId = null;
    this.watchers = new Set();
    this.statusListeners = new Set(onStatus ? [onStatus] : []);
    this.attempt = 0;
    this.wasConnected = false;
    this.heardLeader = false;
    this.source = null;
    this.timer = null;
    this.closed = false;
    this.hidden = document.visibilityState === "hidden";
    this.channel = new BroadcastChannel(`paysync:${name}`);
    this.channel.onmessage = (message) => this.fromLeader(message.data);
    this.onVisibility = () => this.visibilityChanged();
    document.addEventListener("visibilitychange", this.onVisibility);
    this.announce(this.status);
    this.lead(`paysync:${name}`);
  }

  /** Call `callback(message)` for each change of one payment; returns a function that stops it. */
  watchPayment(paymentId, callback) {
    return this.watch((change) => change.payment_id === String(paymentId), callback);
  }

  /** Call `callback(message)` for each change of one domain entity's payments. */
  watchEntity(domain, entityId, callback) {
    return this.watch((change) => change.domain === domain && change.entity_id === String(entityId), callback);
  }

  /** Call `callback(message)` for each change the stream carries (the token's whole scope). */
  watchTenant(callback) {
    return this.watch(() => true, callback);
  }

  /** Also tell `listener({status, role})` whenever the connection's status or this tab's role changes. */
  onStatus(listener) {
    this.statusListeners.add(listener);
    listener({ status: this.status, role: this.role });
    return () => this.statusListeners.delete(listener);
  }

  /** Stop: this tab gives up the stream (another tab takes it over) and calls no callback again. */
  close() {
    this.closed = true;
    this.stopStream();
    this.releaseLock?.();
    this.channel.close();
    document.removeEventListener("visibilitychange", this.onVisibility);
    this.watchers.clear();
  }

  // A message is {type: "change", change} (a PaymentStatusChanged, see docs/topics.md) or
  // {type: "refetch", reason}: events may have been missed (the stream said `stream.resync`, or the
  // page was hidden and is visible again), so read what you show from the API again.
  watch(matches, callback) {
    const watcher = { matches, callback };
    this.watchers.add(watcher);
    return () => this.watchers.delete(watcher);
  }

  lead(lockName) {
    if (!navigator.locks) {
      // No Web Locks (an old browser, or a page not served over https or from localhost): each
      // tab keeps a stream of its own.
      this.becomeLeader();
      return;
    }
    navigator.locks.request(lockName, () => {
      if (this.closed) return undefined;
      this.becomeLeader();
      // Held until this tab closes (the browser releases it then) or `close()` is called.
      return new Promise((resolve) => {
        this.releaseLock = resolve;
      });
    });
    this.channel.postMessage({ kind: "hello" }); // the leader, if any, answers with its status
  }

  becomeLeader() {
    // Taking over from a leader that had a stream: its gap has to be resumed, or refetched.
    this.wasConnected ||= this.heardLeader;
    this.role = "leader";
    this.announce(this.status);
    this.openStream();
  }

  async openStream() {
    if (this.closed || this.role !== "leader") return;
    this.setStatus(this.attempt === 0 ? "connecting" : "offline");
    let token;
    try {
      const minted = await this.getToken();
      token = typeof minted === "string" ? minted : minted.token;
    } catch {
      this.retry(); // the page's backend (or the network) is away: try again later
      return;
    }
    if (this.closed) return;
    const url = new URL(this.streamUrl);
    url.searchParams.set("token", token);
    // A new EventSource sends no Last-Event-ID header: the position goes in the query instead.
    if (this.lastEventId) url.searchParams.set("last_event_id", this.lastEventId);
    const source = new EventSource(url);
    this.source = source;
    const resuming = Boolean(this.lastEventId);
    source.onopen = () => {
      const again = this.attempt > 0 || this.wasConnected;
      this.attempt = 0;
      this.wasConnected = true;
      this.setStatus("online");
      // A new stream starts at the end: with no position to resume from, what happened while
      // this tab (or the previous leader) was away can only be read from the API.
      if (again && !resuming) this.broadcastRefetch("reconnected");
    };
    source.addEventListener(STATUS_EVENT, (event) => this.fromStream(STATUS_EVENT, event));
    source.addEventListener(RESYNC_EVENT, (event) => this.fromStream(RESYNC_EVENT, event));
    // Reconnect ourselves rather than let EventSource retry: its URL holds a token that may have
    // expired by then, and a refused reconnect would end the stream for good.
    source.onerror = () => {
      this.stopStream();
      this.setStatus("offline");
      this.retry();
    };
  }

  retry() {
    if (this.closed) return;
    const ceiling = Math.min(this.maxDelayMs, this.minDelayMs * 2 ** this.attempt);
    this.attempt += 1;
    // Half fixed, half random: many browsers cut off at once do not all come back at once.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.timer = setTimeout(() => this.openStream(), delay);
  }

  stopStream() {
    clearTimeout(this.timer);
    if (this.source) {
      this.source.onerror = null;
      this.source.close();
      this.source = null;
    }
  }

  fromStream(kind, event) {
    const message = { kind: "event", event: kind, id: event.lastEventId, data: event.data };
    this.channel.postMessage(message);
    this.deliver(message);
  }

  broadcastRefetch(reason) {
    this.channel.postMessage({ kind: "refetch", reason });
    this.refetch(reason);
  }

  fromLeader(message) {
    this.heardLeader ||= message.kind !== "hello";
    if (message.kind === "event" && this.role !== "leader") {
      this.deliver(message);
    } else if (message.kind === "refetch" && this.role !== "leader") {
      this.refetch(message.reason);
    } else if (message.kind === "status" && this.role !== "leader") {
      this.setStatus(message.status);
    } else if (message.kind === "hello" && this.role === "leader") {
      this.announce(this.status);
    }
  }

  deliver({ event, id, data }) {
    if (id) this.lastEventId = id;
    const payload = JSON.parse(data);
    if (event === RESYNC_EVENT) {
      this.refetch(`resync: ${payload.reason}`);
      return;
    }
    for (const watcher of [...this.watchers]) {
      if (watcher.matches(payload)) watcher.callback({ type: "change", change: payload });
    }
  }

  refetch(reason) {
    for (const watcher of [...this.watchers]) watcher.callback({ type: "refetch", reason });
  }

  visibilityChanged() {
    if (document.visibilityState === "hidden") {
      this.hidden = true;
    } else if (this.hidden) {
      this.hidden = false;
      this.refetch("visible");
    }
  }

  setStatus(status) {
    if (status === this.status) return;
    this.status = status;
    this.announce(status);
  }

  announce(status) {
    if (this.role === "leader") this.channel.postMessage({ kind: "status", status });
    for (const listener of [...this.statusListeners]) listener({ status, role: this.role });
  }
}

let shared = null;

/** Make the connection that `watchPayment`, `watchEntity` and `watchTenant` below use (options of `connect`). */
export function configure(options) {
  shared?.close();
  shared = connect(options);
  return shared;
}

function configured() {
  if (!shared) throw new Error("call paysync.configure({ getToken }) first");
  return shared;
}

/** `callback(message)` for each change of one payment (see `configure`); returns a stop function. */
export function watchPayment(paymentId, callback) {
  return configured().watchPayment(paymentId, callback);
}

/** `callback(message)` for each change of one domain entity's payments; returns a stop function. */
export function watchEntity(domain, entityId, callback) {
  return configured().watchEntity(domain, entityId, callback);
}

/** `callback(message)` for every change the stream token allows; returns a stop function. */
export function watchTenant(callback) {
  return configured().watchTenant(callback);
}
