/* chatgate playground (/playground): try models against this gateway, compare two variants,
 * see tokens, cost and latency per reply, and copy the request as Python or curl.
 *
 * Runs under the page's strict Content-Security-Policy: no inline code or style, DOM built with
 * createElement/textContent and sanitised fragments only (chat-core.js). Needs the vendored
 * `marked` and `DOMPurify` globals and `chatgateCore` loaded before it.
 */
/* global chatgateCore, marked, DOMPurify */
(() => {
  "use strict";

  const core = chatgateCore(marked, DOMPurify);
  const { h, MarkdownView, ChatError } = core;
  const $ = (id) => document.getElementById(id);

  const KEY_NAME = "chatgate.playground.key";
  const SETTINGS_NAME = "chatgate.playground.settings";
  const CONTEXT = { overflow: "truncate_oldest", clamp_max_tokens: true };
  const embeddingModels = new Set(
    (document.querySelector('meta[name="chatgate-embedding-models"]')?.content || "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
  );

  const state = {
    key: localStorage.getItem(KEY_NAME) || sessionStorage.getItem(KEY_NAME) || "",
    models: [],
    compare: false,
    variants: [],
    controller: null,
    retryUntil: 0,
    retryTimer: null,
    templates: [],
    template: null, // {id, versions, labels}
    stores: [],
  };

  // ------------------------------------------------------------------ helpers
  function authHeaders() {
    return state.key ? { Authorization: `Bearer ${state.key}` } : {};
  }

  async function getJson(path) {
    const response = await fetch(path, { headers: { Accept: "application/json", ...authHeaders() } });
    if (!response.ok) throw await core.errorFromResponse(response);
    return response.json();
  }

  function showPageError(error) {
    const box = $("page-error");
    if (!error) {
      box.hidden = true;
      box.replaceChildren();
      return;
    }
    box.replaceChildren(...errorContent(error));
    box.hidden = false;
  }

  function errorContent(error) {
    if (error instanceof ChatError) {
      const detail = error.message && error.message !== error.summary ? ` ${error.message}` : "";
      return [h("strong", { text: error.summary }), detail];
    }
    return [h("strong", { text: "Something went wrong." }), ` ${error.message || error}`];
  }

  function announce(text) {
    $("announce").textContent = text;
  }

  function formatMs(ms) {
    if (ms === null || ms === undefined) return "—";
    return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
  }

  function formatCost(cost) {
    if (cost === null || cost === undefined) return "—";
    if (cost === 0) return "$0";
    return `$${cost.toLocaleString("en-US", { maximumSignificantDigits: 3, useGrouping: false })}`;
  }

  function numberOrNull(input) {
    const text = input.value.trim();
    if (text === "") return null;
    const value = Number(text);
    return Number.isFinite(value) ? value : null;
  }

  function saveSettings() {
    const saved = state.variants.map((v) => ({
      model: v.model.value,
      system: v.system.value,
      temperature: v.temperature.value,
      maxTokens: v.maxTokens.value,
    }));
    localStorage.setItem(SETTINGS_NAME, JSON.stringify({ variants: saved }));
  }

  function loadSettings() {
    try {
      return JSON.parse(localStorage.getItem(SETTINGS_NAME) || "{}").variants || [];
    } catch {
      return [];
    }
  }

  // ------------------------------------------------------------------ variants (settings + column)
  function makeVariant(index, saved = {}) {
    const name = "AB"[index];
    const id = (field) => `${field}-${index}`;
    const model = h("select", { id: id("model"), class: "model" });
    const system = h("textarea", {
      id: id("system"),
      rows: 3,
      placeholder: "You are a helpful assistant.",
    });
    system.value = saved.system || "";
    const temperature = h("input", {
      id: id("temperature"),
      type: "number",
      min: "0",
      max: "2",
      step: "0.1",
      inputmode: "decimal",
      placeholder: "model default",
    });
    temperature.value = saved.temperature ?? "0.7";
    const maxTokens = h("input", {
      id: id("max-tokens"),
      type: "number",
      min: "1",
      step: "1",
      inputmode: "numeric",
      placeholder: "not sent",
    });
    maxTokens.value = saved.maxTokens ?? "1024";
    const settings = h(
      "fieldset",
      { class: "box variant", "data-variant": name },
      h("legend", { class: "variant-name", text: `Variant ${name}` }),
      h("label", { for: id("model"), text: "Model" }),
      model,
      h("label", { for: id("system"), text: "System prompt" }),
      system,
      h(
        "div",
        { class: "row" },
        h("div", {}, h("label", { for: id("temperature"), text: "Temperature" }), temperature),
        h("div", {}, h("label", { for: id("max-tokens"), text: "Max tokens" }), maxTokens),
      ),
    );
    const log = h("div", { class: "log", "aria-label": `Conversation ${name}` });
    const empty = h("p", { class: "empty muted", text: "Send a message to start." });
    log.append(empty);
    const column = h(
      "section",
      { class: "column", "data-variant": name, "aria-label": `Variant ${name}` },
      h("h2", { class: "column-title" }, h("span", { class: "variant-name", text: name }), h("span", { class: "column-model" })),
      log,
    );
    const variant = { index, name, model, system, temperature, maxTokens, settings, column, log, empty, messages: [], saved };
    for (const input of [model, system, temperature, maxTokens]) {
      input.addEventListener("change", () => {
        updateColumnTitle(variant);
        saveSettings();
      });
    }
    return variant;
  }

  function updateColumnTitle(variant) {
    variant.column.querySelector(".column-model").textContent = variant.model.value || "";
  }

  function fillModels(variant) {
    const wanted = variant.model.value || variant.saved.model;
    variant.model.replaceChildren(...state.models.map((m) => h("option", { value: m, text: m })));
    const fallback = state.models[Math.min(variant.index, state.models.length - 1)] || "";
    variant.model.value = state.models.includes(wanted) ? wanted : fallback;
    variant.model.disabled = !state.models.length;
    updateColumnTitle(variant);
  }

  function setCompare(on) {
    state.compare = on;
    $("compare-toggle").setAttribute("aria-pressed", String(on));
    document.body.classList.toggle("comparing", on);
    if (on && state.variants.length < 2) {
      const b = makeVariant(1, loadSettings()[1] || {});
      state.variants.push(b);
      $("variants").append(b.settings);
      $("columns").append(b.column);
      fillModels(b);
      // B starts from A's conversation so far.
      for (const m of state.variants[0].messages) {
        if (m.role === "user" && m.sendable) addUserMessage(b, m.content);
        else if (m.role === "assistant" && m.sendable) addAssistantCopy(b, m);
      }
    }
    if (state.variants[1]) {
      state.variants[1].settings.hidden = !on;
      state.variants[1].column.hidden = !on;
    }
    $("code-variant").hidden = !on;
    $("code-variant-label").hidden = !on;
    if (!on) $("code-variant").value = "0";
  }

  function activeVariants() {
    return state.compare ? state.variants : state.variants.slice(0, 1);
  }

  // ------------------------------------------------------------------ messages
  function addUserMessage(variant, text) {
    variant.empty.remove();
    const el = h(
      "article",
      { class: "msg user" },
      h("header", { class: "msg-role", text: "You" }),
      h("div", { class: "msg-body plain", text }),
    );
    variant.log.append(el);
    const message = { role: "user", content: text, el, sendable: true };
    variant.messages.push(message);
    scrollDown(variant);
    return message;
  }

  function assistantShell(variant, model) {
    const body = h("div", { class: "msg-body md" });
    const status = h("p", { class: "msg-status" });
    const stats = h("p", { class: "stats" });
    const el = h(
      "article",
      { class: "msg assistant", "aria-busy": "true" },
      h("header", { class: "msg-role", text: model }),
      body,
      status,
      stats,
    );
    variant.log.append(el);
    return { el, body, status, stats };
  }

  function addAssistantCopy(variant, original) {
    const shell = assistantShell(variant, original.el.querySelector(".msg-role").textContent);
    const view = new MarkdownView(shell.body);
    view.push(original.content);
    view.end();
    shell.el.removeAttribute("aria-busy");
    variant.messages.push({ role: "assistant", content: original.content, el: shell.el, sendable: true });
  }

  function scrollDown(variant) {
    const log = variant.log;
    if (log.scrollHeight - log.scrollTop - log.clientHeight < 120) log.scrollTop = log.scrollHeight;
  }

  function statsContent(result) {
    const usage = result.usage || {};
    const parts = [
      ["tokens", usage.prompt_tokens !== undefined ? `${usage.prompt_tokens} in · ${usage.completion_tokens} out` : "tokens —", "Prompt and completion tokens"],
      ["cost", formatCost(result.cost), "Cost"],
      ["ttft", `first token ${formatMs(result.ttftMs)}`, "Time to first token"],
      ["total", `total ${formatMs(result.totalMs)}`, "Total latency"],
      ["id", result.requestId || "", "Request id"],
    ];
    return parts
      .filter(([, text]) => text)
      .map(([name, text, title]) => h("span", { class: `stat stat-${name}`, title, text }));
  }

  // ------------------------------------------------------------------ the request
  function templateRequest() {
    const id = $("template").value;
    if (!id || !state.template) return null;
    const prompt = { id };
    const label = $("template-label").value;
    if (label.startsWith("v")) prompt.version = Number(label.slice(1));
    else if (label) prompt.label = label;
    const variables = {};
    for (const input of $("template-vars").querySelectorAll("[data-var]")) {
      const name = input.dataset.var;
      const kind = input.dataset.kind;
      if (kind === "boolean") {
        variables[name] = input.checked;
        continue;
      }
      const text = input.value.trim();
      if (text === "") continue;
      if (kind === "number" || kind === "integer") variables[name] = Number(text);
      else if (kind === "array") variables[name] = text.split(",").map((s) => s.trim()).filter(Boolean);
      else variables[name] = input.value;
    }
    if (Object.keys(variables).length) prompt.variables = variables;
    return prompt;
  }

  /** The chat request of a variant for its history plus `pending` (a user message not yet sent). */
  function requestBody(variant, pending) {
    const messages = [];
    if (variant.system.value.trim()) messages.push({ role: "system", content: variant.system.value });
    for (const m of variant.messages) if (m.sendable) messages.push({ role: m.role, content: m.content });
    if (pending) messages.push({ role: "user", content: pending });
    const body = { model: variant.model.value, messages };
    const temperature = numberOrNull(variant.temperature);
    if (temperature !== null) body.temperature = temperature;
    const maxTokens = numberOrNull(variant.maxTokens);
    if (maxTokens !== null) body.max_tokens = Math.round(maxTokens);
    body.context = { ...CONTEXT };
    const prompt = templateRequest();
    if (prompt) body.prompt = prompt;
    const store = $("knowledge").value;
    if (store) body.knowledge = { vector_store_ids: [store] };
    return body;
  }

  function markDropped(variant, sent, dropped) {
    for (const m of variant.messages) {
      m.el.classList.remove("dropped");
      m.el.querySelector(".msg-note")?.remove();
    }
    let left = dropped;
    for (const m of sent) {
      if (left <= 0) break;
      left -= 1;
      m.el.classList.add("dropped");
      m.el.append(h("p", { class: "msg-note", text: "not sent: outside the model's context window" }));
    }
  }

  async function runVariant(variant, text, signal) {
    const sent = variant.messages.filter((m) => m.sendable);
    const body = requestBody(variant, text);
    const user = addUserMessage(variant, text);
    sent.push(user);
    const shell = assistantShell(variant, body.model);
    const view = new MarkdownView(shell.body);
    let partial = "";
    const reply = { role: "assistant", content: "", el: shell.el, sendable: false };
    variant.messages.push(reply);
    try {
      const result = await core.streamChat({
        url: "/v1/chat/completions",
        headers: authHeaders(),
        body,
        signal,
        onResponse: (response) => {
          const dropped = Number(response.headers.get("x-chatgate-context-dropped-messages") || 0);
          markDropped(variant, sent, dropped);
        },
        onDelta: (delta) => {
          partial += delta;
          view.push(delta);
          scrollDown(variant);
        },
      });
      view.end();
      reply.content = result.text;
      reply.sendable = true;
      if (result.model) shell.el.querySelector(".msg-role").textContent = result.model;
      if (result.citations && result.citations.length) shell.el.insertBefore(citationList(result.citations), shell.status);
      if (result.finishReason === "length") shell.status.textContent = "cut off: max tokens reached";
      shell.stats.replaceChildren(...statsContent(result));
      announce(`Variant ${variant.name} replied: ${result.text.slice(0, 200)}`);
    } catch (error) {
      view.end();
      if (error.name === "AbortError") {
        reply.content = partial;
        reply.sendable = partial.length > 0;
        shell.el.classList.add("stopped");
        shell.status.textContent = "stopped";
        announce(`Variant ${variant.name} stopped.`);
      } else {
        const partialText = error.partial?.text || partial;
        reply.content = partialText;
        reply.sendable = partialText.length > 0;
        user.sendable = reply.sendable;
        if (!user.sendable) user.el.classList.add("failed");
        shell.el.classList.add("failed");
        const alert = h("div", { class: "error", role: "alert" }, ...errorContent(error));
        if (error instanceof ChatError && error.status === 429 && error.retryAfterMs) {
          alert.append(" ", h("span", { class: "countdown" }));
          startCountdown(error.retryAfterMs);
        }
        shell.el.insertBefore(alert, shell.status);
        if (!reply.sendable) shell.body.remove();
        return false;
      }
    } finally {
      shell.el.removeAttribute("aria-busy");
      scrollDown(variant);
    }
    return true;
  }

  function citationList(citations) {
    return h(
      "ol",
      { class: "citations", "aria-label": "Sources" },
      citations.map((c) =>
        h(
          "li",
          { value: c.index, title: (c.text || "").slice(0, 300) },
          h("span", { class: "citation-file", text: c.filename || c.file_id }),
          h("span", { class: "muted", text: ` · chunk ${c.chunk_index} · score ${Number(c.score).toFixed(2)}` }),
        ),
      ),
    );
  }

  // ------------------------------------------------------------------ send / stop / 429
  function busy(on) {
    $("stop").disabled = !on;
    document.body.classList.toggle("streaming", on);
    updateSend();
  }

  function updateSend() {
    const waiting = Date.now() < state.retryUntil;
    $("send").disabled = Boolean(state.controller) || waiting || !state.models.length;
  }

  function startCountdown(ms) {
    state.retryUntil = Math.max(state.retryUntil, Date.now() + ms);
    const tick = () => {
      const left = Math.max(0, Math.ceil((state.retryUntil - Date.now()) / 1000));
      for (const el of document.querySelectorAll(".countdown")) {
        el.textContent = left > 0 ? `Try again in ${left} s.` : "You can try again now.";
      }
      if (left <= 0) {
        clearInterval(state.retryTimer);
        state.retryTimer = null;
        for (const el of document.querySelectorAll(".countdown")) el.classList.remove("countdown");
      }
      updateSend();
    };
    if (state.retryTimer) clearInterval(state.retryTimer);
    state.retryTimer = setInterval(tick, 250);
    tick();
  }

  async function send() {
    const input = $("input");
    const text = input.value.trim();
    if (!text || state.controller || Date.now() < state.retryUntil || !state.models.length) return;
    input.value = "";
    showPageError(null);
    const controller = new AbortController();
    state.controller = controller;
    busy(true);
    try {
      const outcomes = await Promise.all(activeVariants().map((v) => runVariant(v, text, controller.signal)));
      if (!outcomes.some(Boolean) && !input.value) input.value = text; // nothing got through: keep it
    } finally {
      state.controller = null;
      busy(false);
    }
  }

  function stop() {
    state.controller?.abort();
  }

  function newChat() {
    stop();
    for (const v of state.variants) {
      v.messages = [];
      v.log.replaceChildren(v.empty);
    }
    $("input").focus();
  }

  // ------------------------------------------------------------------ view code
  function pythonLiteral(value, indent = 0) {
    const pad = "    ".repeat(indent + 1);
    const end = "    ".repeat(indent);
    if (value === null || value === undefined) return "None";
    if (value === true) return "True";
    if (value === false) return "False";
    if (typeof value === "number") return String(value);
    if (typeof value === "string") return JSON.stringify(value);
    if (Array.isArray(value)) {
      if (!value.length) return "[]";
      return `[\n${value.map((v) => `${pad}${pythonLiteral(v, indent + 1)},`).join("\n")}\n${end}]`;
    }
    const entries = Object.entries(value);
    if (!entries.length) return "{}";
    const flat = entries.every(([, v]) => v === null || typeof v !== "object");
    if (flat) {
      const line = `{${entries.map(([k, v]) => `${JSON.stringify(k)}: ${pythonLiteral(v)}`).join(", ")}}`;
      if (line.length + indent * 4 < 90) return line;
    }
    return `{\n${entries.map(([k, v]) => `${pad}${JSON.stringify(k)}: ${pythonLiteral(v, indent + 1)},`).join("\n")}\n${end}}`;
  }

  const OPENAI_PARAMETERS = new Set(["model", "messages", "temperature", "max_tokens"]);

  function pythonCode(body) {
    const args = [];
    const extra = {};
    for (const [name, value] of Object.entries(body)) {
      if (OPENAI_PARAMETERS.has(name)) args.push(`    ${name}=${pythonLiteral(value, 1)},`);
      else extra[name] = value;
    }
    args.push("    stream=True,", '    stream_options={"include_usage": True},');
    if (Object.keys(extra).length) args.push(`    extra_body=${pythonLiteral(extra, 1)},  # chatgate's extensions`);
    return [
      "import os",
      "",
      "from openai import OpenAI",
      "",
      `client = OpenAI(base_url=${JSON.stringify(`${location.origin}/v1`)}, api_key=os.environ["CHATGATE_API_KEY"])`,
      "",
      "stream = client.chat.completions.create(",
      ...args,
      ")",
      "for chunk in stream:",
      "    if chunk.choices and chunk.choices[0].delta.content:",
      '        print(chunk.choices[0].delta.content, end="", flush=True)',
      "    if chunk.usage:",
      '        print("\\n", chunk.usage)',
      "",
    ].join("\n");
  }

  const shellQuote = (text) => `'${text.replaceAll("'", "'\\''")}'`;

  function curlCode(body) {
    const full = { ...body, stream: true, stream_options: { include_usage: true } };
    return [
      `curl -N ${shellQuote(`${location.origin}/v1/chat/completions`)} \\`,
      '  -H "Authorization: Bearer $CHATGATE_API_KEY" \\',
      "  -H 'Content-Type: application/json' \\",
      `  -d ${shellQuote(JSON.stringify(full, null, 2))}`,
      "",
    ].join("\n");
  }

  function currentCodeBody() {
    const variant = state.variants[Number($("code-variant").value)] || state.variants[0];
    const text = $("input").value.trim();
    const hasUser = variant.messages.some((m) => m.sendable && m.role === "user");
    return requestBody(variant, text || (hasUser ? "" : "Hello!"));
  }

  function renderCode() {
    const python = $("tab-python").getAttribute("aria-selected") === "true";
    const body = currentCodeBody();
    $("code").textContent = python ? pythonCode(body) : curlCode(body);
    $("code").dataset.language = python ? "python" : "curl";
  }

  function selectTab(python) {
    $("tab-python").setAttribute("aria-selected", String(python));
    $("tab-curl").setAttribute("aria-selected", String(!python));
    renderCode();
  }

  async function copyCode() {
    const text = $("code").textContent;
    const button = $("code-copy");
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch {
      // No clipboard permission (plain http, some browsers): select it for Ctrl+C instead.
      const range = document.createRange();
      range.selectNodeContents($("code"));
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      button.textContent = "Selected: press Ctrl+C";
    }
    setTimeout(() => (button.textContent = "Copy"), 2000);
  }

  // ------------------------------------------------------------------ credentials, models, extras
  function showKeyForm(message) {
    $("key-form").hidden = false;
    if (message) $("key-help").textContent = message;
    $("api-key").focus();
  }

  async function loadModels() {
    try {
      const listed = await getJson("/v1/models");
      state.models = listed.data.map((m) => m.id).filter((id) => !embeddingModels.has(id));
      $("key-form").hidden = true;
      $("key-status").hidden = !state.key;
      showPageError(state.models.length ? null : new Error("No chat model is available to this credential."));
    } catch (error) {
      state.models = [];
      if (error instanceof ChatError && (error.status === 401 || error.code === "token_expired")) {
        if (state.key) {
          forgetKey(false);
          showKeyForm(`That key was refused: ${error.message}`);
        } else showKeyForm();
      } else showPageError(error);
    }
    for (const v of state.variants) fillModels(v);
    updateSend();
    if (state.models.length) await Promise.all([loadTemplates(), loadStores()]);
  }

  function forgetKey(reload = true) {
    state.key = "";
    sessionStorage.removeItem(KEY_NAME);
    localStorage.removeItem(KEY_NAME);
    $("key-status").hidden = true;
    if (reload) loadModels();
  }

  async function loadTemplates() {
    try {
      state.templates = (await getJson("/admin/prompts")).data || [];
    } catch {
      state.templates = []; // not listed for this credential (admin only): hidden
    }
    const select = $("template");
    const current = select.value;
    select.replaceChildren(h("option", { value: "", text: "(none)" }), ...state.templates.map((t) => h("option", { value: t.id, text: t.id })));
    select.value = state.templates.some((t) => t.id === current) ? current : "";
    $("template-box").hidden = !state.templates.length;
  }

  async function chooseTemplate() {
    const id = $("template").value;
    const vars = $("template-vars");
    const labelSelect = $("template-label");
    state.template = null;
    vars.replaceChildren();
    labelSelect.hidden = labelSelect.labels[0].hidden = true;
    if (!id) return;
    try {
      const prompt = await getJson(`/admin/prompts/${encodeURIComponent(id)}`);
      state.template = prompt;
      const labels = Object.keys(prompt.labels || {});
      const versions = prompt.versions.map((v) => v.version).sort((a, b) => b - a);
      const options = [
        ...labels.map((l) => h("option", { value: l, text: `${l} (v${prompt.labels[l]})` })),
        ...versions.map((n) => h("option", { value: `v${n}`, text: `version ${n}` })),
      ];
      labelSelect.replaceChildren(...options);
      labelSelect.value = labels.includes("production") ? "production" : labels.includes("latest") ? "latest" : `v${versions[0]}`;
      labelSelect.hidden = labelSelect.labels[0].hidden = false;
      renderTemplateVariables();
    } catch (error) {
      showPageError(error);
    }
  }

  function renderTemplateVariables() {
    const prompt = state.template;
    const vars = $("template-vars");
    vars.replaceChildren();
    if (!prompt) return;
    const choice = $("template-label").value;
    const number = choice.startsWith("v") ? Number(choice.slice(1)) : prompt.labels[choice];
    const version = prompt.versions.find((v) => v.version === number) || prompt.versions.at(-1);
    const schema = version.definition.variables || {};
    const required = new Set(schema.required || []);
    if (version.definition.description) vars.append(h("p", { class: "muted small", text: version.definition.description }));
    for (const [name, spec] of Object.entries(schema.properties || {})) {
      const id = `var-${name}`;
      const kind = spec.type || "string";
      let input;
      if (Array.isArray(spec.enum)) {
        input = h("select", { id }, required.has(name) ? [] : h("option", { value: "", text: "(default)" }), spec.enum.map((v) => h("option", { value: String(v), text: String(v) })));
        if (spec.default !== undefined) input.value = String(spec.default);
      } else if (kind === "boolean") {
        input = h("input", { id, type: "checkbox" });
        input.checked = Boolean(spec.default);
      } else {
        input = h("input", {
          id,
          type: kind === "number" || kind === "integer" ? "number" : "text",
          placeholder: kind === "array" ? "comma, separated" : spec.default !== undefined ? `default: ${spec.default}` : "",
          required: required.has(name),
        });
      }
      input.dataset.var = name;
      input.dataset.kind = kind;
      vars.append(h("label", { for: id, text: `${name}${required.has(name) ? " *" : ""}` }), input);
    }
  }

  async function loadStores() {
    try {
      state.stores = (await getJson("/v1/vector_stores?limit=100")).data || [];
    } catch {
      state.stores = [];
    }
    const select = $("knowledge");
    const current = select.value;
    select.replaceChildren(
      h("option", { value: "", text: "(none)" }),
      ...state.stores.map((s) => h("option", { value: s.id, text: s.name ? `${s.name} (${s.file_counts?.completed ?? 0} files)` : s.id })),
    );
    select.value = state.stores.some((s) => s.id === current) ? current : "";
    $("knowledge-box").hidden = !state.stores.length;
  }

  // ------------------------------------------------------------------ wiring
  function init() {
    const saved = loadSettings();
    const a = makeVariant(0, saved[0] || {});
    state.variants.push(a);
    $("variants").append(a.settings);
    $("columns").append(a.column);

    $("composer").addEventListener("submit", (event) => {
      event.preventDefault();
      send();
    });
    $("input").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        send();
      }
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && state.controller) {
        event.preventDefault();
        stop();
      }
    });
    $("stop").addEventListener("click", stop);
    $("new-chat").addEventListener("click", newChat);
    $("compare-toggle").addEventListener("click", () => setCompare(!state.compare));

    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("api-key").value.trim();
      if (!key) return;
      state.key = key;
      sessionStorage.setItem(KEY_NAME, key);
      if ($("remember-key").checked) localStorage.setItem(KEY_NAME, key);
      else localStorage.removeItem(KEY_NAME);
      $("api-key").value = "";
      loadModels();
    });
    $("forget-key").addEventListener("click", () => forgetKey());

    $("template").addEventListener("change", chooseTemplate);
    $("template-label").addEventListener("change", renderTemplateVariables);

    const dialog = $("code-dialog");
    $("view-code").addEventListener("click", () => {
      renderCode();
      dialog.showModal();
    });
    $("code-close").addEventListener("click", () => dialog.close());
    $("tab-python").addEventListener("click", () => selectTab(true));
    $("tab-curl").addEventListener("click", () => selectTab(false));
    $("code-variant").addEventListener("change", renderCode);
    $("code-copy").addEventListener("click", copyCode);
    dialog.addEventListener("keydown", (event) => {
      if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
      if (!event.target.matches('[role="tab"]')) return;
      const python = $("tab-python").getAttribute("aria-selected") !== "true";
      selectTab(python);
      $(python ? "tab-python" : "tab-curl").focus();
    });

    updateSend();
    loadModels().finally(() => {
      document.body.dataset.ready = "true";
    });
  }

  init();
})();
