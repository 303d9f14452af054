/**
 * Transaction timer values (RFC 3261 §17, Table 4 of Appendix A; Timer L and M of RFC 6026).
 * Over reliable transports the retransmission timers do not run and the linger timers
 * (D, I, J, K) are zero: there is nothing to absorb. The defaults live in the config schema
 * (server/config/schema.ts, sip.timers), their one source.
 */
export interface TimerConfig {
  /** RTT estimate, ms (default 500) */
  t1: number;
  /** maximum retransmit interval for non-INVITE requests and INVITE responses, ms (default 4000) */
  t2: number;
  /** maximum duration a message remains in the network, ms (default 5000) */
  t4: number;
  /**
   * Timer B/F: how long a client transaction waits for a final response before giving up
   * (64*T1 by default). Kamailio calls it fr_timer.
   */
  transactionTimeout?: number;
  /** Timer C (§16.6 step 11): how long a proxied INVITE may ring, ms (default 180000) */
  inviteTimeout: number;
}

export class Timers {
  constructor(readonly cfg: TimerConfig) {}
  get T1(): number { return this.cfg.t1; }
  get T2(): number { return this.cfg.t2; }
  get T4(): number { return this.cfg.t4; }
  /** Timer B, F, H, L, M, J: 64*T1 */
  get B(): number { return this.cfg.transactionTimeout ?? 64 * this.cfg.t1; }
  get F(): number { return this.B; }
  get H(): number { return 64 * this.cfg.t1; }
  get L(): number { return 64 * this.cfg.t1; }
  get M(): number { return 64 * this.cfg.t1; }
  get J(): number { return 64 * this.cfg.t1; }
  /** Timer D: at least 32 s for unreliable transports */
  get D(): number { return Math.max(32_000, 64 * this.cfg.t1); }
  get C(): number { return this.cfg.inviteTimeout; }
}
