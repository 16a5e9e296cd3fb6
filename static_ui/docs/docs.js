// Renders /openapi.json as a readable reference. Everything is built with DOM calls and
// textContent (never innerHTML), so nothing in the document can run as script, and the
// page works under the dashboard's CSP (no inline script or style).

const METHODS = ["get", "post", "put", "patch", "delete"];

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// `code` spans and **bold** in descriptions, as text nodes: enough for our own prose.
function prose(text) {
  const out = [];
  for (const part of String(text || "").split(/(`[^`]+`|\*\*[^*]+\*\*)/)) {
    if (!part) continue;
    if (part.startsWith("`") && part.endsWith("`")) out.push(el("code", {}, part.slice(1, -1)));
    else if (part.startsWith("**") && part.endsWith("**")) out.push(el("strong", {}, part.slice(2, -2)));
    else out.push(part);
  }
  return out;
}

function paragraphs(text) {
  return String(text || "").split(/\n\s*\n/).filter(Boolean).map((p) => el("p", {}, prose(p)));
}

const refName = (ref) => ref.split("/").pop();
const anchor = (kind, name) => `${kind}-${name.replace(/[^A-Za-z0-9_-]/g, "-")}`;

function resolve(doc, item) {
  let current = item;
  for (let i = 0; current && current.$ref && i < 10; i += 1) {
    const path = current.$ref.replace(/^#\//, "").split("/");
    current = path.reduce((node, key) => (node ? node[key] : undefined), doc);
  }
  return current || {};
}

// A one-line description of a schema's type, with links to named schemas.
function typeLabel(schema) {
  if (!schema) return "any";
  if (schema.$ref) {
    const name = refName(schema.$ref);
    return el("a", { href: `#${anchor("schema", name)}` }, name);
  }
  const alternatives = schema.oneOf || schema.anyOf;
  if (alternatives && !schema.type && !schema.properties) {
    const parts = [];
    alternatives.forEach((alt, i) => {
      if (i) parts.push(" | ");
      parts.push(alt.required && !alt.type && !alt.$ref ? `{${alt.required.join(", ")}}` : typeLabel(alt));
    });
    return el("span", {}, parts);
  }
  if (schema.type === "array") return el("span", {}, "array of ", typeLabel(schema.items));
  if (schema.type === "object" && schema.additionalProperties && typeof schema.additionalProperties === "object"
      && !schema.properties) {
    return el("span", {}, "map of ", typeLabel(schema.additionalProperties));
  }
  return [schema.type || "any", schema.format ? ` (${schema.format})` : "", schema.nullable ? " | null" : ""].join("");
}

function constraints(schema) {
  const notes = [];
  if (!schema) return notes;
  if (schema.enum) notes.push(`one of ${schema.enum.map((v) => JSON.stringify(v)).join(", ")}`);
  for (const [key, label] of [["minLength", "min length"], ["maxLength", "max length"], ["minimum", "≥"],
    ["maximum", "≤"], ["minItems", "min items"], ["maxItems", "max items"], ["maxProperties", "max keys"]]) {
    if (schema[key] !== undefined) notes.push(`${label} ${schema[key]}`);
  }
  if (schema.pattern) notes.push(`pattern ${schema.pattern}`);
  if (schema.default !== undefined && schema.default !== null) notes.push(`default ${JSON.stringify(schema.default)}`);
  return notes;
}

function propertyTable(schema) {
  const props = schema.properties || {};
  const required = new Set(schema.required || []);
  const names = Object.keys(props);
  if (!names.length) return null;
  return el("table", { class: "docs-table" },
    el("thead", {}, el("tr", {}, el("th", {}, "field"), el("th", {}, "type"), el("th", {}, "notes"))),
    el("tbody", {}, names.map((name) => {
      const prop = props[name];
      return el("tr", {},
        el("td", {}, el("code", {}, name), required.has(name) ? el("span", { class: "docs-req" }, " required") : null),
        el("td", {}, typeLabel(prop)),
        el("td", {}, [prop.description ? prose(prop.description) : null, constraints(prop).join("; ")]
          .filter(Boolean).flatMap((x, i) => (i ? [" — ", x] : [x]))));
    })));
}

function schemaBlock(doc, schema) {
  if (!schema) return null;
  const box = el("div", { class: "docs-schema" }, el("div", { class: "docs-type" }, typeLabel(schema)));
  if (!schema.$ref && schema.properties) box.append(propertyTable(schema));
  return box;
}

function securityLine(doc, op) {
  const requirements = op.security || doc.security || [];
  if (!requirements.length) return el("p", { class: "docs-auth" }, "No authentication.");
  const options = requirements.map((req) => Object.keys(req).join(" + ") || "none");
  return el("p", { class: "docs-auth" }, "Auth: ", options.map((o, i) => [i ? " or " : "", el("code", {}, o)]).flat());
}

function parametersTable(doc, params) {
  if (!params.length) return null;
  return el("table", { class: "docs-table" },
    el("thead", {}, el("tr", {}, el("th", {}, "parameter"), el("th", {}, "in"), el("th", {}, "type"), el("th", {}, "notes"))),
    el("tbody", {}, params.map((raw) => {
      const p = resolve(doc, raw);
      return el("tr", {},
        el("td", {}, el("code", {}, p.name), p.required ? el("span", { class: "docs-req" }, " required") : null),
        el("td", {}, p.in),
        el("td", {}, typeLabel(p.schema)),
        el("td", {}, [p.description || "", constraints(p.schema).join("; ")].filter(Boolean).join(" — ")));
    })));
}

function responsesList(doc, responses) {
  return el("dl", { class: "docs-responses" }, Object.entries(responses || {}).flatMap(([status, raw]) => {
    const response = resolve(doc, raw);
    const content = response.content || {};
    const media = Object.entries(content);
    return [
      el("dt", { class: `docs-status-${String(status)[0]}` }, status),
      el("dd", {}, response.description || "",
        media.map(([type, body]) => el("div", { class: "docs-media" }, el("code", {}, type), " ",
          body.schema ? typeLabel(body.schema) : ""))),
    ];
  }));
}

function operationSection(doc, path, method, op, pathParams) {
  const id = anchor("op", op.operationId || `${method}-${path}`);
  const params = [...(pathParams || []), ...(op.parameters || [])];
  const body = op.requestBody ? resolve(doc, op.requestBody) : null;
  return el("section", { class: "docs-op", id, "data-search": `${method} ${path} ${op.summary || ""}`.toLowerCase() },
    el("h3", {}, el("span", { class: `docs-method docs-method-${method}` }, method.toUpperCase()), " ",
      el("code", { class: "docs-path" }, path)),
    op.summary ? el("p", { class: "docs-summary" }, prose(op.summary)) : null,
    paragraphs(op.description),
    securityLine(doc, op),
    parametersTable(doc, params),
    body ? el("div", { class: "docs-body" }, el("h4", {}, "Request body", body.required ? " (required)" : ""),
      Object.entries(body.content || {}).map(([type, media]) => el("div", {}, el("code", {}, type),
        schemaBlock(doc, media.schema)))) : null,
    el("h4", {}, "Responses"),
    responsesList(doc, op.responses));
}

function render(doc) {
  const main = document.getElementById("docs-main");
  const nav = document.getElementById("docs-nav");
  main.replaceChildren();
  nav.replaceChildren();
  const info = doc.info || {};
  document.title = `${info.title || "API"} ${info.version || ""}`.trim();
  main.append(el("h1", {}, info.title || "API", " ", el("small", {}, info.version || "")), ...paragraphs(info.description));

  const schemes = (doc.components || {}).securitySchemes || {};
  if (Object.keys(schemes).length) {
    main.append(el("h2", { id: "auth" }, "Authentication"), el("dl", { class: "docs-schemes" },
      Object.entries(schemes).flatMap(([name, s]) => [
        el("dt", {}, el("code", {}, name)),
        el("dd", {}, s.type === "http" ? `HTTP ${s.scheme}` : `${s.in} ${s.name}`, s.description ? ` — ${s.description}` : ""),
      ])));
  }

  const byTag = new Map();
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const tag = (op.tags && op.tags[0]) || "other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push({ path, method, op, params: item.parameters });
    }
  }
  const filter = el("input", { type: "search", class: "docs-filter", placeholder: "Filter operations", "aria-label": "Filter operations" });
  nav.append(filter);
  for (const [tag, ops] of byTag) {
    main.append(el("h2", { id: anchor("tag", tag) }, tag));
    const list = el("ul", {});
    for (const { path, method, op, params } of ops) {
      const section = operationSection(doc, path, method, op, params);
      main.append(section);
      list.append(el("li", { "data-search": section.dataset.search },
        el("a", { href: `#${section.id}` }, el("span", { class: `docs-method docs-method-${method}` }, method.toUpperCase()),
          el("span", { class: "docs-nav-path" }, path))));
    }
    nav.append(el("h3", {}, el("a", { href: `#${anchor("tag", tag)}` }, tag)), list);
  }

  const schemas = (doc.components || {}).schemas || {};
  main.append(el("h2", { id: "schemas" }, "Schemas"));
  for (const [name, schema] of Object.entries(schemas)) {
    main.append(el("section", { class: "docs-op", id: anchor("schema", name) }, el("h3", {}, name),
      schema.description ? paragraphs(schema.description) : null,
      schema.oneOf ? el("p", {}, "Also: one of ", typeLabel({ oneOf: schema.oneOf })) : null,
      propertyTable(schema) || el("div", { class: "docs-type" }, typeLabel(schema))));
  }

  filter.addEventListener("input", () => {
    const needle = filter.value.trim().toLowerCase();
    for (const node of document.querySelectorAll("[data-search]")) {
      node.hidden = Boolean(needle) && !node.dataset.search.includes(needle);
    }
  });
  if (location.hash) document.getElementById(location.hash.slice(1))?.scrollIntoView();
}

async function main() {
  const status = document.getElementById("docs-status");
  try {
    const resp = await fetch("/openapi.json", { headers: { Accept: "application/json" } });
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    render(await resp.json());
  } catch (err) {
    status.textContent = `Could not load /openapi.json: ${err.message}`;
    status.classList.add("docs-error");
  }
}

main();
