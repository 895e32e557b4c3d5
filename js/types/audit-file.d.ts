// Types of the JSONL file transport ("callgate/audit-file", Node only).
import type { Transport } from "./audit.js";

/** The JSONL file transport: `callgate audit verify FILE` checks what it writes. */
export declare function fileTransport(file: string, options?: { maxBytes?: number; fsync?: "batch" | "never" }): Transport & { path: string };
export declare function segments(file: string): string[];
export declare function lastRecord(file: string, chain: string): { seq: number; hash: Uint8Array } | null;
export declare function tornTail(file: string): [number, Uint8Array] | null;
export declare function decodeLine(line: Uint8Array): { body: Uint8Array; hash: Uint8Array } | null;
