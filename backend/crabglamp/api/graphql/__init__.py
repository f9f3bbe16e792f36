"""GraphQL at /graphql: nested, queryable usage over the usage service (DESIGN 4.2).

One subpackage per domain (types, inputs, queries); `schema.py` composes them and `view.py`
serves them over HTTP.
"""
