// The npm package "callgate" under Node: everything of index.mjs, and the JSONL file transport.
export * from "./index.mjs";
export { fileTransport } from "./audit-file.mjs";
