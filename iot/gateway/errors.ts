import { TrellisError } from '../../core/errors.ts';

/** Reasons the IoT gateway, simulator or report refuse something. */
export type IotErrorCode =
  | 'BAD_READING'
  | 'UNKNOWN_DEVICE'
  | 'DEVICE_NOT_ACTIVE'
  | 'BAD_SIGNATURE'
  | 'DUPLICATE'
  | 'CORRUPT_LOG'
  | 'BAD_ENVELOPE'
  | 'NOT_A_RECIPIENT'
  | 'NOT_FOUND'
  | 'ANCHOR_CONFLICT'
  | 'BAD_CONFIG'
  | 'OVERLOADED'
  | 'STOPPED';

/** An IoT error with a stable code and structured context. */
export class IotError extends TrellisError<IotErrorCode> {}
