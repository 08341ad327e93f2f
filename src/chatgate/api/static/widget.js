/* chatgate chat widget: a chat bubble for any web page.
 *
 *   <script src="https://gateway.example/widget.js" data-token-endpoint="/chat/token" async></script>
 *
 * Runs inside the /widget.js bundle (pages.py), where `core` (chat-core.js) is in scope and
 * nothing is global. Each script tag mounts one <chatgate-chat> element with an open shadow root:
 * styles come from a constructable stylesheet (no <style>, no style attributes, no inline
 * handlers), so it works under a strict Content-Security-Policy and neither page nor widget styles
 * leak across. It authenticates only with short-lived browser tokens from the host's own backend.
 */

const SCRIPT = document.currentScript; // only defined while this classic script first runs
const MAX_STORED = 50; // messages kept in localStorage
const TOKEN_MARGIN_S = 30; // fetch a new token this long before the old one expires…
const TOKEN_MARGIN_SHARE = 0.25; // …or a quarter of its lifetime, if that is shorter
// Long conversations fit the model: the gateway drops the oldest turns and lowers max_tokens.
const CONTEXT = { overflow: "truncate_oldest", clamp_max_tokens: true };

const CSS = `
:host { all: initial; }
.root {
  all: initial;
  position: fixed;
  z-index: var(--chatgate-z-index, 2147483000);
  bottom: calc(var(--chatgate-offset, 20px) + var(--cg-stack, 0) * 68px);
  right: var(--chatgate-offset, 20px);
  display: flex;
  flex-direction: column;
  align-items: flex-end;
  gap: 12px;
  font-family: var(--chatgate-font, system-ui, -apple-system, "Segoe UI", Roboto, sans-serif);
  font-size: var(--chatgate-font-size, 15px);
  line-height: 1.45;
  color: var(--chatgate-fg, #1f2328);
  text-align: left;
}
.root.left { right: auto; left: var(--chatgate-offset, 20px); align-items: flex-start; }
*, *::before, *::after { box-sizing: border-box; }
[hidden] { display: none !important; }
button {
  font: inherit;
  color: inherit;
  margin: 0;
  cursor: pointer;
  border: 0;
  background: transparent;
}
button:focus-visible, textarea:focus-visible, .log:focus-visible {
  outline: 2px solid var(--chatgate-accent, #2f6feb);
  outline-offset: 2px;
}
button:disabled { cursor: not-allowed; opacity: 0.55; }
.launcher {
  width: 56px;
  height: 56px;
  border-radius: 50%;
  display: grid;
  place-items: center;
  background: var(--chatgate-accent, #2f6feb);
  color: var(--chatgate-accent-fg, #ffffff);
  box-shadow: 0 4px 14px rgb(0 0 0 / 0.25);
}
.launcher svg { width: 28px; height: 28px; fill: currentColor; }
.launcher[aria-expanded="true"] .icon-open, .launcher[aria-expanded="false"] .icon-close { display: none; }
.panel {
  width: min(var(--chatgate-width, 380px), calc(100vw - 2 * var(--chatgate-offset, 20px)));
  height: min(var(--chatgate-height, 560px), calc(100vh - 2 * var(--chatgate-offset, 20px) - 80px - var(--cg-stack, 0) * 68px));
  display: flex;
  flex-direction: column;
  background: var(--chatgate-bg, #ffffff);
  color: var(--chatgate-fg, #1f2328);
  border-radius: var(--chatgate-radius, 14px);
  box-shadow: 0 10px 40px rgb(0 0 0 / 0.25);
  overflow: hidden;
}
.header {
  display: flex;
  align-items: center;
  gap: 6px;
  padding: 10px 10px 10px 16px;
  background: var(--chatgate-accent, #2f6feb);
  color: var(--chatgate-accent-fg, #ffffff);
}
.title { flex: 1; margin: 0; font-size: 1.05em; font-weight: 600; }
.header button { padding: 4px 8px; border-radius: 6px; font-size: 0.85em; }
.header button:hover { background: rgb(255 255 255 / 0.18); }
.header .close { font-size: 1.3em; line-height: 1; }
.log {
  flex: 1;
  overflow-y: auto;
  padding: 14px;
  display: flex;
  flex-direction: column;
  gap: 10px;
}
.msg {
  max-width: 88%;
  padding: 8px 12px;
  border-radius: var(--chatgate-radius, 14px);
  overflow-wrap: anywhere;
}
.msg.user {
  align-self: flex-end;
  white-space: pre-wrap;
  background: var(--chatgate-accent, #2f6feb);
  color: var(--chatgate-accent-fg, #ffffff);
}
.msg.assistant { align-self: flex-start; background: var(--chatgate-surface, #f1f3f5); }
.msg.streaming .body:empty::after { content: "…"; }
.msg .note { display: block; margin-top: 4px; font-size: 0.8em; opacity: 0.7; }
.body > :first-child, .md-live > :first-child { margin-top: 0; }
.body > :last-child, .md-live > :last-child { margin-bottom: 0; }
p, ul, ol, pre, blockquote, table { margin: 0 0 0.6em; }
ul, ol { padding-left: 1.3em; }
h1, h2, h3, h4, h5, h6 { margin: 0.6em 0 0.4em; font-size: 1.05em; }
a { color: var(--chatgate-link, var(--chatgate-accent, #2f6feb)); }
code { font-family: var(--chatgate-mono, ui-monospace, SFMono-Regular, Menlo, Consolas, monospace); font-size: 0.9em; }
pre { padding: 8px 10px; overflow-x: auto; border-radius: 8px; background: rgb(0 0 0 / 0.06); }
blockquote { padding-left: 10px; border-left: 3px solid rgb(0 0 0 / 0.2); }
table { border-collapse: collapse; }
th, td { padding: 2px 6px; border: 1px solid rgb(0 0 0 / 0.15); }
.alert:empty { display: none; }
.alert {
  margin: 0 14px 8px;
  padding: 8px 12px;
  border-radius: 8px;
  background: var(--chatgate-error-bg, #fdecea);
  color: var(--chatgate-error-fg, #8a1c12);
  font-size: 0.9em;
}
.alert .detail { display: block; font-size: 0.85em; opacity: 0.8; }
.alert .countdown { font-weight: 600; }
.alert .bar {
  display: block;
  height: 3px;
  margin-top: 6px;
  background: currentColor;
  transform-origin: left;
  transform: scaleX(var(--cg-progress, 1));
}
.composer {
  display: flex;
  gap: 8px;
  align-items: flex-end;
  padding: 10px;
  border-top: 1px solid rgb(0 0 0 / 0.1);
}
textarea {
  flex: 1;
  min-height: 40px;
  max-height: 140px;
  field-sizing: content;
  resize: none;
  margin: 0;
  padding: 9px 10px;
  font: inherit;
  color: inherit;
  background: var(--chatgate-bg, #ffffff);
  border: 1px solid rgb(0 0 0 / 0.25);
  border-radius: 10px;
}
.send, .stop {
  padding: 9px 14px;
  border-radius: 10px;
  background: var(--chatgate-accent, #2f6feb);
  color: var(--chatgate-accent-fg, #ffffff);
  font-weight: 600;
}
.stop { background: var(--chatgate-stop, #57606a); }
.sr {
  position: absolute;
  width: 1px;
  height: 1px;
  margin: -1px;
  padding: 0;
  overflow: hidden;
  clip-path: inset(50%);
  white-space: nowrap;
  border: 0;
}
@media (prefers-reduced-motion: no-preference) {
  .launcher { transition: transform 0.15s ease; }
  .launcher:hover { transform: scale(1.06); }
}
`;

let sharedSheet = null;
function styleSheet() {
  if (!sharedSheet) {
    sharedSheet = new CSSStyleSheet();
    sharedSheet.replaceSync(CSS);
  }
  return sharedSheet;
}

function icon(className, path) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.setAttribute("class", className);
  const shape = document.createElementNS(ns, "path");
  shape.setAttribute("d", path);
  svg.append(shape);
  return svg;
}

/** The widget's settings, from its own script tag's data-* attributes. */
function readConfig(script) {
  const data = script.dataset;
  if (!data.tokenEndpoint) {
    console.error("chatgate widget: data-token-endpoint is required (your backend's URL that mints a token)");
    return null;
  }
  const gateway = (data.gateway ? new URL(data.gateway, document.baseURI).href : new URL(script.src).origin).replace(/\/+$/, "");
  const tokenEndpoint = new URL(data.tokenEndpoint, document.baseURI).href;
  const model = data.model || "";
  const history = Number.parseInt(data.history || "", 10);
  return {
    tokenEndpoint,
    gateway,
    model,
    title: data.title || "Chat",
    greeting: data.greeting || "",
    placeholder: data.placeholder || "Type a message…",
    position: data.position === "left" ? "left" : "right",
    open: data.open !== undefined && data.open !== "false",
    history: Number.isFinite(history) && history > 0 ? history : 20,
    storageKey: `chatgate-widget:${gateway}|${model}|${tokenEndpoint}`,
  };
}

/** The gateway's or the token endpoint's failure, in words for the person chatting. */
function explain(error) {
  if (error.code === "token_expired") return "Your chat session has expired. Reload the page to continue.";
  if (error.tokenEndpoint) return "Chat is unavailable right now.";
  if (error.status === 0) return "Cannot reach the chat service. Check your connection and try again.";
  if (error.status === 401 || error.status === 403 || error.status === 404) return "Chat is unavailable right now.";
  if (error.status === 429 && error.type === "insufficient_quota") return "Chat is unavailable right now.";
  if (error.status === 429) return "Too many messages right now.";
  if (error.code === "context_length_exceeded") return "This conversation is too long. Start a new conversation to continue.";
  if (error.status >= 500) return "Something went wrong while answering. Please try again.";
  return "Your message could not be sent.";
}

function tokenFailure(detail) {
  const error = new core.ChatError(detail, { status: 0 });
  error.tokenEndpoint = true;
  return error;
}

class ChatWidget {
  constructor(config) {
    this.config = config;
    this.messages = this.load();
    this.token = null; // {value, expiresAt, staleAt, models}
    this.tokenRequest = null;
    this.model = config.model;
    this.controller = null;
    this.retryTimer = null;
    this.stick = true;
    this.conversation = 0; // bumped by "New conversation": late replies of the old one are dropped
    this.build();
    this.restore();
    if (config.open) this.setOpen(true, false);
  }

  // ------------------------------------------------------------------ DOM
  build() {
    const { h } = core;
    const c = this.config;
    const same = [...document.querySelectorAll("chatgate-chat")].filter((el) => el.getAttribute("data-position") === c.position);
    this.host = document.createElement("chatgate-chat");
    this.host.setAttribute("data-position", c.position);
    const shadow = this.host.attachShadow({ mode: "open" });
    shadow.adoptedStyleSheets = [styleSheet()];

    this.launcher = h(
      "button",
      {
        type: "button",
        class: "launcher",
        "aria-label": c.title,
        "aria-expanded": "false",
        "aria-controls": "panel",
        onclick: () => this.setOpen(this.panel.hidden, true),
      },
      icon("icon-open", "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z"),
      icon("icon-close", "M18.3 5.7 12 12l6.3 6.3-1.4 1.4L10.6 13.4 4.3 19.7 2.9 18.3 9.2 12 2.9 5.7 4.3 4.3l6.3 6.3 6.3-6.3z"),
    );
    this.log = h("div", {
      class: "log",
      role: "log",
      "aria-live": "off", // tokens are not announced; the .announce region gets whole replies
      "aria-label": "Conversation",
      tabindex: "0",
    });
    this.log.addEventListener("scroll", () => {
      this.stick = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 40;
    });
    this.alert = h("div", { class: "alert", role: "alert" });
    this.input = h("textarea", {
      id: "input",
      rows: "1",
      placeholder: c.placeholder,
      autocomplete: "off",
      "aria-describedby": "hint",
      onkeydown: (event) => this.onKey(event),
    });
    this.sendButton = h("button", { type: "button", class: "send", onclick: () => this.send() }, "Send");
    this.stopButton = h("button", { type: "button", class: "stop", hidden: true, onclick: () => this.stop() }, "Stop");
    this.announce = h("div", { class: "sr announce", "aria-live": "polite", "aria-atomic": "true" });
    this.panel = h(
      "section",
      { id: "panel", class: "panel", role: "dialog", "aria-labelledby": "title", hidden: true },
      h(
        "div",
        { class: "header" },
        h("h2", { id: "title", class: "title", text: c.title }),
        h("button", { type: "button", class: "new", onclick: () => this.clear() }, "New conversation"),
        h("button", { type: "button", class: "close", "aria-label": "Close chat", onclick: () => this.setOpen(false, true) }, "×"),
      ),
      this.log,
      this.alert,
      h(
        "div",
        { class: "composer" },
        h("label", { class: "sr", for: "input", text: "Message" }),
        h("span", { id: "hint", class: "sr", text: "Enter sends, Shift+Enter starts a new line, Escape closes." }),
        this.input,
        this.sendButton,
        this.stopButton,
      ),
    );
    this.panel.addEventListener("keydown", (event) => {
      if (event.key !== "Escape") return;
      event.preventDefault();
      if (this.controller) this.stop();
      else this.setOpen(false, true);
    });
    this.root = h("div", { class: `root ${c.position}` }, this.panel, this.launcher, this.announce);
    this.root.style.setProperty("--cg-stack", String(same.length)); // several widgets: stacked
    shadow.append(this.root);
    document.body.append(this.host);
  }

  setOpen(open, moveFocus) {
    this.panel.hidden = !open;
    this.launcher.setAttribute("aria-expanded", String(open));
    if (open) {
      this.scrollToEnd(true);
      if (moveFocus) this.input.focus();
    } else if (moveFocus) {
      this.launcher.focus();
    }
  }

  onKey(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.send();
    }
  }

  scrollToEnd(force) {
    if (force) this.stick = true;
    requestAnimationFrame(() => {
      if (this.stick) this.log.scrollTop = this.log.scrollHeight;
    });
  }

  bubble(role, text) {
    const body = core.h("div", { class: "body" });
    const el = core.h(
      "div",
      { class: `msg ${role}` },
      core.h("span", { class: "sr", text: role === "user" ? "You said: " : "Reply: " }),
      body,
    );
    this.log.append(el);
    let view = null;
    if (role === "user") body.textContent = text;
    else {
      view = new core.MarkdownView(body);
      if (text) {
        view.push(text);
        view.end();
      }
    }
    return { el, body, view };
  }

  restore() {
    this.log.replaceChildren();
    if (this.config.greeting) this.bubble("assistant", this.config.greeting).el.classList.add("greeting");
    for (const message of this.messages) this.bubble(message.role, message.content).el.classList.add("done");
  }

  // ------------------------------------------------------------------ history
  load() {
    try {
      const stored = JSON.parse(localStorage.getItem(this.config.storageKey) || "[]");
      if (!Array.isArray(stored)) return [];
      const valid = stored.filter((m) => m && typeof m.content === "string" && (m.role === "user" || m.role === "assistant"));
      return valid.slice(-MAX_STORED);
    } catch {
      return []; // storage blocked (privacy mode, sandboxed frame) or unreadable: start afresh
    }
  }

  save() {
    this.messages = this.messages.slice(-MAX_STORED);
    try {
      if (this.messages.length) localStorage.setItem(this.config.storageKey, JSON.stringify(this.messages));
      else localStorage.removeItem(this.config.storageKey);
    } catch {
      // storage full or blocked: the conversation still works, it just won't survive a reload
    }
  }

  clear() {
    this.stop();
    this.conversation += 1;
    this.messages = [];
    this.save();
    // A rate-limit countdown outlives the conversation: Send stays disabled until it ends.
    if (!this.retryTimer) this.showError(null);
    this.restore();
    this.input.focus();
  }

  // ------------------------------------------------------------------ tokens
  async getToken(fresh) {
    const now = Date.now() / 1000;
    const cached = this.token;
    if (!fresh && cached && (cached.staleAt === null || now < cached.staleAt)) return cached;
    if (!this.tokenRequest) {
      this.tokenRequest = this.fetchToken().finally(() => {
        this.tokenRequest = null;
      });
    }
    this.token = await this.tokenRequest;
    return this.token;
  }

  async fetchToken() {
    let response;
    try {
      response = await fetch(this.config.tokenEndpoint, {
        method: "POST",
        credentials: "same-origin", // the host's session cookie says who is chatting
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ model: this.config.model || null }),
      });
    } catch (error) {
      throw tokenFailure(`The token endpoint could not be reached (${error.message || error}).`);
    }
    if (!response.ok) throw tokenFailure(`The token endpoint answered HTTP ${response.status}.`);
    let answer;
    try {
      answer = await response.json();
    } catch {
      throw tokenFailure("The token endpoint did not answer JSON.");
    }
    if (!answer || typeof answer.token !== "string") throw tokenFailure("The token endpoint's answer has no `token`.");
    let expiresAt = Number(answer.expires_at);
    expiresAt = Number.isFinite(expiresAt) && expiresAt > 0 ? expiresAt : null;
    // Renewed a little before it expires: 30 s early, but never in the first 3/4 of its life
    // (a token of 20 s is reused for 15 s, not replaced at every message).
    const lifetime = expiresAt === null ? 0 : Math.max(0, expiresAt - Date.now() / 1000);
    return {
      value: answer.token,
      expiresAt,
      staleAt: expiresAt === null ? null : expiresAt - Math.min(TOKEN_MARGIN_S, lifetime * TOKEN_MARGIN_SHARE),
      models: Array.isArray(answer.models) ? answer.models : [],
    };
  }

  /** data-model, else the token's first model (not a pattern), else the gateway's first. */
  async resolveModel(token) {
    if (this.model) return this.model;
    const named = token.models.find((m) => typeof m === "string" && !/[*?[]/.test(m));
    if (named) return (this.model = named);
    const response = await fetch(`${this.config.gateway}/v1/models`, { headers: { Authorization: `Bearer ${token.value}` } });
    if (!response.ok) throw await core.errorFromResponse(response);
    const models = (await response.json()).data || [];
    if (!models.length) throw tokenFailure("No model is available to this token.");
    return (this.model = models[0].id);
  }

  /** Calls `call(token, model)`; a refused token (expired, used up, its key rotated) is
   * replaced once from the token endpoint and the call retried. */
  async withToken(call) {
    let token = await this.getToken(false);
    try {
      return await call(token.value, await this.resolveModel(token));
    } catch (error) {
      const refused = error.status === 401 || (error.status === 429 && error.code === "token_request_limit");
      if (!(error instanceof core.ChatError) || error.tokenEndpoint || !refused) throw error;
      token = await this.getToken(true);
      return await call(token.value, await this.resolveModel(token));
    }
  }

  // ------------------------------------------------------------------ chatting
  async send() {
    const text = this.input.value.trim();
    if (!text || this.controller || this.sendButton.disabled) return;
    this.showError(null);
    this.input.value = "";
    this.messages.push({ role: "user", content: text });
    this.save();
    const question = this.bubble("user", text);
    question.el.classList.add("done");
    this.scrollToEnd(true);
    await this.reply(question, text);
  }

  async reply(question, asked) {
    const controller = new AbortController();
    const conversation = this.conversation;
    this.controller = controller;
    this.setBusy(true);
    const answer = this.bubble("assistant", "");
    answer.el.classList.add("streaming");
    answer.el.setAttribute("aria-busy", "true");
    let streamed = "";
    try {
      await this.withToken((token, model) =>
        core.streamChat({
          url: `${this.config.gateway}/v1/chat/completions`,
          headers: { Authorization: `Bearer ${token}` },
          body: { model, messages: this.messages.slice(-this.config.history), context: { ...CONTEXT } },
          signal: controller.signal,
          onDelta: (delta) => {
            streamed += delta;
            answer.view.push(delta);
            this.scrollToEnd(false);
          },
        }),
      );
      answer.view.end();
      this.remember(streamed, conversation);
      answer.el.classList.add("done");
      // One announcement per finished reply (the log itself is aria-live="off").
      this.announce.textContent = answer.body.textContent.trim();
    } catch (error) {
      answer.view.end();
      if (error.name === "AbortError" || !streamed) {
        if (streamed) {
          this.remember(streamed, conversation);
          answer.el.classList.add("done", "stopped");
          answer.el.append(core.h("span", { class: "note", text: "Stopped" }));
        } else {
          answer.el.remove();
        }
        if (error.name !== "AbortError" && !streamed && this.controller === controller) {
          // Nothing was answered: take the question back so it can be sent again.
          this.messages.pop();
          this.save();
          question.el.remove();
          if (!this.input.value) this.input.value = asked;
        }
      } else {
        this.remember(streamed, conversation);
        answer.el.classList.add("done", "failed");
      }
      if (error.name !== "AbortError") this.showError(error);
    } finally {
      answer.el.classList.remove("streaming");
      answer.el.removeAttribute("aria-busy");
      if (this.controller === controller) {
        this.controller = null;
        this.setBusy(false);
      }
    }
  }

  remember(text, conversation) {
    if (!text || conversation !== this.conversation) return;
    this.messages.push({ role: "assistant", content: text });
    this.save();
  }

  stop() {
    if (!this.controller) return;
    this.controller.abort();
    this.controller = null;
    this.setBusy(false);
  }

  setBusy(busy) {
    const hadFocus = this.host.shadowRoot.activeElement;
    this.sendButton.hidden = busy;
    this.stopButton.hidden = !busy;
    if (hadFocus === this.sendButton || hadFocus === this.stopButton) (busy ? this.stopButton : this.input).focus();
  }

  // ------------------------------------------------------------------ errors
  showError(error) {
    clearInterval(this.retryTimer);
    this.retryTimer = null;
    this.sendButton.disabled = false;
    if (!error) {
      this.alert.replaceChildren();
      return;
    }
    const { h } = core;
    const message = explain(error);
    const parts = [h("span", { class: "message", text: message })];
    const wait = error.status === 429 && error.code !== "token_request_limit" ? error.retryAfterMs : null;
    if (wait) {
      // The sentence is read out once; the ticking number and bar are for the eyes only.
      const until = Date.now() + wait;
      const seconds = () => Math.max(0, Math.ceil((until - Date.now()) / 1000));
      const countdown = h("span", { class: "countdown", "aria-hidden": "true" });
      const bar = h("span", { class: "bar", "aria-hidden": "true" });
      parts.push(" ", h("span", { class: "sr", text: `You can send again in ${seconds()} seconds.` }), countdown, bar);
      this.sendButton.disabled = true;
      const tick = () => {
        const left = seconds();
        countdown.textContent = `Try again in ${left} s`;
        bar.style.setProperty("--cg-progress", String(Math.max(0, (until - Date.now()) / wait)));
        if (left <= 0) this.showError(null);
      };
      tick();
      this.retryTimer = setInterval(tick, 250);
    } else if (error.code !== "token_expired" && error.message && error.message !== message) {
      parts.push(h("span", { class: "detail", text: error.message }));
    }
    this.alert.replaceChildren(...parts);
  }
}

function mount(script) {
  if (!script) {
    console.error("chatgate widget: load /widget.js with a plain <script src=…> tag");
    return;
  }
  const config = readConfig(script);
  if (!config) return;
  if (window.customElements && !customElements.get("chatgate-chat")) {
    customElements.define("chatgate-chat", class extends HTMLElement {});
  }
  const start = () => new ChatWidget(config);
  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start, { once: true });
}

mount(SCRIPT);
