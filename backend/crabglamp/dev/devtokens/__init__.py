"""Development sign-in: Clerk-v2-shaped session tokens signed by a local key.

`signing.py` holds the key and signs the tokens (and `crabglamp token` prints one, from
`dev/commands.py`), `users.py` says whom to sign in as, `page.py` draws the chooser and
`routes.py` serves `/dev/sign-in`. Nothing here runs in production: the key, `crabglamp token` and
`/dev/sign-in` all refuse.
"""
