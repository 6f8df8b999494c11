"""One module per console page: each gathers its figures (JSON-ready) and names its template."""
