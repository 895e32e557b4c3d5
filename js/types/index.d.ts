// Types of the npm package "callgate": the engine, the audit trail, the MCP guard.
export * from "./engine.js";
export { Audit, consoleTransport, httpTransport, functionTransport, memoryTransport, canonical, sha256, hex, link } from "./audit.js";
export type { AuditEvent, AuditOptions, Transport, SealedRecord, ApprovalFields } from "./audit.js";
/** Node only: the JSONL file transport. */
export { fileTransport } from "./audit-file.js";
export { guard, Guard, Gate, Verdict, denialResult, DENIED_PREFIX } from "./mcp.js";
export type { Identity, GuardOptions, Resolver, RequestInfo } from "./mcp.js";
