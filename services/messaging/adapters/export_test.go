package adapters

// ShardOf exposes the pending_events shard of a conversation to the package's external tests.
var ShardOf = shardOf
