/**
 * The Trellis SDK: a typed JSON-RPC client, wallets with nonce management, typed contract
 * proxies, client-side proof verification and resumable subscriptions.
 */
export { createClient, type ClientOptions, type TrellisClient, type Subscription } from './client.ts';
export type { ChainEventView, EventSubscriptionOptions, HeadView, ReceiptView } from './client.ts';
export { createContractProxy, type ContractProxy, type ContractShape, type TxOutcome } from './contract.ts';
export type { MethodArgs, MethodResult, SendOptions } from './contract.ts';
export { SdkError, type SdkErrorCode } from './errors.ts';
export { createLightClient, verifyCommittedHeader, checkTxProof, checkReceiptProof } from './proofs.ts';
export type { LightClient, LightClientOptions, ProofSources } from './proofs.ts';
export { createWallet, generateKey, keyFromSecretHex } from './wallet.ts';
export type { CallRequest, SentTx, Wallet, WalletOptions } from './wallet.ts';
export { RpcError, type RpcErrorCode } from '../errors.ts';
export { formatCursor, parseCursor } from '../schemas.ts';
export { valueFromJsonChecked, valueToJson } from '../wire.ts';
