// Public surface of the TypeScript client SDK.
export { AdmqClient } from './client.ts';
export type { AnyProducer, ClientOptions } from './client.ts';
export { Producer } from './producer.ts';
export type { MessageId, OutgoingMessage, ProducerOptions } from './producer.ts';
export { Consumer } from './consumer.ts';
export type { AdmqConsumer, ConsumerOptions, Message, SubscriptionType } from './consumer.ts';
export { PartitionedConsumer, PartitionedProducer, partitionForKey } from './partitioned.ts';
export { AdminClient } from './admin.ts';
export { AdmqClientError } from './errors.ts';
export { ErrorCode } from '../proto/index.ts';
export type { FailoverOptions, RegionEndpoint } from './regions.ts';
