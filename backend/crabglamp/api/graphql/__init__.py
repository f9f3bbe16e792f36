"""GraphQL at /graphql: nested, queryable usage over the usage service (CONTRACTS.md §3.1).

One subpackage per domain (types, inputs, queries); `schema.py` composes them and `view.py`
serves them over HTTP.
"""
