/**
 * What the test (fake-internet.ts, NetnsAgent) and the agent inside the namespace
 * (netns-agent.ts) say to each other: request arguments and results of its operations.
 * Types only, so the agent can import it without loading anything.
 */

/** A connection's outcome, as the agent saw it. */
export interface ConnectResult {
  connected: boolean;
  /** Epoch ms when the TCP handshake completed (null when it did not). */
  connectedAt: number | null;
  connectMs: number | null;
  data: string;
  error: string | null;
}

export interface ProbeRequest {
  host: string;
  port: number;
  expect?: string;
  intervalMs?: number;
  attemptTimeoutMs?: number;
  deadlineMs?: number;
  localAddress?: string;
}

export interface ProbeResult {
  startedAt: number;
  succeededAt: number;
  connectedAt: number;
  attempts: number;
  data: string;
  outcomes: Record<string, number>;
}

export interface PingRequest {
  host: string;
  count?: number;
  timeoutMs?: number;
  localAddress?: string;
}

export interface PingResult {
  transmitted: number;
  received: number;
  output: string;
}

export interface PingProbeRequest {
  host: string;
  intervalMs?: number;
  deadlineMs?: number;
  localAddress?: string;
}

export interface PingProbeResult {
  startedAt: number;
  firstReplyAt: number;
  output: string;
}
