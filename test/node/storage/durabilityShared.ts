// Constants shared by the durability test and its child process.
import type { Bytes } from '../../../core/bytes.ts';
import { sha256 } from '../../../core/hash.ts';
import { Bucket, bucketKey, heightKey } from '../../../node/storage/repository.ts';

/** The genesis hash the durability chain starts from. */
export const DURABILITY_GENESIS: Bytes = sha256(Buffer.from('durability-genesis'));

/** Where the simulated state store records the height its writes belong to. */
export const stateHeadKey: Bytes = bucketKey(Bucket.state, Buffer.from('durability-state-head'));

/** The simulated state write of `height`. */
export function stateHeadValue(height: number): Bytes {
  return heightKey.encode(height);
}
