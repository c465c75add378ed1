"""Crisis protocols: the protocol library and the pure core that turns a protocol
plus a snapshot of alliance state into a model, a solution and a decision."""
