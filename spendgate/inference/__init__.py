"""Use-case inference: a name for the calls that declare none, from their headers and shape.

`rules.py` reads the rule file (a TOML file shipped in the package, or the one
`SPENDGATE_USE_CASE_RULES_FILE` names) and compiles it; `infer.py` applies it to a call. Only
headers and the request's shape are read (client, endpoint, model, max_tokens, tools, the last
message's role), never the text of a prompt. See docs/attribution.md.
"""
