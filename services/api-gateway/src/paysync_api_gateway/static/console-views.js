// The console's rendering: DOM built with textContent only (never HTML from data), so nothing an
// API answer holds can become markup or script.

/** An element with attributes (`on*` functions become listeners) and children (strings or nodes). */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child !== undefined && child !== null) node.append(child);
  }
  return node;
}

export const $ = (selector) => document.querySelector(selector);

/** Minor units as money: 2500 USD is "$25.00"; a currency Intl does not know is shown as "25.00 XXX". */
export function money(minor, currency) {
  if (minor === null || minor === undefined) return "–";
  if (!currency) return String(minor);
  try {
    const format = new Intl.NumberFormat("en", { style: "currency", currency });
    const digits = format.resolvedOptions().maximumFractionDigits;
    return format.format(minor / 10 ** digits);
  } catch {
    return `${(minor / 100).toFixed(2)} ${currency}`;
  }
}

/** A time as "2026-03-01 12:00:05 UTC": the same for every operator, whatever their zone. */
export function when(iso) {
  return iso ? `${iso.replace("T", " ").slice(0, 19)} UTC` : "–";
}

export function showConnection({ status }) {
  const node = $("#connection");
  node.dataset.state = status;
  node.textContent = { online: "Online: live", offline: "Offline: reconnecting…", connecting: "Connecting…" }[
    status
  ];
}

export function statusBadge(status) {
  return el("span", { class: "status", dataset: { status } }, status);
}

export function showStats(stats) {
  const counts = $("#stats-counts");
  counts.replaceChildren(
    el("div", {}, el("dt", {}, "All payments"), el("dd", { dataset: { count: "total" } }, String(stats.total))),
    ...Object.entries(stats.by_status)
      .sort()
      .map(([status, count]) =>
        el("div", {}, el("dt", {}, statusBadge(status)), el("dd", { dataset: { count: status } }, String(count))),
      ),
  );
  $("#stats-currencies tbody").replaceChildren(
    ...Object.entries(stats.by_currency)
      .sort()
      .map(([currency, totals]) =>
        el(
          "tr",
          { dataset: { currency } },
          el("th", { scope: "row" }, currency),
          el("td", {}, money(totals.registered_minor, currency)),
          el("td", {}, money(totals.received_minor, currency)),
          el("td", {}, money(totals.refunded_minor ?? 0, currency)),
        ),
      ),
  );
}

/** One row of the payments table; `actions` gives its buttons' handlers. */
export function paymentRow(payment, actions) {
  const entity = payment.domain ? `${payment.domain} / ${payment.entity_id}` : "–";
  const check = el(
    "button",
    {
      type: "button",
      class: "check",
      disabled: !payment.domain,
      "aria-label": `Check payment status of ${payment.provider_ref}`,
      onclick: () => actions.check(payment, row),
    },
    "Check payment status",
  );
  const details = el(
    "button",
    { type: "button", "aria-label": `Details of ${payment.provider_ref}`, onclick: () => actions.details(payment) },
    "Details",
  );
  const row = el(
    "tr",
    { dataset: { paymentId: payment.id } },
    el("td", { "data-label": "Created" }, when(payment.created_at)),
    el("td", { "data-label": "Reference", class: "ref" }, payment.provider_ref),
    el("td", { "data-label": "Gateway" }, payment.provider),
    el("td", { "data-label": "Entity" }, entity),
    el("td", { "data-label": "Amount" }, money(payment.amount_minor, payment.currency)),
    el("td", { "data-label": "Status", class: "status-cell" }, statusBadge(payment.status)),
    el(
      "td",
      { "data-label": "Actions", class: "actions" },
      details,
      check,
      el("span", { class: "spinner", hidden: true, "aria-hidden": "true" }),
      el("span", { class: "result", role: "status", "aria-live": "polite" }),
    ),
  );
  return row;
}

export function setRowStatus(row, status) {
  row.querySelector(".status-cell").replaceChildren(statusBadge(status));
}

export function rowBusy(row, busy) {
  row.querySelector("button.check").disabled = busy;
  row.querySelector(".spinner").hidden = !busy;
  if (busy) row.querySelector(".result").textContent = "Checking…";
}

export function rowResult(row, message) {
  row.querySelector(".result").textContent = message;
}

/** What a check of one entity found for one of its payments, in words. */
export function checkMessage(payment, answer) {
  const mine = (answer.payments || []).find((p) => p.payment_id === payment.id);
  if (!mine) {
    return `Checked ${answer.payments_checked} payment(s) of ${payment.entity_id}: ${answer.payments_updated} updated`;
  }
  if (mine.error) return `Could not ask ${payment.provider}: ${mine.error}`;
  if (mine.changed && mine.status_after === "succeeded") return `Paid: the gateway says succeeded (was ${mine.status_before})`;
  if (mine.changed) return `Updated: ${mine.status_before} → ${mine.status_after}`;
  return `No change: ${mine.status_after ?? payment.status}`;
}

/** The summary of a bulk check. */
export function bulkMessage(answer) {
  return (
    `Checked ${answer.payments_checked} payment(s): ${answer.payments_updated} updated, ` +
    `${answer.payments_found_paid} found paid, ${answer.gateway_errors} error(s)`
  );
}

export function showPayments(page, actions) {
  const rows = page.items.map((payment) => paymentRow(payment, actions));
  $("#payments-table tbody").replaceChildren(...rows);
  $("#payments-empty").hidden = rows.length > 0;
}

/** The list of unresolved sync issues, each with the buttons its state allows (none without `actions`). */
export function showIssues(issues, actions) {
  // The list is read again every so often: a note being typed survives it.
  const typed = new Map(
    [...document.querySelectorAll("#issues-list li[data-issue-id]")].map((li) => [
      li.dataset.issueId,
      li.querySelector('input[name="note"]')?.value ?? "",
    ]),
  );
  $("#issues-empty").hidden = issues.length > 0;
  $("#issues-list").replaceChildren(
    ...issues.map((issue) => {
      const note = el("input", { name: "note", "aria-label": `Note for issue ${issue.id}`, autocomplete: "off" });
      note.value = typed.get(String(issue.id)) ?? "";
      const message = el("p", { class: "result", role: "status", "aria-live": "polite" });
      const act = (name) => () => actions.act(issue, name, note.value, message);
      const buttons = actions
        ? el(
            "div",
            { class: "issue-actions" },
            el("label", {}, "Note ", note),
            issue.state === "open" ? el("button", { type: "button", onclick: act("acknowledge") }, "Acknowledge") : null,
            el("button", { type: "button", onclick: act("resolve") }, "Resolve"),
          )
        : null;
      const where = issue.entity_id ? ` · ${issue.domain} / ${issue.entity_id}` : "";
      return el(
        "li",
        { dataset: { issueId: issue.id, state: issue.state } },
        el("p", {}, el("strong", {}, issue.kind), ` (${issue.state}) `, issue.detail),
        el("p", { class: "meta" }, `Opened ${when(issue.opened_at)}${where}`),
        buttons,
        message,
      );
    }),
  );
}

/** The detail panel: the payment's fields and its history, oldest first. */
export function showDetail(payment, history) {
  const field = (name, value) => el("div", {}, el("dt", {}, name), el("dd", {}, value ?? "–"));
  $("#detail-title").textContent = `Payment ${payment.provider_ref}`;
  $("#detail-fields").replaceChildren(
    field("Status", statusBadge(payment.status)),
    field("Id", payment.id),
    field("Gateway", payment.provider),
    field("Entity", payment.domain ? `${payment.domain} / ${payment.entity_id}` : null),
    field("Amount", money(payment.amount_minor, payment.currency)),
    field("Received", money(payment.amount_received_minor, payment.currency)),
    field("Refunded", money(payment.amount_refunded_minor, payment.currency)),
    field("Paid at", payment.paid_at ? when(payment.paid_at) : null),
    field("Flags", payment.flags.join(", ") || null),
    field("Aliases", payment.aliases.join(", ") || null),
  );
  $("#detail-history").replaceChildren(
    ...history.items.map((entry) =>
      el(
        "li",
        {},
        el("p", {}, `${when(entry.recorded_at)}: ${entry.source} (${entry.kind}) said ${entry.status ?? "unknown"}, `, "status after: ", statusBadge(entry.status_after)),
        el("p", { class: "meta" }, evidenceLine(entry)),
      ),
    ),
  );
}

function evidenceLine(entry) {
  const parts = [`provider time ${when(entry.provider_time)}`];
  if (entry.provider_event_id) parts.push(`event ${entry.provider_event_id}`);
  if (entry.event_type) parts.push(entry.event_type);
  if (entry.raw_record) parts.push(`raw record ${entry.raw_record.topic}[${entry.raw_record.partition}]@${entry.raw_record.offset}`);
  if (entry.override) parts.push(`override by ${entry.override.by}: ${entry.override.reason}`);
  if (entry.refused) parts.push(`not applied: ${entry.refused}`);
  return parts.join(" · ");
}
