"""Chain access: reading contract state over JSON-RPC, batched through Multicall3."""
