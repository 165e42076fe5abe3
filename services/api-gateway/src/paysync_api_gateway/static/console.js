// The operator console: the public /v1 API and the live stream (through paysync.js), nothing else.
// The tenant key lives in this tab's sessionStorage and travels only in the Authorization header;
// the stream is opened with short-lived stream tokens, so no key is ever part of a URL.

import { connect } from "../paysync.js";
import * as view from "./console-views.js";

const { $ } = view;
const API = new URL("../", import.meta.url); // the console is served by the API it calls
const KEY_ITEM = "paysync.console.key";
const FOLLOW_UP_EVERY_MS = 2000;
const FOLLOW_UP_TIMES = 30;
const PAGE_SIZE = 25;
// Sync issues are not on the stream: they are read again this often (and on every status change).
const ISSUES_EVERY_MS = 30000;

const state = { key: null, filters: {}, cursors: [null], next: null, live: null, timers: {} };

class ApiError extends Error {
  constructor(response, body) {
    super(body?.message || `${response.status} ${response.statusText}`);
    this.status = response.status;
    this.body = body;
    this.retryAfter = response.headers.get("Retry-After");
  }
}

/** Call the API with the tenant key; 2xx answers' bodies, or an ApiError in the API's error shape. */
async function api(path, { method = "GET", body } = {}) {
  const headers = { Authorization: `Bearer ${state.key}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(new URL(path, API), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response, data);
  return { status: response.status, data };
}

const enc = encodeURIComponent;
const may = (scope) => Boolean(state.access?.scopes.includes(scope));

function explain(error) {
  if (!(error instanceof ApiError)) return `Could not reach the API (${error.message})`;
  const problems = (error.body?.problems || []).map((p) => `${p.field}: ${p.problem}`).join("; ");
  const wait = error.retryAfter ? ` Try again in ${error.retryAfter} s.` : "";
  return `${error.message}${problems ? ` (${problems})` : ""}.${wait}`;
}

/** Run `work` `ms` from now, once for all the calls under `name` until then (live events come in bursts). */
function soon(name, work, ms = 300) {
  if (state.timers[name]) return;
  state.timers[name] = setTimeout(() => {
    state.timers[name] = null;
    work();
  }, ms);
}

// Sign-in -------------------------------------------------------------------------------------

async function signIn(key) {
  state.key = key;
  try {
    state.access = (await api("v1/key")).data;
  } catch (error) {
    state.key = null;
    sessionStorage.removeItem(KEY_ITEM);
    const hint = error.status === 403 ? " The console needs a secret key (psk_…) with the read scope." : "";
    $("#sign-in-error").textContent = `${explain(error)}${hint}`;
    return;
  }
  sessionStorage.setItem(KEY_ITEM, key);
  $("#sign-in").hidden = true;
  $("#app").hidden = false;
  $("#sign-out").hidden = false;
  const { tenant, scopes } = state.access;
  $("#signed-in-as").hidden = false;
  $("#signed-in-as").textContent = `Tenant ${tenant} (${scopes.join(", ")})`;
  // Offer only what the key may do; the API decides again on every call.
  $("#bulk-check").hidden = !may("write");
  $("#override-form").hidden = !may("override");
  await Promise.all([loadStats(), loadPayments(), loadIssues()]);
  setInterval(loadIssues, ISSUES_EVERY_MS);
  await goLive(key);
}

async function goLive(key) {
  state.live = connect({
    name: `console:${await fingerprint(key)}`, // tabs signed in to one tenant share one stream
    getToken: async () => (await api("v1/stream-tokens", { method: "POST", body: {} })).data.token,
    onStatus: view.showConnection,
  });
  state.live.watchTenant(onLive);
}

async function fingerprint(key) {
  if (!crypto.subtle) return "console"; // not a secure context: one channel for every key
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key));
  return [...new Uint8Array(digest).slice(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function signOut() {
  sessionStorage.removeItem(KEY_ITEM);
  state.live?.close();
  location.reload();
}

// Live updates ---------------------------------------------------------------------------------

function onLive(message) {
  if (message.type === "refetch") {
    loadStats();
    loadPayments();
    loadIssues();
    return;
  }
  const change = message.change;
  const row = document.querySelector(`tr[data-payment-id="${CSS.escape(change.payment_id)}"]`);
  if (row) view.setRowStatus(row, change.new_status);
  else if (state.cursors.length === 1) soon("payments", loadPayments); // a new payment on the first page
  if (state.detail === change.payment_id) soon("detail", () => openDetail({ id: change.payment_id }));
  soon("stats", loadStats);
  soon("issues", loadIssues, 1000);
}

// Panels ---------------------------------------------------------------------------------------

async function loadStats() {
  try {
    view.showStats((await api("v1/stats")).data);
  } catch (error) {
    $("#stats-counts").replaceChildren(view.el("p", { class: "error" }, explain(error)));
  }
}

function readFilters(form) {
  const filters = {};
  for (const [name, value] of new FormData(form)) {
    if (!value) continue;
    // datetime-local is the operator's local time without a zone; the API wants one.
    filters[name] = name.startsWith("created_") ? new Date(value).toISOString() : value.trim();
  }
  return filters;
}

async function loadPayments() {
  const params = new URLSearchParams({ ...state.filters, limit: PAGE_SIZE });
  const cursor = state.cursors.at(-1);
  if (cursor) params.set("cursor", cursor);
  try {
    const page = (await api(`v1/payments?${params}`)).data;
    $("#filters-error").textContent = "";
    view.showPayments(page, { check: checkPayment, details: openDetail });
    state.next = page.next_cursor;
  } catch (error) {
    $("#filters-error").textContent = explain(error);
  }
  $("#prev-page").disabled = state.cursors.length === 1;
  $("#next-page").disabled = !state.next;
}

async function loadIssues() {
  try {
    const page = (await api("v1/sync-issues?limit=50")).data;
    view.showIssues(page.items, may("write") ? { act: actOnIssue } : null);
  } catch (error) {
    $("#issues-list").replaceChildren(view.el("li", { class: "error" }, explain(error)));
  }
}

async function actOnIssue(issue, action, note, message) {
  if (action === "resolve" && !note.trim()) {
    message.textContent = "Write a note to resolve this issue: what was done about it.";
    return;
  }
  try {
    await api(`v1/sync-issues/${enc(issue.id)}/${action}`, { method: "POST", body: note ? { note } : {} });
    await loadIssues();
  } catch (error) {
    message.textContent = explain(error);
  }
}

async function openDetail(payment) {
  state.detail = payment.id;
  try {
    const [current, history] = await Promise.all([
      api(`v1/payments/${enc(payment.id)}`),
      api(`v1/payments/${enc(payment.id)}/history?limit=100`),
    ]);
    view.showDetail(current.data, history.data);
  } catch (error) {
    $("#detail-fields").replaceChildren(view.el("p", { class: "error" }, explain(error)));
  }
  const panel = $("#detail");
  if (panel.hidden) {
    panel.hidden = false;
    panel.focus();
  }
}

async function override(event) {
  event.preventDefault();
  const form = event.target;
  const decision = Object.fromEntries(new FormData(form));
  const result = $("#override-result");
  result.textContent = "Setting the status…";
  try {
    const answer = await api(`v1/payments/${enc(state.detail)}/override`, { method: "POST", body: decision });
    result.textContent =
      answer.status === 202
        ? `Sent: ${decision.status}, not applied yet; it shows here once it is`
        : `Status set: ${answer.data.status_before} → ${answer.data.status}`;
    form.reset();
    await openDetail({ id: state.detail });
  } catch (error) {
    result.textContent = explain(error);
  }
}

function closeDetail() {
  state.detail = null;
  $("#detail").hidden = true;
}

// Checks ---------------------------------------------------------------------------------------

/** A check answered 202 goes on: follow it until it completes (or we stop asking). */
async function finished(answer) {
  for (let n = 0; answer.status === 202 || answer.data.status === "checking"; n += 1) {
    if (n >= FOLLOW_UP_TIMES) throw new Error("the check is still running; look again later");
    await new Promise((resolve) => setTimeout(resolve, FOLLOW_UP_EVERY_MS));
    answer = await api(`v1/reconcile-requests/${enc(answer.data.request_id)}`);
  }
  if (answer.data.status === "failed") throw new Error(`the check failed: ${answer.data.reason}`);
  return answer.data;
}

async function checkPayment(payment, row) {
  view.rowBusy(row, true);
  try {
    const path = `v1/domains/${enc(payment.domain)}/${enc(payment.entity_id)}/payments/refresh`;
    const answer = await finished(await api(path, { method: "POST" }));
    view.rowResult(row, view.checkMessage(payment, answer));
    const mine = (answer.payments || []).find((p) => p.payment_id === payment.id);
    if (mine?.status_after) view.setRowStatus(row, mine.status_after);
  } catch (error) {
    view.rowResult(row, explain(error));
  } finally {
    view.rowBusy(row, false);
  }
}

async function checkAll() {
  const button = $("#bulk-check");
  button.disabled = true;
  $("#bulk-spinner").hidden = false;
  $("#bulk-result").textContent = "Checking every unsettled payment…";
  try {
    const answer = await finished(await api("v1/payments/refresh", { method: "POST" }));
    $("#bulk-result").textContent = view.bulkMessage(answer);
    await Promise.all([loadStats(), loadPayments()]);
  } catch (error) {
    $("#bulk-result").textContent = explain(error);
  } finally {
    button.disabled = false;
    $("#bulk-spinner").hidden = true;
  }
}

// Wiring ---------------------------------------------------------------------------------------

function wire() {
  $("#sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("#api-key");
    const key = input.value.trim();
    input.value = "";
    if (key) signIn(key);
    else $("#sign-in-error").textContent = "Enter a tenant API key.";
  });
  $("#sign-out").addEventListener("click", signOut);
  $("#filters").addEventListener("submit", (event) => {
    event.preventDefault();
    state.filters = readFilters(event.target);
    state.cursors = [null];
    loadPayments();
  });
  $("#filters").addEventListener("reset", () => {
    state.filters = {};
    state.cursors = [null];
    loadPayments();
  });
  $("#next-page").addEventListener("click", () => {
    state.cursors.push(state.next);
    loadPayments();
  });
  $("#prev-page").addEventListener("click", () => {
    state.cursors.pop();
    loadPayments();
  });
  $("#bulk-check").addEventListener("click", checkAll);
  $("#refresh-issues").addEventListener("click", loadIssues);
  $("#close-detail").addEventListener("click", closeDetail);
  $("#override-form").addEventListener("submit", override);
  const statuses = [...document.querySelectorAll('#filters select[name="status"] option')].filter((o) => o.value);
  $('#override-form select[name="status"]').append(...statuses.map((option) => option.cloneNode(true)));
  const saved = sessionStorage.getItem(KEY_ITEM);
  if (saved) signIn(saved);
}

wire();
