"""Authentication: access tokens, sessions, revocation and the request guard."""
