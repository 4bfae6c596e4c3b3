"""Authentication and authorisation: who is calling, and may they."""
