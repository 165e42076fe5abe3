// The paysync.js demo page: every status change of the tenant, live, in every tab, over one stream.
import { connect } from "../paysync.js";

const $ = (selector) => document.querySelector(selector);
const KEY_ITEM = "paysync.console.key";
const API = new URL("../", import.meta.url);

function watch(key) {
  // A real page asks its own backend for the token; the key never leaves this demo's tab otherwise.
  const getToken = async () => {
    const response = await fetch(new URL("v1/stream-tokens", API), {
      method: "POST",
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
      body: "{}",
    });
    if (!response.ok) throw new Error(`stream token: ${response.status}`);
    return (await response.json()).token;
  };
  const paysync = connect({ getToken, name: "watch-demo" });
  paysync.onStatus(({ status, role }) => {
    $("#connection").dataset.state = status;
    $("#connection").textContent = { online: "Online", offline: "Offline", connecting: "Connecting…" }[status];
    $("#role").textContent = role === "leader" ? "This tab holds the stream" : "Another tab holds the stream";
    document.body.dataset.role = role;
  });
  let refetches = 0;
  paysync.watchTenant((message) => {
    if (message.type === "refetch") {
      refetches += 1;
      $("#refetches").textContent = `Asked to refetch ${refetches} time(s), last: ${message.reason}`;
      return;
    }
    show(message.change);
  });
}

function show(change) {
  let item = document.querySelector(`li[data-payment-id="${CSS.escape(change.payment_id)}"]`);
  if (!item) {
    item = document.createElement("li");
    item.dataset.paymentId = change.payment_id;
    $("#payments").prepend(item);
  }
  item.dataset.status = change.new_status;
  item.textContent = `${change.provider_ref}: ${change.old_status ?? "new"} → ${change.new_status}`;
}

$("#sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = $("#api-key").value.trim();
  $("#api-key").value = "";
  if (!key) {
    $("#sign-in-error").textContent = "Enter a tenant API key.";
    return;
  }
  sessionStorage.setItem(KEY_ITEM, key);
  $("#sign-in-form").hidden = true;
  watch(key);
});

const saved = sessionStorage.getItem(KEY_ITEM);
if (saved) {
  $("#sign-in-form").hidden = true;
  watch(saved);
}
