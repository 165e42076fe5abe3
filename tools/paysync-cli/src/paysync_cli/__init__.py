"""`paysync`: the operator's command line over paysync-core (schema, topics, tenants, keys)."""
