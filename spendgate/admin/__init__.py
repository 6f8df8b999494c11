"""The admin surface shared by the HTTP API and the CLI."""
