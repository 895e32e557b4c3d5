// The npm package "callgate": the engine (callgate.mjs), the audit trail (audit.mjs) and the
// MCP guard (mcp.mjs). In Node the file transport is exported too (node.mjs); browsers get
// this module, which imports nothing Node-specific.
export * from "./callgate.mjs";
export { Audit, consoleTransport, httpTransport, functionTransport, memoryTransport, canonical, sha256, hex, link } from "./audit.mjs";
export { guard, Guard, Gate, Verdict, denialResult, DENIED_PREFIX } from "./mcp.mjs";
