// The playground page: decisions are made here, in the browser, by callgate.wasm through the
// npm package's engine (callgate.mjs) and recorded in a hash-chained session trail
// (audit.mjs). The local server (callgate playground) only compiles the policy being edited
// and renders the explain tree. Nothing is fetched from anywhere else.
import { Callgate, CallgateError } from "/callgate.mjs";
import { Audit, memoryTransport } from "/audit.mjs";

const $ = (id) => document.getElementById(id);
const state = {
  cg: null, // the engine, once a policy is applied
  transport: memoryTransport(),
  audit: null,
  format: "json",
  applied: null, // {text, format, semantics} of the policy in force
  scenes: [],
  checkTimer: null,
};
state.audit = new Audit(state.transport, { chain: "playground", flushIntervalMs: 0 });

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

async function api(path, body) {
  const init = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(path, init);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error ?? `HTTP ${response.status}`);
  return data;
}

function bytesOf(base64) {
  const bin = atob(base64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function setStatus(text, kind) {
  $("status").textContent = text;
  $("status").dataset.state = kind;
}

function setPolicyStatus(text, kind) {
  $("policy-status").textContent = text;
  $("policy-status").dataset.state = kind;
}

// the titles `callgate demo` gives the scenes
const SCENE_TITLES = { agent: "Scene 1: the support agent", manager: "Scene 2: the manager", admin: "Scene 3: the admin" };

const decisionClass = (decision) => (decision === "Allow" ? "allow" : decision === "Elevate" ? "elevate" : "deny");

// ---------------------------------------------------------------- the editor

function drawGutter(bad = new Set()) {
  const n = $("policy").value.split("\n").length;
  const lines = [];
  for (let i = 1; i <= n; i++) lines.push(el("span", { class: bad.has(i) ? "bad" : "" }, `${i}\n`));
  $("gutter").replaceChildren(...lines);
  $("gutter").scrollTop = $("policy").scrollTop;
}

/** Select line:column of the editor (what clicking an error does). */
function goTo(line, column) {
  const text = $("policy").value;
  let at = 0;
  for (let l = 1; l < line && at !== -1; l++) at = text.indexOf("\n", at) + 1;
  at += Math.max(0, column - 1);
  const end = text.indexOf("\n", at);
  $("policy").focus();
  $("policy").setSelectionRange(at, end === -1 ? text.length : end);
}

function showFindings(result) {
  const list = result.ok ? result.warnings.filter((f) => f.level !== "error") : result.errors;
  const bad = new Set();
  $("errors").replaceChildren(...list.map((f) => {
    const where = f.line ? `line ${f.line}, column ${f.column}` : "";
    if (!result.ok && f.line) bad.add(f.line);
    const li = el("li", { class: f.level, "data-line": String(f.line ?? ""), "data-column": String(f.column ?? "") },
      el("span", { class: "where" }, where ? `${where}: ` : ""), `${f.level}: ${f.location}: ${f.message}`);
    if (f.line) li.addEventListener("click", () => goTo(f.line, f.column));
    return li;
  }));
  drawGutter(bad);
}

async function check() {
  try {
    const result = await api("/api/compile", { policy: $("policy").value, format: state.format, semantics: $("semantics").value });
    showFindings(result);
    if (!result.ok) setPolicyStatus(`${result.errors.length} error${result.errors.length === 1 ? "" : "s"}: the policy in force is unchanged`, "error");
    else if (state.applied?.text !== $("policy").value) setPolicyStatus("valid, not applied yet", "pending");
  } catch (e) {
    setPolicyStatus(`cannot check: ${e.message}`, "error");
  }
}

/** Compile the editor's policy on the local server and load it into the engine here. */
async function apply() {
  const text = $("policy").value;
  const semantics = $("semantics").value;
  let result;
  try {
    result = await api("/api/compile", { policy: text, format: state.format, semantics });
  } catch (e) {
    setPolicyStatus(`cannot compile: ${e.message}`, "error");
    return false;
  }
  showFindings(result);
  if (!result.ok) {
    setPolicyStatus(`${result.errors.length} error${result.errors.length === 1 ? "" : "s"}: the policy in force is unchanged`, "error");
    return false;
  }
  const blob = bytesOf(result.blob);
  try {
    if (state.cg === null) state.cg = await Callgate.load(blob, { audit: state.audit });
    else await state.cg.reload(blob);
  } catch (e) {
    setPolicyStatus(`the engine refused the policy: ${e.message}`, "error");
    return false;
  }
  state.applied = { text, format: state.format, semantics };
  const info = state.cg.policy;
  setPolicyStatus(`applied: version ${info.version}, ${info.tools.length} tools, ${info.roles.length} roles (${info.semantics})`, "ok");
  $("tools").replaceChildren(...info.tools.map((t) => el("option", { value: t })));
  drawListing();
  return true;
}

// ---------------------------------------------------------------- deciding

function drawListing() {
  if (!state.cg) return;
  const role = $("role").value;
  const shown = state.cg.policy.tools.filter((t) => state.cg.visible(t, role));
  $("listing").textContent = `tools/list as ${role}: ${shown.join(", ") || "(none)"}`;
}

/** Decide one call here, in the browser; show it in the JSON panel. A request the engine
 * refuses is a Deny saying why. */
function decide(tool, args, who) {
  const request = { tool, role: who.role, args, agent_attributes: who.agentAttributes, resource_attributes: who.resourceAttributes };
  if (who.context && Object.keys(who.context).length) request.context = who.context;
  let outcome;
  try {
    const d = state.cg.evaluate(tool, args, who);
    outcome = { decision: d.decision, reason: d.reason, rule: d.rule, rule_id: d.ruleId, approvals_required: d.approvalsRequired };
  } catch (e) {
    if (!(e instanceof CallgateError)) throw e;
    outcome = { decision: "Deny", reason: `the engine refused the request: ${e.message}`, rule: null, error: e.code };
  }
  $("json").textContent = JSON.stringify({ request, decision: outcome }, null, 2);
  return outcome;
}

const callText = (tool, args) => `${tool}(${Object.entries(args ?? {}).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", ")})`;

async function play() {
  if (!state.cg) return;
  const role = $("role").value;
  const cases = state.scenes.filter((c) => c.role === role);
  drawListing();
  $("scene-title").textContent = SCENE_TITLES[role] ?? `Scene: role ${role}`;
  $("transcript").replaceChildren();
  for (const c of cases) {
    const who = { role: c.role, agentAttributes: c.agent_attributes ?? {}, resourceAttributes: c.resource_attributes ?? {} };
    const out = decide(c.tool, c.args ?? {}, who);
    const expected = typeof c.expected === "string" ? c.expected : null;
    const li = el("li", { class: `call ${decisionClass(out.decision)}`, "data-decision": out.decision, "data-expected": expected ?? "" },
      el("div", { class: "name" }, c.name),
      el("div", { class: "what" }, callText(c.tool, c.args)),
      el("div", { class: "who" }, `as ${c.role} ${JSON.stringify(who.agentAttributes)}${Object.keys(who.resourceAttributes).length ? ` on ${JSON.stringify(who.resourceAttributes)}` : ""}`),
      el("div", { class: "reason" }, el("span", { class: `badge ${decisionClass(out.decision)}` }, out.decision), " ", el("span", { class: "text" }, out.reason)),
      expected ? el("div", { class: `expect${expected === out.decision ? "" : " miss"}` }, expected === out.decision ? `as the original demo: ${expected}` : `the original demo: ${expected}`) : null);
    $("transcript").append(li);
  }
  await drawAudit();
}

function parseField(id) {
  const box = $(id);
  box.classList.remove("bad");
  const text = box.value.trim();
  if (text === "") return {};
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    box.classList.add("bad");
    throw new Error(`${box.closest("label").firstChild.textContent.trim()}: ${e.message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    box.classList.add("bad");
    throw new Error(`${box.closest("label").firstChild.textContent.trim()}: a JSON object, please`);
  }
  return value;
}

async function decideBuilt() {
  if (!state.cg) return;
  $("result").hidden = false;
  let args, agent, resource, context;
  try {
    [args, agent, resource, context] = ["args", "agent", "resource", "context"].map(parseField);
  } catch (e) {
    $("decision").textContent = "—";
    $("decision").className = "badge";
    $("rule").textContent = "";
    $("reason").textContent = e.message;
    $("explain").replaceChildren();
    return;
  }
  const tool = $("tool").value.trim();
  const role = $("call-role").value.trim();
  const principal = $("principal").value.trim() || undefined;
  const out = decide(tool, args, { role, agentAttributes: agent, resourceAttributes: resource, context, principal });
  $("decision").textContent = out.decision === "Elevate" ? `Elevate (${out.approvals_required})` : out.decision;
  $("decision").className = `badge ${decisionClass(out.decision)}`;
  $("rule").textContent = out.rule === null ? "decided by a default" : `rule ${out.rule_id ?? out.rule + 1} (rules[${out.rule}])`;
  $("reason").textContent = out.reason;
  $("explain").replaceChildren(el("span", { class: "dim" }, "explaining…"));
  try {
    const ex = await api("/api/explain", { policy: state.applied.text, format: state.applied.format, semantics: state.applied.semantics,
                                           tool, role, args, agent_attributes: agent, resource_attributes: resource, context });
    drawExplain(ex);
  } catch (e) {
    $("explain").replaceChildren(el("span", { class: "dim" }, `no explanation: ${e.message}`));
  }
  await drawAudit();
}

function nodeItem(n) {
  const seen = (n.seen ?? []).map((s) => `${s.name} = ${s.text}`).join(", ");
  const li = el("li", { class: n.skipped ? "dim" : "" },
    el("span", { class: n.value }, n.value), " ", el("span", { class: n.blame ? "blame" : "" }, n.label),
    seen ? el("span", { class: "dim" }, `  (${seen})`) : null,
    n.skipped ? el("span", { class: "dim" }, "  (not evaluated)") : null);
  if (n.children?.length) li.append(el("ul", {}, ...n.children.map(nodeItem)));
  return li;
}

function drawExplain(ex) {
  if (ex.error) {
    $("explain").replaceChildren(el("span", { class: "dim" }, ex.error));
    return;
  }
  const rules = ex.rules.map((r) => {
    const li = el("li", {},
      el("span", { class: r.value }, r.value), ` rule ${r.id ?? r.number} (${r.effect}${r.approvals ? ` ${r.approvals}` : ""})`,
      el("span", { class: "dim" }, `  ${r.applies ? "applies" : "does not apply"}${r.reached ? "" : ", not reached"}`));
    if (r.condition) li.append(el("ul", {}, nodeItem(r.condition)));
    return li;
  });
  const head = el("div", {}, `${ex.decision} by ${ex.decided_by}${ex.tier ? ` (tier ${ex.tier})` : ""}`,
    ex.agrees ? null : el("div", { class: "F" }, ex.problems.join("; ")));
  $("explain").replaceChildren(head, rules.length ? el("ul", {}, ...rules) : el("div", { class: "dim" }, `no rule for (${ex.tool}, ${ex.role})`));
}

// ---------------------------------------------------------------- the session's audit trail

async function drawAudit() {
  try {
    await state.audit.flush();
  } catch (e) {
    $("audit").replaceChildren(el("li", { class: "deny" }, `the audit trail failed: ${e.message}`));
    return;
  }
  $("audit").replaceChildren(...state.transport.lines.map((line) => {
    const { hash, record } = JSON.parse(line);
    const what = record.kind === "writer" ? `writer ${record.state}` : `${record.decision} ${record.tool} as ${record.role}`;
    return el("li", { class: record.decision ? decisionClass(record.decision) : "", title: line, "data-seq": String(record.seq) },
      `#${record.seq} ${what}  ${hash.slice(0, 12)}…`);
  }));
}

// ---------------------------------------------------------------- start

async function loadExample(name) {
  const start = state.start;
  $("policy").value = name === "(start)" ? start.policy : start.examples[name];
  state.format = name === "(start)" ? start.format : "json";
  drawGutter();
  await apply();
  $("transcript").replaceChildren();
}

async function main() {
  const start = await api("/api/start");
  state.start = start;
  state.scenes = start.scenes;
  const names = Object.keys(start.examples);
  const options = names.includes(start.name) ? names : ["(start)", ...names];
  $("example").replaceChildren(...options.map((n) => el("option", { value: n, selected: n === start.name || n === "(start)" },
    n === "(start)" ? start.name : n)));
  $("policy").value = start.policy;
  state.format = start.format;
  drawGutter();
  $("policy").addEventListener("scroll", () => { $("gutter").scrollTop = $("policy").scrollTop; });
  $("policy").addEventListener("input", () => {
    drawGutter();
    clearTimeout(state.checkTimer);
    state.checkTimer = setTimeout(check, 400);
  });
  $("apply").addEventListener("click", apply);
  $("semantics").addEventListener("change", apply);
  $("example").addEventListener("change", () => loadExample($("example").value));
  $("role").addEventListener("change", drawListing);
  $("play").addEventListener("click", play);
  $("clear").addEventListener("click", () => $("transcript").replaceChildren());
  $("decide").addEventListener("click", decideBuilt);
  if (!(await apply())) {
    setStatus("the starting policy has errors: fix it and apply", "error");
    return;
  }
  setStatus(`ready: decisions are made in this browser by callgate.wasm (ABI ${state.cg.abiVersion})`, "ready");
  // for tests and the curious: the session's trail as JSONL (what `callgate audit verify` reads)
  window.callgatePlayground = { auditLines: () => state.transport.lines.slice() };
}

main().catch((e) => setStatus(`the playground could not start: ${e.message}`, "error"));
