// Markdown (marked) → sanitised HTML (DOMPurify) → syntax highlighting (highlight.js).
// The libraries come from npm (static_ui/node_modules, installed by `make ui`); if they are
// missing the dashboard still works and shows plain text.

import { h, icon } from "./dom.js";

const VENDOR = "/ui/node_modules";
let marked = null;
let purify = null;
let hljs = null;
export let vendorMissing = false;

export const ready = Promise.all([
  import(`${VENDOR}/marked/lib/marked.esm.js`),
  import(`${VENDOR}/dompurify/dist/purify.es.mjs`),
  import(`${VENDOR}/@highlightjs/cdn-assets/es/highlight.min.js`),
]).then(([m, p, hl]) => {
  marked = new m.Marked({ gfm: true, breaks: false, async: false });
  purify = p.default;
  hljs = hl.default;
  hljs.configure({ ignoreUnescapedHTML: true });
  configurePurify();
}).catch(() => {
  vendorMissing = true;
});

function configurePurify() {
  purify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A") {
      const href = node.getAttribute("href") || "";
      if (/^https?:\/\//i.test(href)) {
        node.setAttribute("target", "_blank");
        node.setAttribute("rel", "noopener noreferrer");
      } else if (href && !href.startsWith("#") && !/^[a-z][a-z0-9+.-]*:/i.test(href)) {
        // A workspace-relative link: opened in the file preview, never navigated to.
        node.setAttribute("data-ws-path", href);
        node.setAttribute("href", "#");
      } else if (!href.startsWith("mailto:")) {
        node.removeAttribute("href");
      }
    }
    if (node.tagName === "IMG") {
      const src = node.getAttribute("src") || "";
      if (/^data:image\/(png|jpe?g|gif|webp);/i.test(src)) return;
      node.removeAttribute("src");
      if (/^https?:\/\//i.test(src)) {
        // Remote images would break the page's CSP (img-src 'self'): show a link instead.
        node.setAttribute("data-remote-src", src);
      } else if (src) {
        node.setAttribute("data-ws-src", src);
      }
    }
  });
}

const PURIFY_OPTIONS = {
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "iframe", "object", "embed", "link", "meta", "base"],
  FORBID_ATTR: ["style", "srcset", "formaction", "action"],
  ALLOW_DATA_ATTR: false,
  ADD_ATTR: ["target"],
};

/** Render Markdown into `el` (replacing its content). `highlight` is off while streaming. */
export function renderMarkdown(el, text, { highlight = true } = {}) {
  if (!marked || !purify) {
    el.classList.add("plain-text");
    el.textContent = text;
    return el;
  }
  const html = purify.sanitize(marked.parse(text || ""), PURIFY_OPTIONS);
  el.innerHTML = html; // sanitised above
  for (const img of el.querySelectorAll("img[data-remote-src]")) {
    const link = h("a", { href: img.dataset.remoteSrc, target: "_blank", rel: "noopener noreferrer", class: "remote-image" },
      icon("image"), ` ${img.getAttribute("alt") || img.dataset.remoteSrc}`);
    img.replaceWith(link);
  }
  for (const table of el.querySelectorAll("table")) {
    const wrap = h("div", { class: "table-wrap" });
    table.replaceWith(wrap);
    wrap.append(table);
  }
  if (highlight) {
    for (const code of el.querySelectorAll("pre > code")) {
      const lang = (code.className.match(/language-([\w+#-]+)/) || [])[1];
      highlightInto(code, code.textContent, lang);
      addCopyButton(code.parentElement);
    }
  }
  return el;
}

/** Highlight `text` as `language` (or auto-detected when small) into a <code> element. */
export function highlightInto(code, text, language) {
  code.classList.add("hljs");
  if (!hljs) {
    code.textContent = text;
    return code;
  }
  try {
    if (language && hljs.getLanguage(language)) {
      code.innerHTML = hljs.highlight(text, { language, ignoreIllegals: true }).value; // escaped by hljs
    } else if (!language && text.length < 20_000) {
      code.innerHTML = hljs.highlightAuto(text).value;
    } else {
      code.textContent = text;
    }
  } catch {
    code.textContent = text;
  }
  return code;
}

/** Language for a file name, for highlight.js. */
export function languageFor(path) {
  const name = String(path || "").toLowerCase();
  const base = name.split("/").pop();
  if (base === "dockerfile" || base.startsWith("dockerfile.")) return "dockerfile";
  if (base === "makefile") return "makefile";
  const ext = base.includes(".") ? base.split(".").pop() : "";
  const map = {
    py: "python", js: "javascript", mjs: "javascript", cjs: "javascript", ts: "typescript", tsx: "typescript",
    jsx: "javascript", json: "json", md: "markdown", markdown: "markdown", yml: "yaml", yaml: "yaml", toml: "ini",
    ini: "ini", cfg: "ini", sh: "bash", bash: "bash", zsh: "bash", html: "xml", htm: "xml", xml: "xml", svg: "xml",
    css: "css", scss: "scss", less: "less", go: "go", rs: "rust", rb: "ruby", java: "java", kt: "kotlin", c: "c",
    h: "c", cpp: "cpp", cc: "cpp", hpp: "cpp", cs: "csharp", php: "php", sql: "sql", swift: "swift", r: "r",
    lua: "lua", pl: "perl", diff: "diff", patch: "diff", csv: "plaintext", txt: "plaintext", log: "plaintext",
  };
  return map[ext] || "";
}

function addCopyButton(pre) {
  if (!pre || pre.querySelector(".copy-btn")) return;
  const btn = h("button", { type: "button", class: "copy-btn", "aria-label": "Copy code", title: "Copy" }, icon("copy", { size: 14 }));
  btn.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(pre.querySelector("code")?.textContent || "");
      btn.classList.add("copied");
      setTimeout(() => btn.classList.remove("copied"), 1200);
    } catch {
      /* clipboard unavailable (e.g. not a secure context) */
    }
  });
  pre.classList.add("has-copy");
  pre.append(btn);
}
