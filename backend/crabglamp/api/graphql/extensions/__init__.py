"""Schema extensions of the GraphQL endpoint."""
