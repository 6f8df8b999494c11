"""The two reports: finance (CFO, business-unit leads) and governance (VP Engineering, platform).

`data` gathers the figures from the Store into dataclasses; `charts` draws them (matplotlib, no
pyplot state); `html` and `pdf` lay them out; `schedule` produces them on a calendar into a folder
or by email. Nothing is imported or configured at import time beyond these modules themselves.
"""
