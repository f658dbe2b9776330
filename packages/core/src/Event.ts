/**
 * Event: one decoded log as a handler sees it.
 */

export interface Event<Params = Readonly<Record<string, unknown>>> {
  readonly chainId: number
  readonly contractName: string
  readonly eventName: string
  /** Lowercase 0x-hex address of the contract that emitted the log. */
  readonly srcAddress: string
  readonly blockNumber: number
  readonly blockHash: string
  readonly blockTimestamp: number
  readonly logIndex: number
  readonly transactionHash: string
  readonly params: Params
}

/** `<chainId>-<block>-<logIndex>`: unique per chain, the natural id of an event row. */
export const id = (event: Event<unknown>): string => `${event.chainId}-${event.blockNumber}-${event.logIndex}`
