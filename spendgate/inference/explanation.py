"""Why a ledger row has its use case: `spendgate ledger explain-use-case REQUEST_ID`.

Declared use cases name where they were declared; an inferred one names its rule, the rule's
reason and conditions (as the rules in force describe it now), and the evidence recorded with
the row at call time (what the call had for each condition), so no request is needed.
"""

from __future__ import annotations

from typing import Any

from spendgate.inference.rules import UseCaseRules
from spendgate.inference.share import INFERRED, source_kind

_DECLARED = {
    "header": "declared by the call: the x-spendgate-tags header's use_case",
    "metadata": "declared by the call: the request body's metadata.use_case",
    "key": "declared by the key: its default use case (keys create --use-case)",
    "none": "no use case declared and no use-case rule matched: recorded as untagged",
}


def explain_row(row: dict[str, Any], rules: UseCaseRules) -> dict[str, Any]:
    source = row.get("use_case_source")
    out: dict[str, Any] = {
        "request_id": row["request_id"],
        "started_at": row["started_at"],
        "use_case": row["use_case"],
        "use_case_source": source,
        "kind": source_kind(source, row["use_case"]),
        "rule": None,
        "evidence": row.get("use_case_evidence"),
        # What the row itself recorded of the call (inference read these and the request's shape).
        "recorded": {
            "endpoint": row["endpoint"],
            "provider": row["provider"],
            "requested_model": row["requested_model"],
            "streamed": bool(row["streamed"]),
            "user_agent": row["user_agent"],
            "session_id": row["session_id"],
            "agent_id": row["agent_id"],
            "parent_agent_id": row["parent_agent_id"],
        },
    }
    if source is None:
        out["reason"] = "recorded before Spendgate kept use-case sources (migration 0017)"
    elif source.startswith(INFERRED):
        name = source.removeprefix(INFERRED)
        rule = next((r for r in rules.rules if r.name == name), None)
        out["reason"] = f"inferred by rule {name!r}"
        if rule is None:
            out["rule"] = {"name": name, "in_current_rules": False, "source": rules.source}
        else:
            out["rule"] = {
                "name": rule.name,
                "in_current_rules": True,
                "source": rules.source,
                "enabled": rule.enabled,
                "why": rule.why,
                "conditions": [f"{c.key} = {c.wanted}" for c in rule.conditions],
            }
    else:
        out["reason"] = _DECLARED.get(source, source)
    return out
