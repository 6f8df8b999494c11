"""Model routing by task: a policy of ordered rules, allowlists, stickiness and fallbacks."""
