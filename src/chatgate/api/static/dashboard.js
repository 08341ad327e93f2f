/* chatgate dashboard (/dashboard): cards, uPlot charts and per-model / per-key tables.
 *
 * Served under a strict Content-Security-Policy (no inline script or style). Every value from
 * the request log (model names are whatever a client sent, key names whatever an admin typed)
 * reaches the page as text only: the DOM is built with createElement/textContent, never HTML.
 */
"use strict";

const hours = Number(new URLSearchParams(location.search).get("hours") || 24);

/** createElement with a class and text/children; never parses HTML. */
function el(tag, className, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

async function load() {
  const key = sessionStorage.getItem("chatgate-master-key");
  const headers = key ? { Authorization: "Bearer " + key } : {};
  const response = await fetch("/admin/dashboard?hours=" + hours, { headers });
  if (response.status === 401 || response.status === 403) {
    const entered = prompt("chatgate master key");
    if (entered) {
      sessionStorage.setItem("chatgate-master-key", entered);
      return load();
    }
    throw new Error("not authorised");
  }
  return response.json();
}

function cards(t) {
  const items = [
    ["requests", t.requests],
    ["errors", t.errors],
    ["tokens", t.tokens],
    ["cost", t.cost.toFixed(4)],
    ["p50 latency", t.p50_ms.toFixed(1) + " ms"],
    ["p95 latency", t.p95_ms.toFixed(1) + " ms"],
  ];
  document.getElementById("cards").replaceChildren(
    ...items.map(([label, value]) => el("div", "card", label, el("b", null, value))),
  );
}

function chart(id, title, s, names, colors) {
  const node = document.getElementById(id);
  const series = [{}].concat(names.map((n, i) => ({ label: n, stroke: colors[i], width: 2 })));
  const data = [s.time].concat(names.map((n) => s[n]));
  new uPlot({ title, width: node.clientWidth - 16, height: 220, series }, data, node);
}

function table(id, rows, first) {
  const head = [first, "requests", "errors", "tokens", "cost", "p50 ms", "p95 ms"];
  const header = el("tr", null, ...head.map((name) => el("th", null, name)));
  const body = rows.map((r) =>
    el(
      "tr",
      null,
      ...[
        r[first] ?? "",
        r.requests,
        r.errors,
        r.tokens,
        r.cost.toFixed(6),
        r.p50_ms.toFixed(1),
        r.p95_ms.toFixed(1),
      ].map((value) => el("td", null, value)),
    ),
  );
  document.getElementById(id).replaceChildren(header, ...body);
}

load()
  .then((d) => {
    document.getElementById("range").textContent =
      "last " + hours + " h, " + Math.round(d.bucket_seconds) + " s buckets";
    cards(d.totals);
    const s = d.series;
    chart("chart-requests", "Requests", s, ["requests", "errors"], ["#2563eb", "#dc2626"]);
    chart("chart-latency", "Latency (ms)", s, ["p50_ms", "p95_ms"], ["#059669", "#d97706"]);
    chart("chart-tokens", "Tokens", s, ["tokens"], ["#7c3aed"]);
    chart("chart-cost", "Cost", s, ["cost"], ["#0891b2"]);
    chart("chart-cache", "Cache hit rate", s, ["cache_hit_rate"], ["#4b5563"]);
    table("endpoints", d.endpoints, "endpoint");
    table("models", d.models, "model");
    table("keys", d.keys, "key");
    document.body.dataset.ready = "true";
  })
  .catch((e) => {
    document.getElementById("range").textContent = "error: " + e.message;
  });
