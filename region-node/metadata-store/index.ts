// Public surface of the metadata store: one interface, an etcd and an LMDB implementation.
export { EtcdMetadataStore } from './etcd-store.ts';
export { LmdbMetadataStore } from './lmdb-store.ts';
export { MetadataStoreError } from './store.ts';
export type { Lease, MetadataStore, PutResult, VersionedValue, WatchEvent } from './store.ts';
