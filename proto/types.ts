// TypeScript shapes of the messages in admq.proto, as @grpc/proto-loader decodes them with
// PROTO_LOADER_OPTIONS: camelCase fields, 64-bit integers as decimal strings (numbers are
// accepted when encoding), enums as their names, and a `request`/`response`/`target` field
// that names the oneof member that is set.

export type U64 = string | number;

export type SubscriptionTypeName = 'EXCLUSIVE' | 'SHARED' | 'FAILOVER' | 'KEY_SHARED';
export type InitialPositionName = 'LATEST' | 'EARLIEST';
export type AckTypeName = 'INDIVIDUAL' | 'CUMULATIVE';

export interface TopicMetadataRequest { topic: string }
export interface TopicMetadata { topic: string; partitions: number }

export interface ProducerOpen { topic: string; producerName: string }
export interface OutboundMessage {
  sequenceId: U64;
  payload: Buffer;
  key: string;
  hasKey: boolean;
  properties: Record<string, string>;
  eventTimeMs: U64;
}
export interface SendBatch { requestId: U64; messages: OutboundMessage[] }
export interface ProduceRequest {
  request?: 'open' | 'send';
  open?: ProducerOpen;
  send?: SendBatch;
}

export interface ProducerOpened { topic: string; producerName: string; lastSequenceId: U64; region: string }
export interface SendResult { sequenceId: U64; offset: U64; duplicate: boolean; hlc: U64 }
export interface SendReceipt { requestId: U64; results: SendResult[] }
export interface WireError { code: string; message: string; requestId: U64 }
export interface ProduceResponse {
  response?: 'opened' | 'receipt' | 'error';
  opened?: ProducerOpened;
  receipt?: SendReceipt;
  error?: WireError;
}

export interface Subscribe {
  topic: string;
  subscription: string;
  type: SubscriptionTypeName;
  consumerName: string;
  initialPosition: InitialPositionName;
  ackTimeoutMs: number;
  negativeAckRedeliveryDelayMs: number;
  priorityLevel: number;
  deliveryOrder?: DeliveryOrderName;
  readCompacted?: boolean;
}
export type DeliveryOrderName = 'ARRIVAL' | 'HLC';
export interface Flow { permits: number }
export interface Ack { type: AckTypeName; offsets: U64[] }
export interface Nack { offsets: U64[] }
export interface Seek { target?: 'offset' | 'publishTimeMs'; offset?: U64; publishTimeMs?: U64; requestId: U64 }
export interface ConsumeRequest {
  request?: 'subscribe' | 'flow' | 'ack' | 'nack' | 'seek' | 'redeliverUnacked';
  subscribe?: Subscribe;
  flow?: Flow;
  ack?: Ack;
  nack?: Nack;
  seek?: Seek;
  redeliverUnacked?: Record<string, never>;
}

export interface WireMessage {
  offset: U64;
  originRegion: string;
  originPosition: U64;
  hlc: U64;
  producerName: string;
  sequenceId: U64;
  publishTimeMs: U64;
  key: string;
  hasKey: boolean;
  properties: Record<string, string>;
  payload: Buffer;
  redeliveryCount: number;
  eventTimeMs: U64;
}
export interface Subscribed { topic: string; subscription: string; consumerName: string; region: string }
export interface ConsumeResponse {
  response?: 'subscribed' | 'messages' | 'seekDone' | 'activeChange' | 'error';
  subscribed?: Subscribed;
  messages?: { messages: WireMessage[] };
  seekDone?: { requestId: U64; offset: U64 };
  activeChange?: { isActive: boolean };
  error?: WireError;
}
