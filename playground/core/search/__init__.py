"""The search tool: markers in the token stream, backends (offline corpus, web, recorded), results."""
