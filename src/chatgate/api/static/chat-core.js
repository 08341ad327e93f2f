/* chatgate chat core: the SSE reader, the streaming chat call and the incremental markdown view
 * shared by the playground (/playground) and the embeddable widget (/widget.js).
 *
 * A classic script that only declares `chatgateCore`: the playground calls it with the vendored
 * globals, the widget bundle with the copies it wraps (so nothing leaks into a host page).
 * No innerHTML string sinks, no style attributes: it works under a strict Content-Security-Policy
 * and with Trusted Types (DOMPurify returns DOM fragments).
 */
/* exported chatgateCore */
function chatgateCore(marked, DOMPurify) {
  "use strict";

  // ---------------------------------------------------------------- DOM building
  /** createElement with properties (class, text, attrs, on*) and children; never parses HTML. */
  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on") && typeof value === "function") {
        node.addEventListener(key.slice(2), value);
      } else if (key in node && typeof value !== "string") node[key] = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  // ---------------------------------------------------------------- errors
  /** An error answer of the gateway (or of the network), with what a UI needs to explain it. */
  class ChatError extends Error {
    constructor(message, { status = 0, type = null, code = null, param = null, retryAfterMs = null, requestId = null } = {}) {
      super(message);
      this.name = "ChatError";
      this.status = status;
      this.type = type;
      this.code = code;
      this.param = param;
      this.retryAfterMs = retryAfterMs;
      this.requestId = requestId;
    }

    /** A sentence for people (the gateway's own message is kept as the detail). */
    get summary() {
      if (this.code === "token_expired") return "Your chat session has expired.";
      if (this.status === 0) return "Cannot reach the gateway.";
      if (this.status === 401) return "Not signed in: the API key or token was refused.";
      if (this.status === 403) return "Not allowed.";
      if (this.status === 429 && this.type === "insufficient_quota") return "Budget used up.";
      if (this.status === 429) return "Rate limited.";
      if (this.code === "context_length_exceeded") return "The conversation is too long for this model.";
      if (this.status >= 500) return "The gateway or the model failed.";
      return "The request was refused.";
    }
  }

  function retryAfterMs(headers) {
    const ms = Number(headers.get("retry-after-ms"));
    if (Number.isFinite(ms) && ms > 0) return ms;
    const seconds = Number(headers.get("retry-after"));
    if (Number.isFinite(seconds) && seconds > 0) return seconds * 1000;
    return null;
  }

  async function errorFromResponse(response) {
    let error = {};
    try {
      error = (await response.json()).error || {};
    } catch {
      error = { message: `HTTP ${response.status}` };
    }
    return new ChatError(error.message || `HTTP ${response.status}`, {
      status: response.status,
      type: error.type || null,
      code: error.code || null,
      param: error.param || null,
      retryAfterMs: retryAfterMs(response.headers),
      requestId: response.headers.get("x-request-id"),
    });
  }

  // ---------------------------------------------------------------- SSE
  /** Calls onEvent(data) for each event's data and onComment(text) for each comment line
   * of a text/event-stream body; returns at `[DONE]` or at the end of the body. If it leaves by
   * an exception (a callback threw, the read failed) the body is cancelled, so the server stops. */
  async function readEvents(body, onEvent, onComment) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let cr = false; // the last read ended in \r: a \n starting the next one belongs to it
    let finished = false;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) {
          finished = true;
          return;
        }
        if (!value) continue;
        const text = cr && value.startsWith("\n") ? value.slice(1) : value;
        cr = text.endsWith("\r");
        buffer += text.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = [];
          for (const line of block.split("\n")) {
            if (line.startsWith(":")) onComment?.(line.slice(1).trim());
            else if (line.startsWith("data:")) data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
          }
          if (!data.length) continue;
          const payload = data.join("\n");
          if (payload === "[DONE]") {
            finished = true;
            return;
          }
          onEvent(payload);
        }
      }
    } finally {
      if (finished) reader.releaseLock();
      else reader.cancel().catch(() => {}); // not awaited: the error goes on at once
    }
  }

  /** POST a streamed chat completion; onDelta(text) per content delta. Resolves to the reply's
   * text, usage, cost, finish reason and timings; rejects with ChatError (or AbortError). */
  async function streamChat({ url, headers = {}, body, signal, onDelta, onResponse }) {
    const started = performance.now();
    let response;
    try {
      response = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream", ...headers },
        body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
        signal,
      });
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ChatError(`${error.message || error}`, { status: 0 });
    }
    if (!response.ok) throw await errorFromResponse(response);
    onResponse?.(response);
    const result = {
      text: "",
      usage: null,
      cost: null,
      finishReason: null,
      model: null,
      requestId: response.headers.get("x-request-id"),
      headers: response.headers,
      ttftMs: null,
      totalMs: null,
      citations: null,
    };
    let failure = null;
    await readEvents(
      response.body,
      (data) => {
        let chunk;
        try {
          chunk = JSON.parse(data);
        } catch {
          throw Object.assign(
            new ChatError(`The gateway sent an event that is not JSON: ${data.slice(0, 80)}`, {
              status: 502,
              type: "api_error",
              code: "invalid_event",
              requestId: result.requestId,
            }),
            { partial: result },
          );
        }
        if (chunk.error) {
          failure = new ChatError(chunk.error.message, {
            status: 500,
            type: chunk.error.type,
            code: chunk.error.code,
            requestId: result.requestId,
          });
          return;
        }
        result.model = chunk.model || result.model;
        if (chunk.usage) result.usage = chunk.usage;
        if (chunk.citations) result.citations = chunk.citations;
        const choice = (chunk.choices || [])[0];
        if (!choice) return;
        if (choice.finish_reason) result.finishReason = choice.finish_reason;
        const text = choice.delta && (choice.delta.content || choice.delta.refusal);
        if (text) {
          if (result.ttftMs === null) result.ttftMs = performance.now() - started;
          result.text += text;
          onDelta?.(text);
        }
      },
      (comment) => {
        const match = /^x-chatgate-cost:\s*([0-9.eE+-]+)$/.exec(comment);
        if (match) result.cost = Number(match[1]);
      },
    );
    result.totalMs = performance.now() - started;
    if (failure) {
      failure.partial = result;
      throw failure;
    }
    return result;
  }

  // ---------------------------------------------------------------- markdown
  const escapeHtml = (text) =>
    text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

  /** A marked instance for model output: raw HTML is shown as text, never parsed; images are
   * links unless `images` is true (a remote image loads by itself: an exfiltration channel). */
  function markdownParser({ images = false } = {}) {
    const parser = new marked.Marked({ gfm: true, breaks: false });
    parser.use({
      renderer: {
        html: ({ text }) => escapeHtml(text),
        image: ({ href, title, text }) =>
          images
            ? false
            : `<a href="${escapeHtml(href || "")}" title="${escapeHtml(title || "image")}">${escapeHtml(`[image: ${text || href}]`)}</a>`,
      },
    });
    return parser;
  }

  let hooked = false;
  /** Model output to a DOM fragment: no script, no event handlers, no style, no forms, links
   * open in a new tab without a referrer; only http(s)/mailto links survive. */
  function sanitize(html, { images = false } = {}) {
    if (!hooked) {
      DOMPurify.addHook("afterSanitizeAttributes", (node) => {
        if (node.tagName === "A") {
          const href = node.getAttribute("href") || "";
          if (!/^(https?:|mailto:|#)/i.test(href)) node.removeAttribute("href");
          node.setAttribute("target", "_blank");
          node.setAttribute("rel", "noopener noreferrer nofollow");
        }
      });
      hooked = true;
    }
    return DOMPurify.sanitize(html, {
      RETURN_DOM_FRAGMENT: true,
      FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", ...(images ? [] : ["img"])],
      FORBID_ATTR: ["style", "class", "id"],
    });
  }

  /** Renders streamed markdown block by block: finished blocks (followed by a blank line and
   * more text) are parsed and inserted once; only the unfinished tail is re-lexed per frame, so
   * a long answer costs O(n), not O(n²). Lists and indented code stay live until something after
   * them is finished (a blank line alone does not close them). */
  class MarkdownView {
    constructor(container, options = {}) {
      this.container = container;
      this.options = options;
      this.parser = markdownParser(options);
      this.live = document.createElement("div");
      this.live.className = "md-live";
      this.reset();
    }

    reset() {
      this.source = "";
      this.cr = "";
      this.done = 0;
      this.links = {};
      this.frozenBlocks = 0;
      this.lexedChars = 0;
      this.pending = false;
      this.container.replaceChildren(this.live);
      this.live.replaceChildren();
    }

    push(text) {
      // marked reads \r\n and \r as \n, so its tokens' raw lengths only add up to the source
      // (`done`) if the source is normalised the same way; a \r that ends a chunk may be the
      // first half of a \r\n and waits for the next one.
      text = this.cr + text;
      this.cr = text.endsWith("\r") ? "\r" : "";
      if (this.cr) text = text.slice(0, -1);
      this.source += text.replace(/\r\n?/g, "\n");
      if (this.pending) return;
      this.pending = true;
      requestAnimationFrame(() => {
        if (this.pending) this.flush(false);
      });
    }

    /** Render now; `final` freezes everything (the stream ended). */
    flush(final) {
      this.pending = false;
      const tail = this.source.slice(this.done);
      this.lexedChars += tail.length;
      const tokens = this.parser.lexer(tail);
      Object.assign(this.links, tokens.links || {});
      let cut = final ? tokens.length : 0;
      if (!final) {
        for (let i = 1; i + 1 < tokens.length; i++) {
          const before = tokens[i - 1];
          const open = before.type === "list" || (before.type === "code" && before.codeBlockStyle === "indented");
          if (tokens[i].type === "space" && !open) cut = i + 1;
        }
      }
      if (cut > 0) {
        const frozen = tokens.slice(0, cut);
        frozen.links = this.links;
        this.live.before(this.render(frozen));
        this.done += frozen.reduce((sum, token) => sum + token.raw.length, 0);
        this.frozenBlocks += frozen.length;
      }
      const rest = tokens.slice(cut);
      rest.links = this.links;
      this.live.replaceChildren(rest.length ? this.render(rest) : "");
      if (final && Object.keys(this.links).length) {
        // A reference definition can come after its use: one full parse settles every link.
        const all = this.parser.lexer(this.source);
        this.container.replaceChildren(this.render(all), this.live);
      }
    }

    end() {
      if (this.cr) this.source += "\n";
      this.cr = "";
      this.flush(true);
    }

    render(tokens) {
      return sanitize(this.parser.parser(tokens), this.options);
    }
  }

  return { ChatError, MarkdownView, errorFromResponse, h, readEvents, sanitize, streamChat };
}
